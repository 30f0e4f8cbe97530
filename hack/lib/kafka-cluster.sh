# A replicated Kafka cluster of a test's own: three KRaft nodes (each broker
# and controller), each in a network namespace of its own with its own
# address, joined by veth pairs to a bridge the environment made. Processes
# in the root namespace (tests, projectors, the gateway) reach the nodes
# through the bridge; a test cuts, heals and slows any host's link.
# Sourced by hack/testenv.sh (needs its log, die, alive, start_bg, wait_for,
# kafka_log4j, kafka_cluster_id, kafka_format, free_port, $RUN, $LOGS, $PIDS
# and $KAFKA_DIR). Needs root (ip netns, veth, iptables).
#
# Addresses: cluster on subnet 10.213.K.0/24, K picked free per cluster;
# the bridge mvbK is 10.213.K.1, node i is 10.213.K.(10+i), extra hosts
# (a test's own, e.g. a projector's) 10.213.K.(20+j). Nothing else is ever
# addressed.

CLUSTER_NODES=3
CLUSTER_NET=10.213

cluster_dir() { echo "$RUN/clusters/$1"; }

need_root_net() {
  [[ $EUID -eq 0 ]] || die "the Kafka cluster needs root (ip netns, veth, iptables)"
  command -v ip >/dev/null || die "ip is missing: apt-get install iproute2"
  command -v iptables >/dev/null || die "iptables is missing: apt-get install iptables"
}

# Picks a free subnet number for cluster $1 and makes its bridge.
cluster_network() {
  local dir="$1" k
  if [[ -f "$dir/subnet" ]]; then cat "$dir/subnet"; return; fi
  mkdir -p "$RUN/subnets"
  for k in $(seq 1 250); do
    # mkdir is the lock: concurrent tests never share a subnet, and a subnet
    # is never used twice in one environment (a namespace's links can
    # outlive its deletion for a moment).
    if ! ip link show "mvb$k" >/dev/null 2>&1 && mkdir "$RUN/subnets/$k" 2>/dev/null; then
      ip link add "mvb$k" type bridge
      ip addr add "$CLUSTER_NET.$k.1/24" dev "mvb$k"
      ip link set "mvb$k" up
      echo "$k" >"$dir/subnet"
      echo "$k"
      return
    fi
  done
  die "no free subnet for a Kafka cluster"
}

# Host $3 (b1..b3 or a test's own name) of the cluster on subnet $1 with
# address $2: a namespace with a veth to the bridge. Idempotent.
cluster_host() {
  local k="$1" address="$2" host="$3"
  local ns="mv$k-$host" link="mv$k-$host"
  ip netns list | grep -qw "$ns" && return 0
  ip netns add "$ns"
  echo "$ns" >>"$RUN/namespaces"
  # The namespace's end gets a name of its own ("<link>p"): no clash with
  # any interface of the root namespace while it is made.
  ip link add "$link" type veth peer name "${link}p" netns "$ns"
  ip link set "$link" master "mvb$k"
  ip link set "$link" up
  ip -n "$ns" addr add "$address/24" dev "${link}p"
  ip -n "$ns" link set "${link}p" up
  ip -n "$ns" link set lo up
}

cluster_node_config() {
  local dir="$1" k="$2" i="$3" voters="$4"
  local address="$CLUSTER_NET.$k.$((10 + i))"
  mkdir -p "$dir"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://$address:9092,CONTROLLER://$address:9093
advertised.listeners=PLAINTEXT://$address:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
auto.create.topics.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
message.max.bytes=10485760
EOF
  kafka_log4j "$dir/log4j2.xml"
}

# Starts node $2 of cluster $1 (again, same address and data) in its namespace.
cluster_start_node() {
  local name="$1" i="$2" dir k
  dir=$(cluster_dir "$name")
  k=$(cat "$dir/subnet")
  alive "cluster-$name-b$i" && return 0
  rm -f "$LOGS/cluster-$name-b$i.log"
  start_bg "cluster-$name-b$i" ip netns exec "mv$k-b$i" java -Xms128m -Xmx512m -XX:+UseG1GC \
    -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$dir/b$i/log4j2.xml" "-Dkafka.logs.dir=$LOGS" \
    -cp "$KAFKA_DIR/lib/*" kafka.Kafka "$dir/b$i/server.properties"
}

cluster_wait_node() {
  local name="$1" i="$2"
  wait_for "kafka node $i of cluster $name" 180 "$LOGS/cluster-$name-b$i.log" \
    grep -q "Kafka Server started" "$LOGS/cluster-$name-b$i.log"
}

cluster_bootstrap() {
  local k; k=$(cat "$(cluster_dir "$1")/subnet")
  local i out=()
  for i in $(seq 1 $CLUSTER_NODES); do out+=("$CLUSTER_NET.$k.$((10 + i)):9092"); done
  (IFS=,; echo "${out[*]}")
}

# `cluster N`: starts (or starts again) cluster N's three nodes; prints the
# bootstrap servers.
cmd_cluster() {
  local name="${1:?usage: hack/testenv.sh cluster <name>}"
  [[ "$name" =~ ^[a-z0-9-]+$ && ${#name} -le 40 ]] || die "a cluster name is lowercase letters, digits and '-'"
  [[ -d "$LOGS" && -d "$PIDS" ]] || die "the test environment is not running: start it with \`make testenv\`"
  need_root_net
  provision_kafka
  local dir k i voters=()
  dir=$(cluster_dir "$name")
  mkdir -p "$dir"
  k=$(cluster_network "$dir")
  for i in $(seq 1 $CLUSTER_NODES); do
    cluster_host "$k" "$CLUSTER_NET.$k.$((10 + i))" "b$i"
    voters+=("$i@$CLUSTER_NET.$k.$((10 + i)):9093")
  done
  if [[ ! -f "$dir/formatted" ]]; then
    local cluster_id; cluster_id=$(kafka_cluster_id)
    for i in $(seq 1 $CLUSTER_NODES); do
      cluster_node_config "$dir/b$i" "$k" "$i" "$(IFS=,; echo "${voters[*]}")"
      kafka_format "$dir/b$i" "$cluster_id" "$LOGS/cluster-$name-b$i-format.log"
    done
    touch "$dir/formatted"
  fi
  syn_counters "$k"
  for i in $(seq 1 $CLUSTER_NODES); do cluster_start_node "$name" "$i"; done
  for i in $(seq 1 $CLUSTER_NODES); do cluster_wait_node "$name" "$i"; done
  cluster_bootstrap "$name"
}

# Counters of the TCP connection attempts (SYN packets, retransmissions
# included) sent from the root namespace (tests, projectors, the operator)
# to each node of subnet $1: chain MVSYN<k>, one rule per node. Idempotent.
syn_counters() {
  local k="$1" i chain="MVSYN$1"
  iptables -N "$chain" 2>/dev/null || return 0
  for i in $(seq 1 $CLUSTER_NODES); do
    iptables -A "$chain" -d "$CLUSTER_NET.$k.$((10 + i))" -j RETURN
  done
  iptables -I OUTPUT -d "$CLUSTER_NET.$k.0/24" -p tcp --syn -j "$chain"
}

syn_counters_down() {
  local k="$1" chain="MVSYN$1"
  iptables -D OUTPUT -d "$CLUSTER_NET.$k.0/24" -p tcp --syn -j "$chain" 2>/dev/null || true
  iptables -F "$chain" 2>/dev/null || true
  iptables -X "$chain" 2>/dev/null || true
}

# `cluster-syns N I`: how many connection attempts the root namespace has
# sent node I of cluster N since the cluster started (a reconnect storm
# shows as a steep count while the node is down).
cmd_cluster_syns() {
  local name="${1:?usage: hack/testenv.sh cluster-syns <cluster> <node>}" i="${2:?node}" dir k
  dir=$(cluster_dir "$name")
  [[ -f "$dir/subnet" ]] || die "no cluster $name"
  k=$(cat "$dir/subnet")
  iptables -L "MVSYN$k" -v -x -n 2>/dev/null |
    awk -v node="$CLUSTER_NET.$k.$((10 + i))" '$NF == node { print $1; found = 1 } END { if (!found) exit 1 }' ||
    die "cluster $name has no connection counter for node $i"
}

# `cluster-host N HOST`: a namespace of the test's own on cluster N's network
# (for a process the test cuts off); prints its address.
cmd_cluster_host() {
  local name="${1:?usage: hack/testenv.sh cluster-host <cluster> <host>}" host="${2:?host}"
  [[ "$host" =~ ^[a-z][a-z0-9]{0,5}$ && ! "$host" =~ ^b[0-9]+$ ]] ||
    die "a host name is 1-6 lowercase letters and digits, a letter first, not b<N>"
  need_root_net
  local dir k index
  dir=$(cluster_dir "$name")
  [[ -f "$dir/subnet" ]] || die "no cluster $name"
  k=$(cat "$dir/subnet")
  touch "$dir/hosts"
  index=$(grep -n "^$host\$" "$dir/hosts" | cut -d: -f1 || true)
  if [[ -z "$index" ]]; then
    echo "$host" >>"$dir/hosts"
    index=$(wc -l <"$dir/hosts")
  fi
  cluster_host "$k" "$CLUSTER_NET.$k.$((20 + index))" "$host"
  echo "$CLUSTER_NET.$k.$((20 + index))"
}

cluster_link() {
  local name="$1" host="$2" dir k
  dir=$(cluster_dir "$name")
  [[ -f "$dir/subnet" ]] || die "no cluster $name"
  k=$(cat "$dir/subnet")
  ip link show "mv$k-$host" >/dev/null 2>&1 || die "cluster $name has no host $host"
  echo "mv$k-$host"
}

# `cluster-kill N I`: kill -9 node I; `cluster-start N I`: start it again.
cmd_cluster_kill() {
  local name="${1:?usage: hack/testenv.sh cluster-kill <cluster> <node>}" i="${2:?node}"
  alive "cluster-$name-b$i" || die "node $i of cluster $name is not running"
  local pid; pid=$(cat "$PIDS/cluster-$name-b$i")
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$PIDS/cluster-$name-b$i"
  log "node $i of cluster $name killed"
}

# `cluster-stop N I`: node I shut down cleanly (SIGTERM, as an upgrade does), waited for.
cmd_cluster_stop() {
  local name="${1:?usage: hack/testenv.sh cluster-stop <cluster> <node>}" i="${2:?node}"
  alive "cluster-$name-b$i" || die "node $i of cluster $name is not running"
  local pid deadline; pid=$(cat "$PIDS/cluster-$name-b$i")
  kill -TERM "$pid"
  deadline=$((SECONDS + 120))
  while kill -0 "$pid" 2>/dev/null; do
    (( SECONDS < deadline )) || die "node $i of cluster $name did not stop within 120 s"
    sleep 0.2
  done
  rm -f "$PIDS/cluster-$name-b$i"
  log "node $i of cluster $name stopped"
}

cmd_cluster_start() {
  local name="${1:?usage: hack/testenv.sh cluster-start <cluster> <node>}" i="${2:?node}"
  provision_kafka
  cluster_start_node "$name" "$i"
  cluster_wait_node "$name" "$i"
}

# `cut N HOST` / `heal N HOST`: HOST's link to everyone down / up again.
cmd_cut() {
  local link; link=$(cluster_link "${1:?usage: hack/testenv.sh cut <cluster> <host>}" "${2:?host}")
  ip link set "$link" down
  log "cut $2 off cluster $1"
}

cmd_heal() {
  local link; link=$(cluster_link "${1:?usage: hack/testenv.sh heal <cluster> <host>}" "${2:?host}")
  ip link set "$link" up
  ip netns exec "$link" iptables -F MVISOLATE 2>/dev/null || true
  log "healed $2 of cluster $1"
}

# `isolate N HOST`: HOST (a cluster-host) and the three nodes no longer
# reach each other; everything else on the bridge still reaches HOST (a
# projector cut off from Kafka, still asked by the gateway). `heal` ends it.
cmd_isolate() {
  local name="${1:?usage: hack/testenv.sh isolate <cluster> <host>}" host="${2:?host}" link k i
  link=$(cluster_link "$name" "$host")
  k=$(cat "$(cluster_dir "$name")/subnet")
  ip netns exec "$link" iptables -N MVISOLATE 2>/dev/null || ip netns exec "$link" iptables -F MVISOLATE
  for i in $(seq 1 $CLUSTER_NODES); do
    ip netns exec "$link" iptables -A MVISOLATE -s "$CLUSTER_NET.$k.$((10 + i))" -j DROP
    ip netns exec "$link" iptables -A MVISOLATE -d "$CLUSTER_NET.$k.$((10 + i))" -j DROP
  done
  ip netns exec "$link" iptables -C INPUT -j MVISOLATE 2>/dev/null || ip netns exec "$link" iptables -I INPUT -j MVISOLATE
  ip netns exec "$link" iptables -C OUTPUT -j MVISOLATE 2>/dev/null || ip netns exec "$link" iptables -I OUTPUT -j MVISOLATE
  log "isolated $host from the nodes of cluster $name"
}

# netdelay (hack/netdelay): delays a queue's packets, the stand-in for
# `tc netem delay` on kernels without sch_netem (this one); built with cc
# against libnetfilter_queue (Debian's libnetfilter-queue-dev), cached by
# its source's hash.
provision_netdelay() {
  local source="$REPO_ROOT/hack/netdelay/netdelay.c" hash
  hash=$(sha256sum "$source" | cut -c1-12)
  NETDELAY="$MATVIEW_CACHE/netdelay-$hash/netdelay"
  [[ -x "$NETDELAY" ]] && return 0
  command -v iptables >/dev/null || die "iptables is missing: apt-get install iptables"
  [[ -f /usr/include/libnetfilter_queue/libnetfilter_queue.h ]] ||
    die "libnetfilter_queue is missing: apt-get install libnetfilter-queue-dev"
  mkdir -p "$(dirname "$NETDELAY")"
  cc -O2 -Wall -o "$NETDELAY.tmp" "$source" -lnetfilter_queue || die "building netdelay failed"
  mv "$NETDELAY.tmp" "$NETDELAY"
}

# `slow N HOST DELAY_MS LOSS_PERCENT`: every packet to and from HOST is
# dropped with that probability (iptables' statistic match) and the rest
# held DELAY_MS (netdelay), each way; `fast N HOST` removes both.
cmd_slow() {
  local name="${1:?usage: hack/testenv.sh slow <cluster> <host> <delay-ms> <loss-percent>}" host="${2:?host}"
  local delay="${3:?delay ms}" loss="${4:?loss percent}" k ns
  [[ "$delay" =~ ^[0-9]+$ && "$loss" =~ ^[0-9]+$ && "$loss" -le 100 ]] || die "delay is whole ms, loss a whole percent"
  cluster_link "$name" "$host" >/dev/null
  provision_netdelay
  k=$(cat "$(cluster_dir "$name")/subnet")
  ns="mv$k-$host"
  cmd_fast "$name" "$host" quiet
  local probability; probability=$(python3 -c "print($loss / 100)")
  local chain interface
  for chain in INPUT OUTPUT; do
    [[ $chain == INPUT ]] && interface="-i" || interface="-o"
    if ((loss > 0)); then
      ip netns exec "$ns" iptables -A "$chain" ! "$interface" lo -m statistic --mode random \
        --probability "$probability" -j DROP
    fi
    if ((delay > 0)); then
      ip netns exec "$ns" iptables -A "$chain" ! "$interface" lo -j NFQUEUE --queue-num 0 --queue-bypass
    fi
  done
  if ((delay > 0)); then
    start_bg "netdelay-$name-$host" ip netns exec "$ns" "$NETDELAY" 0 "$delay"
    wait_for "netdelay on $host" 10 "$LOGS/netdelay-$name-$host.log" \
      grep -q "netdelay: queue" "$LOGS/netdelay-$name-$host.log"
  fi
  log "slowed $host of cluster $name: ${delay} ms, ${loss} % loss each way"
}

cmd_fast() {
  local name="${1:?usage: hack/testenv.sh fast <cluster> <host>}" host="${2:?host}" k
  cluster_link "$name" "$host" >/dev/null
  k=$(cat "$(cluster_dir "$name")/subnet")
  ip netns exec "mv$k-$host" iptables -F INPUT
  ip netns exec "mv$k-$host" iptables -F OUTPUT
  if [[ -f "$PIDS/netdelay-$name-$host" ]]; then
    kill -KILL "$(cat "$PIDS/netdelay-$name-$host")" 2>/dev/null || true
    rm -f "$PIDS/netdelay-$name-$host"
  fi
  [[ "${3:-}" == quiet ]] || log "$host of cluster $name at full speed again"
}

# Removes every namespace and bridge the environment made (after its
# processes are gone).
cluster_network_down() {
  local ns k
  if [[ -f "$RUN/namespaces" ]]; then
    while read -r ns; do ip netns del "$ns" 2>/dev/null || true; done <"$RUN/namespaces"
  fi
  if [[ -d "$RUN/subnets" ]]; then
    for k in "$RUN"/subnets/*; do
      [[ -d "$k" ]] || continue
      ip link del "mvb$(basename "$k")" 2>/dev/null || true
      syn_counters_down "$(basename "$k")"
    done
  fi
}

# `cluster-down N`: cluster N's nodes killed, its namespaces, bridge and data gone.
cmd_cluster_down() {
  local name="${1:?usage: hack/testenv.sh cluster-down <cluster>}" dir k f
  dir=$(cluster_dir "$name")
  [[ -f "$dir/subnet" ]] || return 0
  k=$(cat "$dir/subnet")
  for f in "$PIDS"/cluster-"$name"-b* "$PIDS"/netdelay-"$name"-*; do
    [[ -f "$f" ]] || continue
    kill -KILL "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  pkill -KILL -f -- "$dir/" 2>/dev/null || true
  local ns
  for ns in $(ip netns list | awk '{print $1}' | grep "^mv$k-" || true); do
    ip link del "$ns" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  ip link del "mvb$k" 2>/dev/null || true
  syn_counters_down "$k"
  # The subnet's lock stays: it is not used again in this environment.
  rm -rf "$dir"
  log "cluster $name is gone"
}
