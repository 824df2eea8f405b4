#!/usr/bin/env bash
# Delivery through a 3-node cluster (deploy/local-cluster.sh: local PostgreSQL and NATS)
# beside the same workload on a standalone node (SQLite, no NATS) and on one node of the
# cluster: a publisher on node 1, subscribers on node 1 or on nodes 2 and 3 (across NATS).
# Prints a markdown table and the commands. Everything shares the machine's cores.
#
#   bash bench/cluster.sh [ROUNDS]     # each workload ROUNDS times, alternating (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
hp=target/release/hpfriends
[ -x "$hp" ] || cargo build --release --locked
export CLUSTER_DB="postgres://postgres@127.0.0.1:5432/hpf_bench_cluster_$$"
export CLUSTER_DIR="target/bench-cluster" CLUSTER_PREFIX="hpfbench$$" HPFRIENDS_BIN="$hp"
solo_dir=$(mktemp -d)
trap 'kill "$solo" 2>/dev/null; rm -rf "$solo_dir"; deploy/local-cluster.sh stop >/dev/null; psql "${CLUSTER_DB%/*}/postgres" -qc "DROP DATABASE IF EXISTS ${CLUSTER_DB##*/}" || true' EXIT
deploy/local-cluster.sh start >/dev/null
channels=bench.0
$hp --db "$CLUSTER_DB" user add bench --email bench@localhost >/dev/null
$hp --db "$CLUSTER_DB" authkey add --owner bench --ident benchpub --secret bench --publish "$channels" >/dev/null
$hp --db "$CLUSTER_DB" authkey add --owner bench --ident benchsub --secret bench --publish "$channels" --subscribe "$channels" >/dev/null

# A standalone node on SQLite with the same keys, no NATS.
for db in "$solo_dir/solo.db"; do
    $hp --db "$db" user add bench --email bench@localhost >/dev/null
    $hp --db "$db" authkey add --owner bench --ident benchpub --secret bench --publish "$channels" >/dev/null
    $hp --db "$db" authkey add --owner bench --ident benchsub --secret bench --publish "$channels" --subscribe "$channels" >/dev/null
done
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

echo "| workload, where | published msg/s | delivered msg/s | lost | duplicated | misordered | p50 ms | p99 ms | max ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in $(seq 1 "$rounds"); do
    for w in "1→2 at 20,000 msg/s|--messages 200000 --subscribers 2 --rate 20000" \
        "1→2 flat out|--messages 500000 --subscribers 2" \
        "1→10 flat out|--messages 200000 --subscribers 10"; do
        name=${w%%|*}
        args=${w#*|}
        # shellcheck disable=SC2086
        run "$name, standalone node (round $r)" 10009 $args
        # shellcheck disable=SC2086
        run "$name, cluster node 1 → node 1 (round $r)" 10001 $args --sub-at 127.0.0.1:10001
        # shellcheck disable=SC2086
        run "$name, cluster node 1 → nodes 2+3 (round $r)" 10001 $args --sub-at 127.0.0.1:10002,127.0.0.1:10003
    done
done
echo
echo "Commands: \`bash bench/cluster.sh $rounds\` ($($hp --version)); each row \`hpfriends bench --port 10001"
echo "[--sub-at 127.0.0.1:10002,127.0.0.1:10003] ...\` against \`deploy/local-cluster.sh start\`."
deploy/local-cluster.sh stop >/dev/null
echo
echo "Backplane counters at stop (node 1 relays; nodes 2 and 3 receive):"
grep -h "cluster at stop" "$CLUSTER_DIR"/node*/log | sed 's/.*cluster at stop: /    /'

