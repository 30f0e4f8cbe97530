#!/usr/bin/env bash
# The matview test environment: Apache Kafka (KRaft), etcd and kube-apiserver
# (TLS, RBAC, service-account tokens), a schema registry (Apicurio, Confluent
# REST API), plus kubectl and helm, all on 127.0.0.1.
#
#   hack/testenv.sh up        provision (cached) and start; idempotent
#   hack/testenv.sh down      stop; leaves no process behind
#   hack/testenv.sh status    say what runs
#   hack/testenv.sh env       print the exports (eval "$(hack/testenv.sh env)")
#   hack/testenv.sh provision only download and build the cached tools
#   hack/testenv.sh broker N [sasl-ssl]
#                             start (again) a test's own broker N; prints its address
#                             (sasl-ssl: also a SASL_SSL/SCRAM-SHA-512 listener)
#   hack/testenv.sh registry N [secured]
#                             start (again) a test's own schema registry N; prints its URL
#                             (secured: behind an nginx front speaking https with a
#                             certificate from the environment's CA and basic auth, user
#                             "matview", password in $MATVIEW_TESTENV_DIR/registries/N/password;
#                             prints the front's URL)
#   hack/testenv.sh stop-registry N
#                             kill -9 a test's own schema registry N (its schemas are
#                             kept on disk: a start again serves them under the same ids)
#   hack/testenv.sh stop-control-plane / start-control-plane
#                             etcd, kube-apiserver and controller-manager down and up
#                             again (same ports and data), for the API-server outage test
#   hack/testenv.sh cluster N start (again) a test's own replicated Kafka cluster N: three
#                             KRaft nodes (broker and controller each), each in a network
#                             namespace of its own (node i at 10.213.K.(10+i), K picked
#                             per cluster), joined by a bridge; prints the bootstrap
#                             servers (needs root: ip netns, veth, iptables)
#   hack/testenv.sh cluster-host N HOST
#                             a namespace of the test's own on cluster N's network, for a
#                             process it cuts off (run it with ip netns exec mvK-HOST …);
#                             prints its address
#   hack/testenv.sh cluster-kill N I / cluster-stop N I / cluster-start N I
#                             kill -9 node I of cluster N / shut it down cleanly / start
#                             it again (same data)
#   hack/testenv.sh cluster-syns N I
#                             connection attempts (SYNs) sent to node I of cluster N from
#                             the root namespace since the cluster started
#   hack/testenv.sh cluster-down N
#                             cluster N's nodes killed, its namespaces and bridge removed
#   hack/testenv.sh cut N HOST / heal N HOST
#                             HOST (b1..b3 or a cluster-host) cut off from everyone / back
#   hack/testenv.sh isolate N HOST
#                             HOST (a cluster-host) and the nodes cut off from each other,
#                             the rest of the bridge still reaching HOST; heal ends it
#   hack/testenv.sh slow N HOST DELAY_MS LOSS_PERCENT / fast N HOST
#                             delay and loss on HOST's packets, each way (iptables'
#                             statistic match drops, hack/netdelay holds: this kernel
#                             has no tc netem) / removed
#
# State, logs and the env file live in $MATVIEW_TESTENV_DIR (default: .testenv/
# in the repository); downloads and builds in $MATVIEW_CACHE (default
# ~/.cache/matview), keyed by version.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib/provision.sh
source "$REPO_ROOT/hack/lib/provision.sh"
# shellcheck source=hack/lib/kafka-cluster.sh
source "$REPO_ROOT/hack/lib/kafka-cluster.sh"

: "${MATVIEW_TESTENV_DIR:=$REPO_ROOT/.testenv}"
RUN="$MATVIEW_TESTENV_DIR"
LOGS="$RUN/logs"
PIDS="$RUN/pids"
PKI="$RUN/pki"
ENV_FILE="$RUN/testenv.env"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

alive() { [[ -f "$PIDS/$1" ]] && kill -0 "$(cat "$PIDS/$1")" 2>/dev/null; }

# Waits until "$@" succeeds, or fails naming the log to read.
wait_for() {
  local what="$1" timeout="$2" logfile="$3"; shift 3
  local started=$SECONDS
  local process; process=$(basename "$logfile" .log)
  until "$@" >/dev/null 2>&1; do
    if [[ -f "$PIDS/$process" ]] && ! alive "$process"; then
      tail -n 30 "$logfile" >&2 || true
      die "$what exited during start (log: $logfile)"
    fi
    if (( SECONDS - started > timeout )); then
      tail -n 30 "$logfile" >&2 || true
      die "$what did not become ready within ${timeout}s (log: $logfile)"
    fi
    sleep 0.5
  done
  log "$what ready in $((SECONDS - started)) s"
}

start_bg() {
  local name="$1"; shift
  nohup "$@" >"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name"
}

make_pki() {
  mkdir -p "$PKI"
  cd "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=matview-testenv-ca" \
    -keyout ca.key -out ca.crt 2>/dev/null
  sign() { # name subject [san]
    openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
    if [[ -n "${3:-}" ]]; then
      printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" >"$1.ext"
    else
      printf 'extendedKeyUsage=clientAuth\n' >"$1.ext"
    fi
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
      -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  }
  sign apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  sign admin "/O=system:masters/CN=matview-testenv-admin"
  # Test environment only: the controller manager acts with full rights, as
  # per-controller service-account credentials would need more moving parts.
  sign controller-manager "/O=system:masters/CN=system:kube-controller-manager"
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  cd - >/dev/null
}

write_kubeconfig() { # file user cert key
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: matview-testenv
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    client-certificate: $PKI/$3.crt
    client-key: $PKI/$3.key
contexts:
- name: matview-testenv
  context: {cluster: matview-testenv, user: $2}
current-context: matview-testenv
EOF
}

# A port picked once per environment and kept in $RUN/ports/<name>: a
# component started again listens where its clients look for it.
kept_port() {
  local file="$RUN/ports/$1"
  if [[ ! -f "$file" ]]; then
    mkdir -p "$RUN/ports"
    free_port >"$file"
  fi
  cat "$file"
}

start_etcd() {
  ETCD_PORT=$(kept_port etcd); local peer; peer=$(kept_port etcd-peer)
  start_bg etcd "$K8S_DIR/bin/etcd" --name testenv --data-dir "$RUN/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "testenv=http://127.0.0.1:$peer" --unsafe-no-fsync --quota-backend-bytes 4294967296
  wait_for etcd 60 "$LOGS/etcd.log" curl -sf "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  APISERVER_PORT=$(kept_port kube-apiserver)
  start_bg kube-apiserver "$K8S_DIR/bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true \
    --disable-admission-plugins ServiceAccount --endpoint-reconciler-type none \
    --cert-dir "$RUN/apiserver-certs" --profiling=false --v=1
  write_kubeconfig "$RUN/kubeconfig" admin admin
  wait_for kube-apiserver 120 "$LOGS/kube-apiserver.log" \
    curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz"
  # RBAC bootstrap policy (cluster roles) is written asynchronously after readyz.
  wait_for "RBAC bootstrap roles" 60 "$LOGS/kube-apiserver.log" \
    "$K8S_DIR/bin/kubectl" --kubeconfig "$RUN/kubeconfig" get clusterrole cluster-admin
}

# StatefulSets create Pods and garbage collection follows owner references.
# No scheduler, no kubelet: the tests' process kubelet binds and runs pods.
start_controller_manager() {
  write_kubeconfig "$RUN/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
  start_bg kube-controller-manager "$K8S_DIR/bin/kube-controller-manager" \
    --kubeconfig "$RUN/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 \
    --controllers statefulset,garbagecollector,namespace,disruption,serviceaccount,endpointslice,replicaset,deployment \
    --leader-elect=false --use-service-account-credentials=false \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --concurrent-statefulset-syncs 5 --v=1
  wait_for kube-controller-manager 60 "$LOGS/kube-controller-manager.log" \
    grep -q "Starting stateful set controller" "$LOGS/kube-controller-manager.log"
}

# Kafka's logging: warnings, and the line that says the server started.
kafka_log4j() {
  cat >"$1" <<'EOF'
<Configuration>
  <Appenders>
    <Console name="STDOUT"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console>
  </Appenders>
  <Loggers>
    <Logger name="kafka" level="WARN"/>
    <Logger name="org.apache.kafka" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="kafka.server.KafkaRaftServer" level="INFO"/>
    <Root level="INFO"><AppenderRef ref="STDOUT"/></Root>
  </Loggers>
</Configuration>
EOF
}

# Kafka's own rule for cluster ids: URL-safe base64 of a random UUID, never
# starting with "-" (the format tool would read such an id as an option).
kafka_cluster_id() {
  python3 -c '
import base64, uuid
while True:
    text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not text.startswith("-"):
        print(text)
        break
'
}

# Formats the storage of the node configured in $1 with cluster id $2; the
# tool's output goes to $3, shown if it fails; more arguments are the tool's
# (e.g. --add-scram).
kafka_format() {
  local dir="$1" cluster_id="$2" logfile="$3"; shift 3
  java -Xmx256m -cp "$KAFKA_DIR/lib/*" "-Dlog4j2.configurationFile=$dir/log4j2.xml" \
    kafka.tools.StorageTool format "--cluster-id=$cluster_id" -c "$dir/server.properties" "$@" \
    >"$logfile" 2>&1 || { cat "$logfile" >&2; die "formatting Kafka storage in $dir failed"; }
}

# A KRaft broker whose config and data live in $1, run as process $2 (pid
# in $PIDS/$2, log in $LOGS/$2.log). The first start picks free ports and
# formats the storage; a later start reuses both, so clients reconnect to
# the same address and find their topics.
kafka_instance() {
  local dir="$1" name="$2" secured="${3:-}"
  mkdir -p "$dir"
  if [[ ! -f "$dir/server.properties" ]]; then
    local port controller listeners advertised protocols scram=()
    port=$(free_port); controller=$(free_port)
    listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller"
    advertised="PLAINTEXT://127.0.0.1:$port"
    protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    if [[ "$secured" == sasl-ssl ]]; then
      # A SASL_SSL listener too: SCRAM-SHA-512 user "matview" with a random
      # password, TLS with a certificate from the environment's CA.
      local secure_port; secure_port=$(free_port)
      listeners="$listeners,SASL_SSL://127.0.0.1:$secure_port"
      advertised="$advertised,SASL_SSL://127.0.0.1:$secure_port"
      protocols="$protocols,SASL_SSL:SASL_SSL"
      mkdir -p "$dir/tls"
      sign_server_cert "$dir/tls" kafka
      cat "$dir/tls/server.key" "$dir/tls/server.crt" >"$dir/tls/keystore.pem"
      cp "$PKI/ca.crt" "$dir/tls/ca.pem"
      python3 -c 'import secrets; print(secrets.token_urlsafe(18))' >"$dir/sasl-password"
      echo "127.0.0.1:$secure_port" >"$dir/sasl-ssl-bootstrap"
      scram=(--add-scram "SCRAM-SHA-512=[name=matview,password=$(cat "$dir/sasl-password")]")
    fi
    cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=10485760
EOF
    if [[ "$secured" == sasl-ssl ]]; then
      cat >>"$dir/server.properties" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$dir/tls/keystore.pem
EOF
    fi
    kafka_log4j "$dir/log4j2.xml"
    echo "127.0.0.1:$port" >"$dir/bootstrap"
    kafka_format "$dir" "$(kafka_cluster_id)" "$LOGS/$name-format.log" "${scram[@]}"
  fi
  # The GC log (pauses and safepoints, with wall-clock times) is what tells
  # a slow acknowledgement caused by the broker's JVM from one caused elsewhere.
  local java_opts=(-Xms256m -Xmx1g -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
    "-Xlog:gc*,safepoint:file=$LOGS/$name-gc.log:time,uptime,level,tags:filecount=2,filesize=20m"
    "-Dlog4j2.configurationFile=$dir/log4j2.xml" "-Dkafka.logs.dir=$LOGS")
  start_bg "$name" java "${java_opts[@]}" -cp "$KAFKA_DIR/lib/*" kafka.Kafka "$dir/server.properties"
  wait_for "kafka ($name)" 120 "$LOGS/$name.log" grep -q "Kafka Server started" "$LOGS/$name.log"
}

# A server certificate from the environment's CA: key $1/server.key,
# certificate $1/server.crt, common name $2. The serial is random: tests
# start secured components concurrently, and openssl's shared serial file
# (-CAcreateserial) is rewritten in place, so a concurrent reader can find
# it empty and fail.
sign_server_cert() {
  local dir="$1" cn="$2" err="$1/openssl.err"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
  if ! { openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$dir/server.key" -out "$dir/server.csr" &&
    openssl x509 -req -in "$dir/server.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
      -set_serial "0x$(openssl rand -hex 16)" -days 365 -extfile "$dir/server.ext" -out "$dir/server.crt"; } 2>"$err"; then
    cat "$err" >&2
    die "cannot sign a certificate for $cn in $dir"
  fi
}

# A schema registry whose data live in $1 (an H2 file written at each commit,
# so a registry killed and started again serves the same schemas under the
# same ids), run as process $2.
registry_instance() {
  local dir="$1" name="$2"
  mkdir -p "$dir"
  [[ -f "$dir/port" ]] || free_port >"$dir/port"
  [[ -f "$dir/management-port" ]] || free_port >"$dir/management-port"
  local port java; port=$(cat "$dir/port"); java=$(registry_java)
  # Loopback only, the management interface (health, metrics) too: it is
  # built in, and would otherwise listen on 0.0.0.0:9000.
  start_bg "$name" env QUARKUS_HTTP_HOST=127.0.0.1 QUARKUS_HTTP_PORT="$port" \
    QUARKUS_MANAGEMENT_HOST=127.0.0.1 QUARKUS_MANAGEMENT_PORT="$(cat "$dir/management-port")" \
    QUARKUS_HTTP_ACCESS_LOG_ENABLED=false \
    APICURIO_DATASOURCE_URL="jdbc:h2:file:$dir/registry;DB_CLOSE_ON_EXIT=FALSE;WRITE_DELAY=0" \
    "$java" -Xms64m -Xmx384m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -jar "$REGISTRY_DIR/quarkus-run.jar"
  wait_for "schema registry ($name)" 120 "$LOGS/$name.log" \
    curl -sf "http://127.0.0.1:$port/apis/ccompat/v7/subjects"
  # The Confluent-compatible API: what clients call the registry URL.
  echo "http://127.0.0.1:$port/apis/ccompat/v7" >"$dir/url"
}

# A front for the registry in $1 (nginx, Debian's package): https with a
# certificate from the environment's CA, HTTP basic auth (user "matview", a
# random password in $1/password), run as process $2. One process, no
# daemon: it is the test's, killed with it.
registry_front() {
  local dir="$1" name="$2" nginx
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
  [[ -x "$nginx" ]] || die "nginx is missing: install Debian's package (apt-get install nginx)"
  mkdir -p "$dir/front/tmp"
  [[ -f "$dir/front-port" ]] || free_port >"$dir/front-port"
  if [[ ! -f "$dir/password" ]]; then
    sign_server_cert "$dir/front" schema-registry
    python3 -c 'import secrets; print(secrets.token_urlsafe(18))' >"$dir/password"
    printf 'matview:%s\n' "$(openssl passwd -apr1 "$(cat "$dir/password")")" >"$dir/front/htpasswd"
  fi
  local port upstream; port=$(cat "$dir/front-port"); upstream=$(cat "$dir/port")
  cat >"$dir/front/nginx.conf" <<EOF
daemon off;
master_process off;
pid $dir/front/nginx.pid;
error_log $LOGS/$name.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $dir/front/tmp/body;
  proxy_temp_path $dir/front/tmp/proxy;
  fastcgi_temp_path $dir/front/tmp/fastcgi;
  uwsgi_temp_path $dir/front/tmp/uwsgi;
  scgi_temp_path $dir/front/tmp/scgi;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $dir/front/server.crt;
    ssl_certificate_key $dir/front/server.key;
    location / {
      auth_basic "schema registry";
      auth_basic_user_file $dir/front/htpasswd;
      proxy_set_header Authorization "";
      proxy_pass http://127.0.0.1:$upstream;
    }
  }
}
EOF
  start_bg "$name" "$nginx" -p "$dir/front" -e "$LOGS/$name.log" -c "$dir/front/nginx.conf"
  wait_for "registry front ($name)" 30 "$LOGS/$name.log" \
    curl -sf --cacert "$PKI/ca.crt" -u "matview:$(cat "$dir/password")" \
    "https://127.0.0.1:$port/apis/ccompat/v7/subjects"
  echo "https://127.0.0.1:$port/apis/ccompat/v7" >"$dir/secured-url"
}

start_registry() {
  registry_instance "$RUN/registry" registry
  REGISTRY_URL=$(cat "$RUN/registry/url")
}

start_kafka() {
  kafka_instance "$RUN/kafka" kafka
  KAFKA_PORT=$(sed 's/.*://' "$RUN/kafka/bootstrap")
}

# The control plane stopped and started again on the same ports and data,
# for the test of an API server outage: the API server and controller
# manager killed at once (a crash; a graceful stop drains for many seconds),
# etcd stopped cleanly (it runs without fsync).
cmd_stop_control_plane() {
  [[ -d "$PIDS" ]] || die "the test environment is not running"
  local c pid
  for c in kube-controller-manager kube-apiserver etcd; do
    alive "$c" || continue
    pid=$(cat "$PIDS/$c")
    if [[ "$c" == etcd ]]; then kill -TERM "$pid"; else kill -KILL "$pid"; fi
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  log "control plane stopped"
}

cmd_start_control_plane() {
  [[ -d "$PIDS" ]] || die "the test environment is not running"
  provision_kubernetes
  alive etcd || start_etcd
  alive kube-apiserver || start_apiserver
  alive kube-controller-manager || start_controller_manager
}

# A broker of one test's own, for tests that stop and start it: started (or
# started again, same address and data) as process broker-<name>; prints its
# bootstrap address. `down` stops it with the rest.
cmd_broker() {
  local name="${1:?usage: hack/testenv.sh broker <name> [sasl-ssl]}" secured="${2:-}"
  [[ "$name" =~ ^[a-z0-9-]+$ ]] || die "a broker name is lowercase letters, digits and '-'"
  [[ -d "$LOGS" && -d "$PIDS" ]] || die "the test environment is not running: start it with \`make testenv\`"
  provision_kafka
  if alive "broker-$name"; then
    die "broker $name is already running (pid $(cat "$PIDS/broker-$name"))"
  fi
  kafka_instance "$RUN/brokers/$name" "broker-$name" "$secured"
  cat "$RUN/brokers/$name/bootstrap"
}

# A schema registry of one test's own, for tests that stop and start it.
cmd_registry() {
  local name="${1:?usage: hack/testenv.sh registry <name> [secured]}" secured="${2:-}"
  [[ "$name" =~ ^[a-z0-9-]+$ ]] || die "a registry name is lowercase letters, digits and '-'"
  [[ -z "$secured" || "$secured" == secured ]] || die "unknown registry option $secured (secured)"
  [[ -d "$LOGS" && -d "$PIDS" ]] || die "the test environment is not running: start it with \`make testenv\`"
  provision_registry
  alive "registry-$name" && die "registry $name is already running (pid $(cat "$PIDS/registry-$name"))"
  registry_instance "$RUN/registries/$name" "registry-$name"
  if [[ "$secured" == secured ]]; then
    alive "registry-$name-front" || registry_front "$RUN/registries/$name" "registry-$name-front"
    cat "$RUN/registries/$name/secured-url"
  else
    cat "$RUN/registries/$name/url"
  fi
}

cmd_stop_registry() {
  local name="${1:?usage: hack/testenv.sh stop-registry <name>}"
  alive "registry-$name" || die "registry $name is not running"
  local pid; pid=$(cat "$PIDS/registry-$name")
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$PIDS/registry-$name"
  log "registry $name stopped"
}

write_env() {
  cat >"$ENV_FILE" <<EOF
KUBECONFIG=$RUN/kubeconfig
MATVIEW_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
MATVIEW_KUBE_BIN=$K8S_DIR/bin
MATVIEW_HELM_BIN=$HELM_DIR/bin
MATVIEW_SCHEMATHESIS_BIN=$SCHEMATHESIS_DIR/bin
MATVIEW_PUPPETEER_CORE=$PUPPETEER_DIR/node_modules/puppeteer-core/lib/puppeteer/puppeteer-core.js
MATVIEW_TESTENV_DIR=$RUN
MATVIEW_TESTENV_PKI=$PKI
MATVIEW_ETCD=http://127.0.0.1:$ETCD_PORT
MATVIEW_SCHEMA_REGISTRY=$REGISTRY_URL
MATVIEW_SERDES_PYTHON=$SERDES_DIR/bin/python
EOF
}

print_env() {
  [[ -f "$ENV_FILE" ]] || die "the test environment is not running: start it with \`make testenv\`"
  sed 's/^/export /' "$ENV_FILE"
  echo "export PATH=\"$K8S_DIR/bin:$HELM_DIR/bin:\$PATH\""
}

healthy() {
  [[ -f "$ENV_FILE" ]] && alive etcd && alive kube-apiserver && alive kube-controller-manager && alive kafka && alive registry || return 1
  local bootstrap; bootstrap=$(sed -n 's/^MATVIEW_KAFKA_BOOTSTRAP=//p' "$ENV_FILE")
  "$K8S_DIR/bin/kubectl" --kubeconfig "$RUN/kubeconfig" get --raw /readyz >/dev/null 2>&1 || return 1
  (exec 3<>"/dev/tcp/${bootstrap%:*}/${bootstrap#*:}") 2>/dev/null
}

cmd_provision() {
  provision_kafka
  provision_helm
  provision_schemathesis
  provision_puppeteer
  provision_kubernetes
  provision_registry
  provision_serdes
}

cmd_up() {
  cmd_provision
  if healthy; then
    log "already running (env: $ENV_FILE)"
    return 0
  fi
  cmd_down quiet
  local started=$SECONDS
  mkdir -p "$LOGS" "$PIDS"
  make_pki
  start_etcd
  start_apiserver
  start_controller_manager
  start_kafka
  start_registry
  write_env
  log "up in $((SECONDS - started)) s; logs in $LOGS; env: eval \"\$(hack/testenv.sh env)\""
}

cmd_down() {
  if [[ -d "$PIDS" ]]; then
    for f in "$PIDS"/*; do
      [[ -f "$f" ]] || continue
      kill -TERM "$(cat "$f")" 2>/dev/null || true
    done
    local deadline=$((SECONDS + 15))
    for f in "$PIDS"/*; do
      [[ -f "$f" ]] || continue
      while kill -0 "$(cat "$f")" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
    done
  fi
  # Anything still holding a file of this environment goes too (children, strays).
  pkill -KILL -f -- "$RUN/" 2>/dev/null || true
  cluster_network_down
  rm -rf "$RUN"
  [[ "${1:-}" == quiet ]] || log "stopped; no process of the test environment is left"
}

cmd_status() {
  for c in etcd kube-apiserver kube-controller-manager kafka registry; do
    if alive "$c"; then echo "$c: running (pid $(cat "$PIDS/$c"))"; else echo "$c: stopped"; fi
  done
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) print_env ;;
  provision) cmd_provision ;;
  broker) shift; cmd_broker "$@" ;;
  registry) shift; cmd_registry "$@" ;;
  stop-registry) shift; cmd_stop_registry "$@" ;;
  stop-control-plane) cmd_stop_control_plane ;;
  start-control-plane) cmd_start_control_plane ;;
  cluster) shift; cmd_cluster "$@" ;;
  cluster-host) shift; cmd_cluster_host "$@" ;;
  cluster-kill) shift; cmd_cluster_kill "$@" ;;
  cluster-stop) shift; cmd_cluster_stop "$@" ;;
  cluster-down) shift; cmd_cluster_down "$@" ;;
  cluster-start) shift; cmd_cluster_start "$@" ;;
  cluster-syns) shift; cmd_cluster_syns "$@" ;;
  cut) shift; cmd_cut "$@" ;;
  heal) shift; cmd_heal "$@" ;;
  isolate) shift; cmd_isolate "$@" ;;
  slow) shift; cmd_slow "$@" ;;
  fast) shift; cmd_fast "$@" ;;
  *) echo "usage: $0 up|down|status|env|provision|broker <name>|registry <name>|stop-registry <name>|stop-control-plane|start-control-plane|cluster <name>|cluster-host <cluster> <host>|cluster-kill|cluster-stop <cluster> <node>|cluster-start <cluster> <node>|cluster-syns <cluster> <node>|cluster-down <cluster>|cut|heal|isolate <cluster> <host>|slow <cluster> <host> <delay-ms> <loss-percent>|fast <cluster> <host>" >&2; exit 2 ;;
esac
