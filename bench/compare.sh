#!/usr/bin/env bash
# Side-by-side, same machine, one run: the floor (`hpfriends bench relay`: a bare relay that
# forwards frame bytes to subscribers with blocking writes, no auth, no ACL, no queues),
# hpfriends and the PyPI hpfeeds 3.1.0 broker; same keys, same load generator
# (`hpfriends bench`), every throughput workload flat out (no window, as a sensor burst or a
# replay sends), lost messages beside every figure. Writes a markdown table to bench/RESULTS.md.
#   bash bench/compare.sh            full comparison (several minutes)
#   bash bench/compare.sh --smoke    seconds; writes target/bench-smoke.md (what .ci/run runs)
#   WINDOW=4194304 bash bench/compare.sh   publishers wait for their subscribers (old runs)
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=0
[[ "${1:-}" == "--smoke" ]] && smoke=1
window=${WINDOW:-0}

venv=target/bench-venv
if ! "$venv/bin/python" -c 'import hpfeeds.broker, aiorun' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'hpfeeds[broker]==3.1.0'
fi
[[ -n "${HPFRIENDS_BIN:-}" ]] || cargo build --release --quiet
hp=${HPFRIENDS_BIN:-target/release/hpfriends}
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

channels=$(seq -s, 0 9 | sed 's/[0-9]\+/bench.&/g')
# hpfriends: one user owning both keys, so the subscriber receives the publisher's data.
export HPFRIENDS_DB="$work/hpfriends.db"
$hp user add bench --email bench@localhost >/dev/null
$hp authkey add --owner bench --ident benchpub --secret bench --publish "$channels" >/dev/null
$hp authkey add --owner bench --ident benchsub --secret bench --publish "$channels" --subscribe "$channels" >/dev/null
start_brokers() {
    # hpfriends with its defaults (16 MiB outbox, backpressure), limits raised for the
    # idle-connection runs.
    HPFRIENDS_MAX_CONNECTIONS_PER_IP=60000 HPFRIENDS_MAX_CONNECTIONS=60000 HPFRIENDS_MAX_SUBSCRIPTIONS_PER_KEY=60000 \
        RUST_LOG=warn $hp serve --listen 127.0.0.1:10991 --web-listen off >>"$work/hpfriends.log" 2>&1 &
    pids+=($!); hpfriends_pid=$!
    $hp bench relay --listen 127.0.0.1:30991 >>"$work/relay.log" 2>&1 &
    pids+=($!); relay_pid=$!
    $hp bench relay --per-frame --listen 127.0.0.1:30992 >>"$work/relay.log" 2>&1 &
    pids+=($!); naive_pid=$!
    # hpfeeds 3.1.0: the same keys through its env backend.
    HPFEEDS_BENCHPUB_SECRET=bench HPFEEDS_BENCHPUB_PUBCHANS="$channels" HPFEEDS_BENCHPUB_SUBCHANS= \
    HPFEEDS_BENCHSUB_SECRET=bench HPFEEDS_BENCHSUB_PUBCHANS="$channels" HPFEEDS_BENCHSUB_SUBCHANS="$channels" \
        "$venv/bin/hpfeeds-broker" --bind 127.0.0.1:20991 --auth env >>"$work/hpfeeds.log" 2>&1 &
    pids+=($!); hpfeeds_pid=$!
    for port in 10991 20991 30991 30992; do
        for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    done
}
start_brokers

# name | flags | messages for the floor and hpfriends | messages for 3.1.0 (it is ~50x
# slower; rates are compared)
if ((smoke)); then
    workloads=(
        "1→1, 100 B|--publishers 1 --subscribers 1|20000|5000"
        "10→10, 100 B|--publishers 10 --subscribers 10|20000|2000"
        "1→1, 64 KiB|--publishers 1 --subscribers 1 --size 65536|2000|500"
        "steady 1,000 msg/s, 100 B|--rate 1000|1000|1000"
    )
    idle=(200)
    out=target/bench-smoke.md
else
    workloads=(
        "1→1, 100 B|--publishers 1 --subscribers 1|3000000|200000"
        "1→10, 100 B|--publishers 1 --subscribers 10|1000000|50000"
        "10→1, 100 B|--publishers 10 --subscribers 1|3000000|200000"
        "10→10, 100 B|--publishers 10 --subscribers 10|1000000|50000"
        "10 pub × 10 ch × 10 sub, 100 B|--publishers 10 --channels 10 --subscribers 10|1000000|50000"
        "1→1, 64 KiB|--publishers 1 --subscribers 1 --size 65536|50000|5000"
        "1→10, 64 KiB|--publishers 1 --subscribers 10 --size 65536|10000|1000"
        "steady 10,000 msg/s, 100 B|--rate 10000|100000|100000"
    )
    # 50,000 where the file-descriptor limit allows it (broker and generator each hold one
    # per connection); otherwise as many as it allows.
    most=$(( $(ulimit -n) - 500 ))
    idle=(10000 $(( most < 50000 ? most : 50000 )))
    out=bench/RESULTS.md
fi

run() { # port pid messages flags... -> one JSON line ({"error": ...} when the run failed)
    local port=$1 pid=$2 n=$3; shift 3
    local out
    if out=$($hp bench --port "$port" --pid "$pid" --messages "$n" --window "$window" --json "$@" 2>"$work/err"); then
        echo "$out"
    else
        python3 -c "import json,sys; print(json.dumps({'error': sys.argv[1]}))" "$(tail -1 "$work/err")"
        sleep 3 # let the broker settle before the next workload
    fi
}
field() { python3 -c "import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print('' if v is None else v)" "$1" "$2"; }
fmt() { python3 -c "import sys; v=float(sys.argv[1]); print(f'{v:,.0f}' if v >= 100 else f'{v:.3f}')" "$1"; }
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}×' if b else '–')" "$1" "$2"; }

# The control plane's table (`hpfriends bench graph`) is kept below this script's own.
graph_section=""
if [[ -f "$out" ]]; then
    graph_section=$(sed -n '/^## The control plane at community scale/,$p' "$out")
fi
{
    echo "# hpfriends vs the floor and hpfeeds 3.1.0"
    echo
    echo "Generated by \`bash bench/compare.sh$([[ $smoke == 1 ]] && echo ' --smoke')\` on $(date -u +%Y-%m-%d), $(nproc) cores, loopback;"
    echo "load generator \`hpfriends bench\` (raw hpfeeds, same for all three), 100-byte payloads unless said;"
    if [[ $window == 0 ]]; then
        echo "publishers send flat out (no window: they never wait for their subscribers)."
    else
        echo "publishers stay within $window bytes of their subscribers (\`--window\`)."
    fi
    echo "The floor is \`hpfriends bench relay\`: frame bytes forwarded to subscribers with blocking writes, no auth, no ACL, no queues,"
    echo "each run of frames on one channel that arrived in one read as one write; \`--per-frame\` (the per-frame relay row) writes each frame alone."
    echo "Delivered msg/s counts every message received by every subscriber; latency is publish → receive;"
    echo "lost is deliveries that never arrived, cut the subscribers the broker closed."
    echo
    echo "| workload | broker | published msg/s | delivered msg/s | lost | cut | p50 ms | p99 ms | p99.9 ms | max ms | RSS MiB |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$out"
ms() { python3 -c "import sys; print(float(sys.argv[1])/1000)" "$1"; }
summary=()
for w in "${workloads[@]}"; do
    IFS='|' read -r name flags n_fast n_slow <<<"$w"
    echo "== $name" >&2
    # shellcheck disable=SC2086
    f=$(run 30991 "$relay_pid" "$n_fast" $flags)
    # shellcheck disable=SC2086
    g=$(run 30992 "$naive_pid" "$n_slow" $flags) # slow too: rates are compared
    # shellcheck disable=SC2086
    a=$(run 10991 "$hpfriends_pid" "$n_fast" $flags)
    # shellcheck disable=SC2086
    b=$(run 20991 "$hpfeeds_pid" "$n_slow" $flags)
    for pair in "floor (bench relay)|$f" "per-frame relay|$g" "hpfriends|$a" "hpfeeds 3.1.0|$b"; do
        broker=${pair%%|*}; j=${pair#*|}
        err=$(field "$j" error)
        if [[ -n "$err" ]]; then
            printf '| %s | %s | failed: %s ||||||||| \n' "$name" "$broker" "$err" >>"$out"
            continue
        fi
        rss=$(field "$j" broker_rss_kib)
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$broker" \
            "$(fmt "$(field "$j" published_per_s)")" "$(fmt "$(field "$j" delivered_per_s)")" \
            "$(field "$j" lost)" "$(field "$j" subscribers_cut)" \
            "$(fmt "$(ms "$(field "$j" p50_us)")")" "$(fmt "$(ms "$(field "$j" p99_us)")")" \
            "$(fmt "$(ms "$(field "$j" p999_us)")")" "$(fmt "$(ms "$(field "$j" max_us)")")" \
            "$(python3 -c "print(round(${rss:-0}/1024, 1))")" >>"$out"
    done
    if [[ -z "$(field "$f" error)$(field "$a" error)$(field "$b" error)" ]]; then
        summary+=("| $name | $(ratio "$(field "$a" delivered_per_s)" "$(field "$f" delivered_per_s)") | $(ratio "$(field "$a" delivered_per_s)" "$(field "$g" delivered_per_s)") | $(ratio "$(field "$a" p99_us)" "$(field "$f" p99_us)") | $(ratio "$(field "$a" delivered_per_s)" "$(field "$b" delivered_per_s)") | $(ratio "$(field "$b" p99_us)" "$(field "$a" p99_us)") | $(field "$a" lost) |")
    else
        summary+=("| $name | – (a run failed, see above) | – | – | – | – | – |")
    fi
done

# Idle memory on fresh processes: the runs above grew heaps that would hide the cost.
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
start_brokers
idle_rows=()
for n in "${idle[@]}"; do
    echo "== $n idle connections" >&2
    ia=$($hp bench --port 10991 --pid "$hpfriends_pid" --idle "$n" --hold 2 --json)
    idle_rows+=("$n|hpfriends|$ia")
    if ((n <= 10000)); then
        ib=$($hp bench --port 20991 --pid "$hpfeeds_pid" --idle "$n" --hold 2 --json)
        idle_rows+=("$n|hpfeeds 3.1.0|$ib")
    fi
    # Fresh processes for the next size, so the first's heap does not hide the cost.
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
    start_brokers
done
{
    echo
    echo "## Ratios"
    echo
    echo "| workload | delivered msg/s, hpfriends ÷ floor | hpfriends ÷ per-frame relay | p99, hpfriends ÷ floor | delivered msg/s, hpfriends ÷ 3.1.0 | p99, 3.1.0 ÷ hpfriends | hpfriends lost |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${summary[@]}"
    echo
    echo "## Memory per idle authenticated subscriber"
    echo
    echo "| connections | broker | RSS before MiB | RSS holding them MiB | KiB per connection |"
    echo "|---:|---|---:|---:|---:|"
    for row in "${idle_rows[@]}"; do
        n=${row%%|*}; rest=${row#*|}; broker=${rest%%|*}; j=${rest#*|}
        printf '| %s | %s | %s | %s | %s |\n' "$n" "$broker" \
            "$(python3 -c "print(round($(field "$j" rss_before_kib)/1024, 1))")" \
            "$(python3 -c "print(round($(field "$j" rss_after_kib)/1024, 1))")" \
            "$(python3 -c "print(round($(field "$j" kib_per_connection), 2))")"
    done
    if ((smoke == 0)) && ((most < 50000)); then
        echo
        echo "50,000 connections need a file-descriptor limit above 50,000 in both the broker and the generator;"
        echo "this machine's hard limit is $(ulimit -Hn) (not raisable here), so the largest run is ${idle[-1]}."
    fi
    echo
    echo "Commands: see bench/compare.sh (every workload is one \`hpfriends bench\` line)."
    if [[ -n "$graph_section" ]]; then
        echo
        echo "$graph_section"
    fi
} >>"$out"
cat "$out"
