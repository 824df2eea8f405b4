#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) from its seed corpus (fuzz/corpus/T; new
# inputs go to fuzz/target/corpus/T) and fails on any crash, printing the reproducer.
#   bash fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
# cargo-fuzz passes -Z flags (the sanitizer, coverage passes) to rustc; the machine has one
# stable toolchain and no other can be fetched, so it is told to accept them.
export RUSTC_BOOTSTRAP=1
mkdir -p target
passed=0
for t in frame_decode session; do
    mkdir -p "fuzz/target/corpus/$t"
    if ! cargo fuzz run "$t" "fuzz/target/corpus/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 >"target/fuzz-$t.log" 2>&1; then
        tail -80 "target/fuzz-$t.log"
        echo "fuzz $t: CRASH (reproducer under fuzz/artifacts/$t/)"
        echo "fuzz: $passed passed, 1 failed"
        exit 1
    fi
    runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "target/fuzz-$t.log" | tail -1)
    echo "fuzz $t: ${runs#Done }s, no crash"
    passed=$((passed + 1))
done
echo "fuzz: $passed passed, 0 failed"
