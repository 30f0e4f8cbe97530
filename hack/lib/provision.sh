# Provisioning of the test environment's binaries and jars, cached by version.
# Sourced by hack/testenv.sh; every function is idempotent and prints progress.

: "${K8S_VERSION:=v1.37.2}"
: "${KAFKA_VERSION:=4.3.1}"
: "${HELM_VERSION:=v3.22.0}"
: "${MATVIEW_CACHE:=$HOME/.cache/matview}"
: "${SCHEMATHESIS_VERSION:=4.32.5}"
: "${PUPPETEER_VERSION:=25.16.0}"
: "${REGISTRY_VERSION:=3.3.3}"
: "${SERDES_VERSION:=2.16.1}"
: "${GRPCIO_TOOLS_VERSION:=1.85.1}"

K8S_DIR="$MATVIEW_CACHE/k8s-$K8S_VERSION"
KAFKA_DIR="$MATVIEW_CACHE/kafka-$KAFKA_VERSION"
HELM_DIR="$MATVIEW_CACHE/helm-$HELM_VERSION"
SCHEMATHESIS_DIR="$MATVIEW_CACHE/schemathesis-$SCHEMATHESIS_VERSION"
PUPPETEER_DIR="$MATVIEW_CACHE/puppeteer-core-$PUPPETEER_VERSION"
REGISTRY_DIR="$MATVIEW_CACHE/apicurio-registry-$REGISTRY_VERSION"
SERDES_DIR="$MATVIEW_CACHE/confluent-kafka-$SERDES_VERSION"

log() { printf '[testenv %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Prints a progress line every 30 s while a long command runs.
with_progress() {
  local what="$1"; shift
  local started=$SECONDS
  "$@" &
  local pid=$!
  local next_report=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( SECONDS >= next_report )) && kill -0 "$pid" 2>/dev/null; then
      log "$what: still running ($((SECONDS - started)) s)"
      next_report=$((SECONDS + 30))
    fi
  done
  wait "$pid" || die "$what failed (see output above)"
  log "$what: done in $((SECONDS - started)) s"
}

# kube-apiserver, kube-controller-manager, kubectl and etcd, built from the Go
# module proxy. k8s.io/kubernetes points its staging modules at local paths, so
# a wrapper module pins each of them to the matching published v0.N.x.
provision_kubernetes() {
  local bin="$K8S_DIR/bin"
  if [[ -x "$bin/kube-apiserver" && -x "$bin/kubectl" && -x "$bin/etcd" && -x "$bin/kube-controller-manager" ]]; then
    return 0
  fi
  command -v go >/dev/null || die "go is required to build kube-apiserver (install Go 1.26+)"
  log "building Kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kubectl) and etcd from the Go module proxy; the first time takes 10-25 min on 2 cores"
  local src="$K8S_DIR/src"
  mkdir -p "$src/cmd/etcd" "$bin"
  export GOWORK=off GOFLAGS=-buildvcs=false
  local modinfo
  modinfo=$(cd "$src" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION") || die "cannot download k8s.io/kubernetes@$K8S_VERSION"
  local gomod
  gomod=$(printf '%s' "$modinfo" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  local staging_version="v0.${K8S_VERSION#v1.}"
  {
    echo "module matview.dev/testenv-kubernetes"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" |
      awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >"$src/go.mod"
  cat >"$src/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
  cat >"$src/cmd/etcd/main.go" <<'EOF'
// etcd built from the same module graph as kube-apiserver.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  (cd "$src" && with_progress "go mod tidy (downloading modules)" go mod tidy)
  local pkg="k8s.io/component-base/version"
  local cpkg="k8s.io/client-go/pkg/version"
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local ldflags="-s -w"
  for p in "$pkg" "$cpkg"; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  (cd "$src" && with_progress "go build (kube-apiserver, kube-controller-manager, kubectl, etcd)" \
    go build -trimpath -ldflags "$ldflags" -o "$bin/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kubectl \
      ./cmd/etcd)
  log "kubernetes binaries in $bin"
}

provision_helm() {
  local bin="$HELM_DIR/bin"
  [[ -x "$bin/helm" ]] && return 0
  log "building helm $HELM_VERSION from the Go module proxy"
  mkdir -p "$bin"
  local major="${HELM_VERSION%%.*}"
  local ldflags="-s -w -X helm.sh/helm/$major/internal/version.version=$HELM_VERSION"
  GOWORK=off GOFLAGS=-buildvcs=false GOBIN="$bin" with_progress "go install helm" \
    go install -trimpath -ldflags "$ldflags" "helm.sh/helm/$major/cmd/helm@$HELM_VERSION"
}

# Apache Kafka's broker jars and their runtime dependencies, from Maven Central.
provision_kafka() {
  local lib="$KAFKA_DIR/lib"
  [[ -f "$KAFKA_DIR/.complete" ]] && return 0
  command -v mvn >/dev/null || die "mvn is required to fetch Apache Kafka (install Maven 3.8+)"
  command -v java >/dev/null || die "java 17+ is required to run Apache Kafka"
  log "resolving Apache Kafka $KAFKA_VERSION jars from Maven Central"
  mkdir -p "$KAFKA_DIR" "$lib"
  cat >"$KAFKA_DIR/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.matview</groupId>
  <artifactId>testenv-kafka</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
EOF
  (cd "$KAFKA_DIR" && with_progress "mvn dependency:copy-dependencies" \
    mvn -q -B -Dstyle.color=never -f pom.xml org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DoutputDirectory="$lib" -DincludeScope=runtime)
  touch "$KAFKA_DIR/.complete"
}

# Schemathesis (property-based fuzzing of the gateway's OpenAPI document), in
# its own virtualenv from PyPI.
provision_schemathesis() {
  [[ -x "$SCHEMATHESIS_DIR/bin/st" ]] && return 0
  command -v python3 >/dev/null || die "python3 is required for schemathesis"
  log "installing schemathesis $SCHEMATHESIS_VERSION from PyPI"
  rm -rf "$SCHEMATHESIS_DIR"
  python3 -m venv "$SCHEMATHESIS_DIR" || die "python3 -m venv failed (install python3-venv)"
  with_progress "pip install schemathesis" \
    "$SCHEMATHESIS_DIR/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
}

# puppeteer-core (drives Debian's chromium for the page's browser test), from
# npm; it downloads no browser.
provision_puppeteer() {
  [[ -f "$PUPPETEER_DIR/node_modules/puppeteer-core/package.json" ]] && return 0
  command -v npm >/dev/null || die "npm is required for the browser test (install Node 20+)"
  log "installing puppeteer-core $PUPPETEER_VERSION from npm"
  mkdir -p "$PUPPETEER_DIR"
  (cd "$PUPPETEER_DIR" && with_progress "npm install puppeteer-core" \
    npm install --no-audit --no-fund --loglevel=error "puppeteer-core@$PUPPETEER_VERSION")
}

# A schema registry speaking the Confluent REST API: Apicurio Registry's
# Quarkus distribution from Maven Central (it needs Java 21 or newer).
provision_registry() {
  [[ -f "$REGISTRY_DIR/.complete" ]] && return 0
  command -v mvn >/dev/null || die "mvn is required to fetch Apicurio Registry (install Maven 3.8+)"
  log "fetching Apicurio Registry $REGISTRY_VERSION from Maven Central"
  rm -rf "$REGISTRY_DIR"
  mkdir -p "$REGISTRY_DIR"
  (cd "$REGISTRY_DIR" && with_progress "mvn dependency:copy (apicurio-registry-app)" \
    mvn -q -B -Dstyle.color=never org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
      "-Dartifact=io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all" -DoutputDirectory=.)
  tar -xzf "$REGISTRY_DIR/apicurio-registry-app-$REGISTRY_VERSION-all.tar.gz" -C "$REGISTRY_DIR"
  rm -f "$REGISTRY_DIR/apicurio-registry-app-$REGISTRY_VERSION-all.tar.gz"
  [[ -f "$REGISTRY_DIR/quarkus-run.jar" ]] || die "the Apicurio Registry archive has no quarkus-run.jar"
  touch "$REGISTRY_DIR/.complete"
}

# A Java of version 21 or newer for the registry: $MATVIEW_REGISTRY_JAVA, the
# default java, or a JDK under /usr/lib/jvm; prints its path.
registry_java() {
  local candidates=("${MATVIEW_REGISTRY_JAVA:-}" "$(command -v java || true)")
  local jdk
  for jdk in /usr/lib/jvm/*/bin/java; do candidates+=("$jdk"); done
  local java version
  for java in "${candidates[@]}"; do
    [[ -n "$java" && -x "$java" ]] || continue
    version=$("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
    if [[ "${version%%.*}" =~ ^[0-9]+$ ]] && (( ${version%%.*} >= 21 )); then
      echo "$java"
      return 0
    fi
  done
  die "Apicurio Registry needs Java 21 or newer: install one (e.g. a JDK under /usr/lib/jvm) or set MATVIEW_REGISTRY_JAVA"
}

# The serializers producers use (confluent-kafka's Avro and Protobuf, with
# fastavro and grpcio-tools), in their own virtualenv from PyPI: events in the tests are
# written by an implementation independent of matview's decoders.
provision_serdes() {
  # The marker names what is installed: a cache from before grpcio-tools is redone.
  [[ -x "$SERDES_DIR/bin/python" && -f "$SERDES_DIR/.complete-with-grpcio-tools-$GRPCIO_TOOLS_VERSION" ]] && return 0
  command -v python3 >/dev/null || die "python3 is required for the Avro and Protobuf serializers"
  log "installing confluent-kafka $SERDES_VERSION (Avro, Protobuf, schema registry) from PyPI"
  rm -rf "$SERDES_DIR"
  python3 -m venv "$SERDES_DIR" || die "python3 -m venv failed (install python3-venv)"
  # grpcio-tools is protoc for Python: producers' message classes come from it.
  with_progress "pip install confluent-kafka grpcio-tools" \
    "$SERDES_DIR/bin/pip" install -q "confluent-kafka[avro,protobuf,schemaregistry]==$SERDES_VERSION" \
      "grpcio-tools==$GRPCIO_TOOLS_VERSION"
  touch "$SERDES_DIR/.complete-with-grpcio-tools-$GRPCIO_TOOLS_VERSION"
}
