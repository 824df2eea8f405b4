#!/usr/bin/env bash
# A 3-node hpfriends cluster on this machine, against a local PostgreSQL and NATS: for
# trying a cluster out, and for CI's cluster smoke stage.
#
#   deploy/local-cluster.sh start    # nodes 1-3: hpfeeds 127.0.0.1:10001-10003, web 8081-8083
#   deploy/local-cluster.sh status   # which nodes run, their endpoints
#   deploy/local-cluster.sh stop     # SIGTERM each node, wait for it to finish
#   deploy/local-cluster.sh smoke    # a publish on node 1 reaches a subscriber on node 3
#   deploy/local-cluster.sh forget   # delete the prefix's JetStream stream (traffic kept for
#                                    # the nodes, HPF_<prefix>) from NATS, once they are stopped
#
# Settings (environment):
#   HPFRIENDS_BIN   the binary [target/release/hpfriends, built if missing]
#   CLUSTER_DB      the shared database [postgres://postgres@127.0.0.1:5432/hpfriends_cluster]
#                   (created if missing, then migrated)
#   CLUSTER_NATS    the NATS server [nats://127.0.0.1:4222]
#   CLUSTER_PREFIX  NATS subject prefix of this community [hpfeeds]
#   CLUSTER_DIR     pid files, logs, mail of each node [./local-cluster]
#   CLUSTER_PORTS   hpfeeds ports of nodes 1-3 ["10001 10002 10003"]; 0 = any free port
#   CLUSTER_WEB_PORTS  website ports of nodes 1-3 ["8081 8082 8083"]; 0 = any free port
#   CLUSTER_NATS_1 (_2, _3)  that node's NATS server instead of CLUSTER_NATS
#   CLUSTER_DB_1 (_2, _3)    that node's way to the shared database instead of CLUSTER_DB
#   Any HPFRIENDS_* setting in the environment reaches every node.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${HPFRIENDS_BIN:-target/release/hpfriends}
db=${CLUSTER_DB:-postgres://postgres@127.0.0.1:5432/hpfriends_cluster}
nats=${CLUSTER_NATS:-nats://127.0.0.1:4222}
prefix=${CLUSTER_PREFIX:-hpfeeds}
dir=${CLUSTER_DIR:-local-cluster}
read -r -a ports <<<"${CLUSTER_PORTS:-10001 10002 10003}"
read -r -a web_ports <<<"${CLUSTER_WEB_PORTS:-8081 8082 8083}"
nodes=(1 2 3)

pid_of() { cat "$dir/node$1/pid" 2>/dev/null || true; }
running() {
    local p state
    p=$(pid_of "$1")
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 1
    # A node killed a moment ago lingers as a zombie until it is reaped: it does not run.
    if [ -r "/proc/$p/stat" ]; then
        state=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f1)
        [ "$state" != Z ] && [ "$state" != X ] || return 1
    fi
}

create_db() {
    # The database named in CLUSTER_DB, created through the server's `postgres` database.
    local name=${db##*/}
    name=${name%%\?*}
    local server=${db%/*}
    if ! command -v psql >/dev/null; then
        echo "psql not found: create database $name yourself, or install postgresql-client" >&2
        return 0
    fi
    if ! psql "$server/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
        psql "$server/postgres" -qc "CREATE DATABASE \"$name\"" >/dev/null
        echo "created database $name"
    fi
}

start() {
    if [ ! -x "$bin" ]; then
        echo "building $bin"
        cargo build --release --locked
    fi
    create_db
    "$bin" --db "$db" migrate
    for i in "${nodes[@]}"; do
        if running "$i"; then
            echo "node $i already runs (pid $(pid_of "$i"))"
            continue
        fi
        mkdir -p "$dir/node$i"
        # The log is kept across restarts (a crashed node's last words stay).
        echo "---- node $i starting at $(date -u '+%Y-%m-%dT%H:%M:%SZ') ----" >>"$dir/node$i/log"
        local node_nats_var="CLUSTER_NATS_$i" node_db_var="CLUSTER_DB_$i"
        HPFRIENDS_NATS_PREFIX="$prefix" HPFRIENDS_MAIL_DIR="$dir/node$i/mail" \
            "$bin" --db "${!node_db_var:-$db}" serve \
            --listen "127.0.0.1:${ports[i - 1]}" --web-listen "127.0.0.1:${web_ports[i - 1]}" \
            --nats-url "${!node_nats_var:-$nats}" --node-id "node$i" \
            >"$dir/node$i/out" 2>>"$dir/node$i/log" </dev/null &
        echo $! >"$dir/node$i/pid"
    done
    for i in "${nodes[@]}"; do
        for _ in $(seq 1 300); do
            if grep -q "hpfriends listening" "$dir/node$i/out" 2>/dev/null; then
                break
            fi
            if ! running "$i"; then
                echo "node $i failed to start:" >&2
                tail -n 20 "$dir/node$i/log" >&2
                stop
                exit 1
            fi
            sleep 0.1
        done
        grep -q "hpfriends listening" "$dir/node$i/out" || { echo "node $i did not start in 30 s" >&2; stop; exit 1; }
    done
    status
}

status() {
    for i in "${nodes[@]}"; do
        if running "$i"; then
            # The endpoints the node itself announced (the ports asked for may be 0).
            local ready
            ready=$(grep -m1 "hpfriends listening" "$dir/node$i/out" 2>/dev/null || true)
            echo "node $i: pid $(pid_of "$i"), ${ready#*hpfriends listening: }, log $dir/node$i/log"
        else
            echo "node $i: not running"
        fi
    done
}

stop() {
    for i in "${nodes[@]}"; do
        if running "$i"; then
            kill -TERM "$(pid_of "$i")"
        fi
    done
    for i in "${nodes[@]}"; do
        for _ in $(seq 1 200); do
            running "$i" || break
            sleep 0.1
        done
        if running "$i"; then
            echo "node $i did not stop in 20 s: killing it" >&2
            kill -KILL "$(pid_of "$i")" || true
        fi
        rm -f "$dir/node$i/pid"
    done
    echo "stopped"
}

# The hpfeeds port node $1 announced.
endpoint() {
    grep -m1 -o "hpfeeds tcp://[^ ,]*" "$dir/node$1/out" | sed 's/.*://'
}

smoke() {
    # Two users of the running cluster (new names each run), a share, and one message from
    # node 1 to node 3 through NATS, with the project's own client.
    local t; t=smoke$$
    "$bin" --db "$db" user add "$t-a" --email "$t-a@example.org" >/dev/null
    "$bin" --db "$db" user add "$t-b" --email "$t-b@example.org" >/dev/null
    "$bin" --db "$db" authkey add --owner "$t-a" --ident "$t-pub" --secret s --publish "$t.ch" >/dev/null
    "$bin" --db "$db" authkey add --owner "$t-b" --ident "$t-sub" --secret s --subscribe "$t.ch" >/dev/null
    local id
    id=$("$bin" --db "$db" share offer --channel "$t.ch" --to-user "$t-b" --as "$t-a" | awk '{print $2}')
    "$bin" --db "$db" share accept "$id" --as "$t-b" >/dev/null
    "$bin" sub --port "$(endpoint 3)" --ident "$t-sub" --secret s --channel "$t.ch" --count 1 >"$dir/smoke.out" &
    local sub=$!
    # The subscriber's subscription is live once it is registered; publish until it arrives.
    for _ in $(seq 1 100); do
        "$bin" pub --port "$(endpoint 1)" --ident "$t-pub" --secret s --channel "$t.ch" "hello from node 1"
        if ! kill -0 "$sub" 2>/dev/null; then
            break
        fi
        sleep 0.2
    done
    if kill -0 "$sub" 2>/dev/null; then
        kill "$sub"
        echo "smoke: node 3 received nothing from node 1" >&2
        exit 1
    fi
    wait "$sub"
    grep -q "hello from node 1" "$dir/smoke.out"
    echo "smoke: node 1 -> NATS -> node 3: $(cat "$dir/smoke.out")"
}

forget() {
    # The stream the nodes made (`HPF_` and the prefix, `_` as `_u`, `.` as `_d`), deleted
    # through the plain NATS protocol: no NATS client needed.
    local name hostport
    name="HPF_$(sed 's/_/_u/g; s/\./_d/g' <<<"$prefix")"
    hostport=${nats#*://}
    hostport=${hostport##*@}
    hostport=${hostport%%,*}
    { exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"; } 2>/dev/null || {
        echo "forget: cannot reach NATS at $hostport" >&2
        return 0
    }
    printf 'CONNECT {"verbose":false}\r\nPUB $JS.API.STREAM.DELETE.%s 0\r\n\r\nPING\r\n' "$name" >&3
    timeout 2 head -c 200 <&3 >/dev/null || true
    exec 3>&-
    echo "forget: asked NATS to delete stream $name"
}

case "${1:-}" in
start) start ;;
forget) forget ;;
smoke) smoke ;;
stop) stop ;;
status) status ;;
*)
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
    exit 2
    ;;
esac
