#!/usr/bin/env bash
# Soak: hpfriends (release) under steady traffic for SECONDS (default 600) while clients
# connect and disconnect; fails if a subscriber that keeps up lost a message or the broker's
# memory grew more than 10% after warm-up. What .ci/run runs.
#   bash bench/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
cargo build --release --quiet
hp=target/release/hpfriends
work=$(mktemp -d)
pid=
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

channels=bench.0,bench.1,bench.2,bench.3
export HPFRIENDS_DB="$work/hpfriends.db"
$hp user add bench --email bench@localhost >/dev/null
$hp authkey add --owner bench --ident benchpub --secret bench --publish "$channels" >/dev/null
$hp authkey add --owner bench --ident benchsub --secret bench --publish "$channels" --subscribe "$channels" >/dev/null
RUST_LOG=warn $hp serve --listen 127.0.0.1:10992 --web-listen off >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/10992) 2>/dev/null && break; sleep 0.1; done

echo "soak: ${secs} s at 2,000 msg/s (2 publishers, 4 subscribers, 4 channels) with 20 churning clients"
$hp bench --port 10992 --soak "$secs" --rate 2000 --publishers 2 --subscribers 4 --channels 4 \
    --churn 20 --pid "$pid" --json >"$work/soak.json"
python3 - "$work/soak.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["steady"]
growth = r["rss_growth_pct"]
print("soak: %d published, %d delivered, %d lost, %d duplicated, %d misordered, p99 %.2f ms; %d churn cycles (%d failed)" % (
    s["published"], s["delivered"], s["lost"], s["duplicates"], s["misordered"], s["p99_us"] / 1000,
    r["churn_cycles"], r["churn_errors"]))
print("soak: broker RSS every 10 s (KiB): %s" % " ".join(map(str, r["rss_samples_kib"])))
print("soak: RSS warm %s KiB -> end %s KiB (%+.1f%%)" % (r["rss_warm_kib"], r["rss_end_kib"], growth))
ok = s["lost"] == 0 and s["duplicates"] == 0 and s["misordered"] == 0 and growth is not None and growth <= 10.0 and r["churn_cycles"] > 0
print("soak: %d passed, %d failed" % ((1, 0) if ok else (0, 1)))
sys.exit(0 if ok else 1)
PY
