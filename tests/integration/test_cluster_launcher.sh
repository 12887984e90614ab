#!/bin/sh
# deploy/strata-cluster as an operator uses it (make cluster runs it in the
# foreground): three nodes on this host, stratactl cluster status showing
# one master, a write through it, kill -9 of the master's writer and another
# node taking over with the write, the killed node started again and
# following, then stop, and status saying nothing runs.
# Args: SOURCE_DIR BUILD_DIR.
set -eu
src=$1
build=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-cluster-launcher-XXXXXX")
export BUILD="$build"
cl="$src/deploy/strata-cluster"
ctl="$build/services/ctl/stratactl"
trap '"$cl" stop --dir "$dir/c" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
fail() {
    echo "test_cluster_launcher: FAIL: $*" >&2
    for log in "$dir"/c/node*/writer.log; do
        [ -f "$log" ] && { echo "--- $log" >&2; tail -20 "$log" >&2; }
    done
    exit 1
}
# Node N's ports are base + 100 (N - 1) + 0..85: a base of our own in
# 20000..32000, below the ephemeral ports (from 32768) that other suites'
# connections take and the free ports they bind (61000 up), and apart for
# runs side by side.
base=$((20000 + ($$ % 40) * 300))

"$cl" start --dir "$dir/c" --base-port "$base" >"$dir/start.out" 2>&1 ||
    { cat "$dir/start.out" >&2; fail "start"; }
master=$(sed -n 's/.*; master: node\([0-9]*\)$/\1/p' "$dir/start.out")
[ -n "$master" ] || fail "start named no master: $(cat "$dir/start.out")"
[ "$(wc -l <"$dir/c/cluster.endpoints")" -eq 3 ] || fail "cluster.endpoints lists not 3 nodes"

"$ctl" cluster status --cluster "$dir/c/cluster.endpoints" >"$dir/status.out" ||
    fail "cluster status: $(cat "$dir/status.out")"
[ "$(grep -c ' leader ' "$dir/status.out")" -eq 1 ] || fail "not one leader: $(cat "$dir/status.out")"
master_ep="tcp://127.0.0.1:$((base + 100 * (master - 1)))"
grep -q "^$master_ep .* leader " "$dir/status.out" || fail "node$master is not the leader shown"
"$ctl" -s "$master_ep" put launcher-key launcher-value >/dev/null || fail "put on the master"

# kill -9 of the master's writer: another node is master within 15 s and
# has the write.
"$cl" kill "$master" writer --dir "$dir/c" >/dev/null || fail "kill"
new_ep=""
tries=0
while [ -z "$new_ep" ] && [ "$tries" -lt 150 ]; do
    new_ep=$("$ctl" --timeout 500 cluster status --cluster "$dir/c/cluster.endpoints" 2>/dev/null |
        awk -v old="$master_ep" '$3 == "leader" && $1 != old { print $1 }') || true
    [ -n "$new_ep" ] || sleep 0.1 # polling for the new master, 15 s at most
    tries=$((tries + 1))
done
[ -n "$new_ep" ] || fail "no new master within 15 s of the kill"
[ "$("$ctl" -s "$new_ep" get launcher-key)" = "launcher-value" ] || fail "the write is not on $new_ep"

# The killed node comes back and follows.
"$cl" start --node "$master" --dir "$dir/c" >"$dir/restart.out" 2>&1 ||
    { cat "$dir/restart.out" >&2; fail "start --node $master"; }
role=""
tries=0
while [ "$role" != "follower" ] && [ "$tries" -lt 150 ]; do
    role=$("$ctl" --timeout 500 -s "$master_ep" status 2>/dev/null | sed -n 's/^role[[:space:]]*//p') || true
    [ "$role" = "follower" ] || sleep 0.1 # polling its role, 15 s at most
    tries=$((tries + 1))
done
[ "$role" = "follower" ] || fail "node$master is '$role' 15 s after its restart"
"$cl" status --dir "$dir/c" >/dev/null || fail "status while running"

"$cl" stop --dir "$dir/c" >/dev/null 2>&1 || fail "stop"
set +e
"$cl" status --dir "$dir/c" >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -eq 3 ] || fail "status after stop exited $rc, want 3"
echo "test_cluster_launcher: ok"
