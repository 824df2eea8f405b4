#!/usr/bin/env bash
# Delivery through 3-node clusters (deploy/local-cluster.sh: local PostgreSQL and NATS)
# beside the same workload on a standalone node (SQLite, no NATS): a publisher on node 1,
# subscribers on node 1 or on nodes 2 and 3 (across NATS). Two clusters run side by side,
# one carrying the backplane on JetStream (the default: nothing lost across a NATS
# restart) and one on core NATS (nats_jetstream = false), so every round measures both
# ways in turn. Prints a markdown table and the commands. Everything shares the machine's
# cores.
#
#   bash bench/cluster.sh [ROUNDS]     # each workload ROUNDS times, alternating (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
hp=target/release/hpfriends
[ -x "$hp" ] || cargo build --release --locked
export HPFRIENDS_BIN="$hp"
server=postgres://postgres@127.0.0.1:5432
solo_dir=$(mktemp -d)
channels=bench.0

# Cluster KIND ("js" or "core"): its database, directory, NATS prefix and ports.
cluster() {
    local kind=$1
    shift
    local base=10001 web="18081 18082 18083" js=true
    if [ "$kind" = core ]; then base=10011 web="18091 18092 18093" js=false; fi
    CLUSTER_DB="$server/hpf_bench_${kind}_$$" CLUSTER_DIR="target/bench-cluster-$kind" \
        CLUSTER_PREFIX="hpfbench${kind}$$" CLUSTER_PORTS="$base $((base + 1)) $((base + 2))" \
        CLUSTER_WEB_PORTS="$web" HPFRIENDS_NATS_JETSTREAM=$js "$@"
}
cleanup() {
    kill "$solo" 2>/dev/null || true
    rm -rf "$solo_dir"
    for kind in js core; do
        cluster "$kind" deploy/local-cluster.sh stop >/dev/null 2>&1 || true
        psql "$server/postgres" -qc "DROP DATABASE IF EXISTS hpf_bench_${kind}_$$" 2>/dev/null || true
        cluster "$kind" deploy/local-cluster.sh forget >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT

keys() { # the same user and keys on database $1
    $hp --db "$1" user add bench --email bench@localhost >/dev/null
    $hp --db "$1" authkey add --owner bench --ident benchpub --secret bench --publish "$channels" >/dev/null
    $hp --db "$1" authkey add --owner bench --ident benchsub --secret bench --publish "$channels" --subscribe "$channels" >/dev/null
}
for kind in js core; do
    rm -rf "target/bench-cluster-$kind"
    cluster "$kind" deploy/local-cluster.sh start >/dev/null
    keys "$server/hpf_bench_${kind}_$$"
done
# A standalone node on SQLite with the same keys, no NATS.
keys "$solo_dir/solo.db"
(cd "$solo_dir" && exec "$OLDPWD/$hp" --db solo.db serve --listen 127.0.0.1:10009 --web-listen off >out 2>log) &
solo=$!
for _ in $(seq 1 100); do grep -q "hpfriends listening" "$solo_dir/out" 2>/dev/null && break; sleep 0.1; done

run() { # label, port, then bench arguments
    local label=$1 port=$2
    shift 2
    local out
    out=$($hp bench --port "$port" --json "$@")
    python3 - "$label" "$out" <<'EOF'
import json, sys
label, r = sys.argv[1], json.loads(sys.argv[2])
print(f"| {label} | {r['published_per_s']:,.0f} | {r['delivered_per_s']:,.0f} | {r['lost']} | {r['duplicates']} | {r['misordered']} | {r['p50_us']/1000:.3f} | {r['p99_us']/1000:.3f} | {r['max_us']/1000:.3f} |")
EOF
}

# Waits until the nodes of a cluster (web ports $@) have taken in everything the last row
# sent them: a node that lags hands a later row's subscribers the earlier row's messages,
# whose numbers the benchmark would count as duplicates and out of order.
settle() {
    local before=-1 now
    for _ in $(seq 1 120); do
        now=0
        for p in "$@"; do
            now=$((now + $(curl -s "http://127.0.0.1:$p/metrics" |
                awk '/^hpfriends_cluster_remote_received_total/ {printf "%d", $2}')))
        done
        [ "$now" = "$before" ] && return 0
        before=$now
        sleep 0.5
    done
}

echo "| workload, where | published msg/s | delivered msg/s | lost | duplicated | misordered | p50 ms | p99 ms | max ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in $(seq 1 "$rounds"); do
    for w in "1→2 at 20,000 msg/s|--messages 200000 --subscribers 2 --rate 20000" \
        "1→2 at 50,000 msg/s|--messages 500000 --subscribers 2 --rate 50000" \
        "1→2 flat out|--messages 500000 --subscribers 2" \
        "1→10 flat out|--messages 200000 --subscribers 10"; do
        name=${w%%|*}
        args=${w#*|}
        # shellcheck disable=SC2086
        run "$name, standalone node (round $r)" 10009 $args
        for kind in js core; do
            base=10001 web=18081
            [ "$kind" = core ] && base=10011 web=18091
            settle $web $((web + 1)) $((web + 2))
            # shellcheck disable=SC2086
            run "$name, $kind cluster node 1 → node 1 (round $r)" $base $args --sub-at 127.0.0.1:$base
            settle $web $((web + 1)) $((web + 2))
            # shellcheck disable=SC2086
            run "$name, $kind cluster node 1 → nodes 2+3 (round $r)" $base $args \
                --sub-at 127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))
        done
    done
done
echo
echo "Commands: \`bash bench/cluster.sh $rounds\` ($($hp --version)); each row \`hpfriends bench --port P"
echo "[--sub-at …] ...\` against two \`deploy/local-cluster.sh start\` clusters (js: ports 10001-10003,"
echo "core: 10011-10013 with HPFRIENDS_NATS_JETSTREAM=false)."
for kind in js core; do
    cluster "$kind" deploy/local-cluster.sh stop >/dev/null
done
echo
echo "Backplane counters at stop (node 1 relays; nodes 2 and 3 receive):"
for kind in js core; do
    grep -h "cluster at stop" "target/bench-cluster-$kind"/node*/log | sed "s/.*cluster at stop: /    $kind: /"
done
