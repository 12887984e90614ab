#!/bin/sh
# Runs every fuzz target for SECONDS (default 20) from its committed seed
# corpus, JOBS at a time, and prints one line per target: executions,
# coverage (edges) and corpus size. Exits non-zero when any target finds a
# crash, a leak or a timeout; the input that did it is left as
# BUILD/fuzz/crash-* (or leak-*, timeout-*) to replay with the target.
set -eu
BUILD=${BUILD:-build-fuzz}
SECONDS_EACH=${1:-20}
JOBS=${JOBS:-$(nproc)}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The file decoders write their input to a scratch directory first: on
# tmpfs the fsyncs recovery does cost nothing.
if [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
targets="request reply record entry pubframe wal sstable snapshot manifest raftmsg"
mkdir -p "$BUILD/fuzz/work" "$BUILD/fuzz/logs"
for t in $targets; do echo "$t"; done | xargs -P "$JOBS" -I{} sh -c '
    t={}
    mkdir -p "'"$BUILD"'/fuzz/work/$t"
    "'"$BUILD"'/fuzz/fuzz_$t" -max_total_time='"$SECONDS_EACH"' -print_final_stats=1 \
        -rss_limit_mb=1024 -timeout=10 -artifact_prefix="'"$BUILD"'/fuzz/" \
        "'"$BUILD"'/fuzz/work/$t" "'"$ROOT"'/fuzz/corpus/$t" \
        > "'"$BUILD"'/fuzz/logs/$t.log" 2>&1
    echo $? > "'"$BUILD"'/fuzz/logs/$t.rc"'
failed=0
for t in $targets; do
    rc=$(cat "$BUILD/fuzz/logs/$t.rc")
    runs=$(grep -a "stat::number_of_executed_units" "$BUILD/fuzz/logs/$t.log" | awk '{print $2}')
    cov=$(grep -a -o "cov: [0-9]*" "$BUILD/fuzz/logs/$t.log" | tail -1 | awk '{print $2}')
    corp=$(grep -a -o "corp: [0-9]*" "$BUILD/fuzz/logs/$t.log" | tail -1 | awk '{print $2}')
    if [ "$rc" = 0 ]; then status=ok; else status="FAILED (exit $rc; see $BUILD/fuzz/logs/$t.log)"; failed=1; fi
    printf 'fuzz %-9s %10s runs in %ss, %5s edges, corpus %5s: %s\n' "$t" "${runs:-?}" \
        "$SECONDS_EACH" "${cov:-?}" "${corp:-?}" "$status"
done
exit $failed
