#!/bin/sh
# deploy/strata-node as an operator uses it: start a node in the background,
# use it with stratactl, check status, stop it, and see status say stopped.
# Args: SOURCE_DIR BUILD_DIR. Ports are chosen free (tcp *, metrics port 0).
set -eu
src=$1
build=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-launcher-XXXXXX")
trap 'BUILD="$build" "$src/deploy/strata-node" stop --dir "$dir/node" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
fail() {
    echo "test_launcher: FAIL: $*" >&2
    exit 1
}
export BUILD="$build"
export STRATA_WRITER_ENDPOINT='tcp://127.0.0.1:*'
export STRATA_WRITER_METRICS='127.0.0.1:0'
export STRATA_COMPACTOR_METRICS='127.0.0.1:0'
export STRATA_SNAPSHOTTER_METRICS='127.0.0.1:0'
export STRATA_DISTRIBUTOR_METRICS='127.0.0.1:0'
export STRATA_DISTRIBUTOR_LIVE='tcp://127.0.0.1:*'
export STRATA_DISTRIBUTOR_DELAYED='tcp://127.0.0.1:*'
export STRATA_DISTRIBUTOR_HISTORY='tcp://127.0.0.1:*'
ctl="$build/services/ctl/stratactl"

"$src/deploy/strata-node" start --dir "$dir/node" >"$dir/start.out" 2>&1 ||
    { cat "$dir/start.out" >&2; fail "start"; }
grep -q "stratactl" "$dir/start.out" || fail "start printed no stratactl example"
endpoint=$(sed -n 's/^ *endpoint = "\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$dir/node/writer.endpoints")
[ -n "$endpoint" ] || fail "no endpoint in writer.endpoints"

"$ctl" -s "$endpoint" put launcher-key launcher-value >/dev/null || fail "put"
[ "$("$ctl" -s "$endpoint" get launcher-key)" = "launcher-value" ] || fail "get"
# The launcher started the distributor: tail replays the put from history.
seq=$("$ctl" -s "$endpoint" put launcher-tail tailed | sed -n 's/^seq //p')
[ -n "$seq" ] || fail "put printed no seq"
line=$(timeout 30 "$ctl" tail kv --dir "$dir/node" --from "$seq" --count 1) || fail "tail"
[ "$line" = "$(printf '%s\t\tlauncher-tail\ttailed' "$seq")" ] || fail "tail printed [$line]"
# ... and the snapshotter: a snapshot on request, listed afterwards.
"$ctl" snapshot --dir "$dir/node" | grep -q "^seq $seq " || fail "snapshot"
"$ctl" snapshots --dir "$dir/node" | grep -q "snap-0*$seq " || fail "snapshots"
# ... and the compactor: a manual compaction runs to the end.
"$ctl" compact --dir "$dir/node" | grep -q "done" || fail "compact"
"$src/deploy/strata-node" status --dir "$dir/node" >/dev/null || fail "status while running"
# A second start on the same directory is refused.
if "$src/deploy/strata-node" start --dir "$dir/node" >/dev/null 2>&1; then
    fail "second start succeeded"
fi
"$src/deploy/strata-node" stop --dir "$dir/node" >/dev/null 2>&1 || fail "stop"
[ ! -e "$dir/node/writer.endpoints" ] || fail "writer.endpoints left after stop"
[ ! -e "$dir/node/distributor.endpoints" ] || fail "distributor.endpoints left after stop"
[ ! -e "$dir/node/snapshotter.endpoints" ] || fail "snapshotter.endpoints left after stop"
[ ! -e "$dir/node/compactor.endpoints" ] || fail "compactor.endpoints left after stop"
set +e
"$src/deploy/strata-node" status --dir "$dir/node" >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -eq 3 ] || fail "status after stop exited $rc, want 3"

# The data outlives the processes.
"$src/deploy/strata-node" start --dir "$dir/node" >/dev/null 2>&1 || fail "restart"
endpoint=$(sed -n 's/^ *endpoint = "\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$dir/node/writer.endpoints")
[ "$("$ctl" -s "$endpoint" get launcher-key)" = "launcher-value" ] || fail "get after restart"
"$src/deploy/strata-node" stop --dir "$dir/node" >/dev/null 2>&1 || fail "second stop"
echo "test_launcher: ok"
