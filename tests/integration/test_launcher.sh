#!/bin/sh
# deploy/strata-node as an operator uses it: start a node in the background
# in a dir that does not exist yet, use it with stratactl, check status, see
# a killed process restarted and a big log rotated, stop it, see status say
# stopped and no socket left, restart it. And the start order of the
# services: a port clash fails a start before anything is created on disk.
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

# Within the limits of a test: restarts and log rotation are seen in seconds.
export STRATA_NODE_LOG_MAX_KB=4
"$src/deploy/strata-node" start --dir "$dir/node" >"$dir/start.out" 2>&1 ||
    { cat "$dir/start.out" >&2; fail "start"; }
grep -q "stratactl" "$dir/start.out" || fail "start printed no stratactl example"
[ "$(grep -c "event=initialised dir=$dir/node " "$dir/node/writer.log")" -eq 1 ] ||
    fail "the writer did not log event=initialised once for the new data dir"
for name in compactor distributor snapshotter; do
    ! grep -q "event=initialised" "$dir/node/$name.log" || fail "$name logged event=initialised"
done
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
"$src/deploy/strata-node" status --dir "$dir/node" >"$dir/status.out" || fail "status while running"
for name in writer compactor distributor snapshotter; do
    grep -q "^$name: running, pid [0-9]*, ready$" "$dir/status.out" ||
        fail "status does not say $name runs and is ready: $(cat "$dir/status.out")"
done

# A killed process is restarted by the supervisor, and the log says so.
old_pid=$(cat "$dir/node/compactor.pid")
kill -KILL "$old_pid"
waited=0
until grep -q "event=restarted process=compactor" "$dir/node/strata-node.log"; do
    [ "$waited" -lt 100 ] || fail "compactor not restarted within 10 s: $(cat "$dir/node/strata-node.log")"
    sleep 0.1
    waited=$((waited + 1))
done
grep -q "event=exited process=compactor pid=$old_pid status=137 .*restart_in_s=0.5" \
    "$dir/node/strata-node.log" || fail "the exit is not logged: $(cat "$dir/node/strata-node.log")"
new_pid=$(cat "$dir/node/compactor.pid")
[ "$new_pid" != "$old_pid" ] || fail "compactor pid unchanged"
kill -0 "$new_pid" || fail "the restarted compactor is not running"
waited=0
until "$src/deploy/strata-node" status --dir "$dir/node" >"$dir/status.out" &&
    grep -q "^compactor: running, pid $new_pid, ready$" "$dir/status.out"; do
    [ "$waited" -lt 100 ] || fail "status after the restart: $(cat "$dir/status.out")"
    sleep 0.1
    waited=$((waited + 1))
done
"$ctl" compact --dir "$dir/node" | grep -q "done" || fail "compact after the compactor's restart"

# A log past STRATA_NODE_LOG_MAX_KB is rotated, and the process keeps logging.
head -c 8192 /dev/zero | tr '\0' 'x' >>"$dir/node/snapshotter.log"
waited=0
until [ -f "$dir/node/snapshotter.log.1" ]; do
    [ "$waited" -lt 150 ] || fail "snapshotter.log not rotated within 15 s"
    sleep 0.1
    waited=$((waited + 1))
done
[ "$(wc -c <"$dir/node/snapshotter.log")" -lt 4096 ] || fail "snapshotter.log not truncated"
"$ctl" snapshot --dir "$dir/node" >/dev/null || fail "snapshot after the rotation"
grep -q "event=" "$dir/node/snapshotter.log" || fail "nothing logged after the rotation"

# A port clash fails a start before anything is on disk, for every TCP
# endpoint and metrics port of every process: the node's own ports stand in
# for ports in use. The writer gets a data dir that does not exist; the
# others refuse one, so they get an empty one and must leave it empty.
metrics=$(sed -n 's/^ *metrics = "http:\/\/\([^/]*\)\/metrics"$/\1/p' "$dir/node/writer.endpoints")
[ -n "$metrics" ] || fail "no metrics in writer.endpoints"
mkdir "$dir/empty"
# clash PROCESS HELD VAR=VALUE...: PROCESS, started with these overrides
# (the last one puts an endpoint on HELD, a host:port in use), exits
# non-zero with a line naming HELD in use and creates nothing. A process
# that serves after all is stopped by timeout and fails the same checks.
clash() {
    name=$1
    held=$2
    shift 2
    data="$dir/empty"
    [ "$name" != writer ] || data="$dir/fresh/data"
    if env STRATA_NODE_DATA_DIR="$data" "$@" timeout 20 "$build/services/$name/strata-$name" \
        >"$dir/clash.out" 2>&1; then
        fail "$name started with a port in use ($*)"
    fi
    grep -q "${held}[^0-9].*in use" "$dir/clash.out" ||
        fail "$name ($*) did not name $held in use: $(cat "$dir/clash.out")"
    [ ! -e "$dir/fresh" ] || fail "$name that failed to bind ($*) left $dir/fresh"
    [ -z "$(ls -A "$dir/empty")" ] || fail "$name that failed to bind ($*) left $(ls -A "$dir/empty")"
}
# clash for a process of a one-node cluster: the cluster writer, the
# election and the replicator.
cluster_clash() {
    name=$1
    held=$2
    shift 2
    clash "$name" "$held" STRATA_CLUSTER_ID=1 STRATA_CLUSTER_VOTERS=1 \
        STRATA_CLUSTER_CLIENT_PEERS=1=tcp://127.0.0.1:1 \
        STRATA_CLUSTER_ELECTION_PEERS=1=tcp://127.0.0.1:1 \
        STRATA_CLUSTER_REPLICATOR_PEERS=1=tcp://127.0.0.1:1 \
        'STRATA_ELECTION_BIND=tcp://127.0.0.1:*' STRATA_ELECTION_METRICS=127.0.0.1:0 \
        'STRATA_REPLICATOR_BIND=tcp://127.0.0.1:*' STRATA_REPLICATOR_METRICS=127.0.0.1:0 "$@"
}
port=${endpoint##*:}
for var in ENDPOINT CONTROL; do
    clash writer "$endpoint" "STRATA_WRITER_$var=$endpoint"
done
clash writer "$metrics" "STRATA_WRITER_METRICS=$metrics"
cluster_clash writer "$endpoint" "STRATA_WRITER_RAFT=$endpoint"
for name in compactor snapshotter; do
    var=STRATA_$(echo "$name" | tr '[:lower:]' '[:upper:]')
    clash "$name" "$endpoint" "${var}_ENDPOINT=$endpoint"
    clash "$name" "$metrics" "${var}_METRICS=$metrics"
done
for var in LIVE DELAYED HISTORY; do
    clash distributor "$endpoint" "STRATA_DISTRIBUTOR_$var=$endpoint"
done
clash distributor "$metrics" "STRATA_DISTRIBUTOR_METRICS=$metrics"
for name in election replicator; do
    var=STRATA_$(echo "$name" | tr '[:lower:]' '[:upper:]')
    cluster_clash "$name" "$endpoint" "${var}_BIND=$endpoint"
    # Without a bind, the port of this node's entry in the peers, on every
    # interface.
    cluster_clash "$name" ":$port" "${var}_BIND=" "STRATA_CLUSTER_${var#STRATA_}_PEERS=1=$endpoint"
    cluster_clash "$name" "$metrics" "${var}_METRICS=$metrics"
done
cluster_clash election "$endpoint" "STRATA_ELECTION_ROLES=$endpoint"
# A second start on the same directory is refused.
if "$src/deploy/strata-node" start --dir "$dir/node" >/dev/null 2>&1; then
    fail "second start succeeded"
fi
"$src/deploy/strata-node" stop --dir "$dir/node" >/dev/null 2>&1 || fail "stop"
[ ! -e "$dir/node/writer.endpoints" ] || fail "writer.endpoints left after stop"
[ ! -e "$dir/node/distributor.endpoints" ] || fail "distributor.endpoints left after stop"
[ ! -e "$dir/node/snapshotter.endpoints" ] || fail "snapshotter.endpoints left after stop"
[ ! -e "$dir/node/compactor.endpoints" ] || fail "compactor.endpoints left after stop"
for file in writer.ctl compactor.ctl snapshotter.ctl distributor.ctl writer.pid strata-node.pid; do
    [ ! -e "$dir/node/$file" ] || fail "$file left after stop"
done
set +e
"$src/deploy/strata-node" status --dir "$dir/node" >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -eq 3 ] || fail "status after stop exited $rc, want 3"

# The data outlives the processes.
"$src/deploy/strata-node" start --dir "$dir/node" >/dev/null 2>&1 || fail "restart"
endpoint=$(sed -n 's/^ *endpoint = "\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$dir/node/writer.endpoints")
[ "$("$ctl" -s "$endpoint" get launcher-key)" = "launcher-value" ] || fail "get after restart"
[ "$(grep -c "event=initialised" "$dir/node/writer.log")" -eq 1 ] ||
    fail "event=initialised logged again for an existing database"
# restart: stop, then start, the node serving again with the same data.
"$src/deploy/strata-node" restart --dir "$dir/node" >/dev/null 2>&1 || fail "restart verb"
endpoint=$(sed -n 's/^ *endpoint = "\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$dir/node/writer.endpoints")
[ "$("$ctl" -s "$endpoint" get launcher-key)" = "launcher-value" ] || fail "get after the restart verb"
"$src/deploy/strata-node" stop --dir "$dir/node" >/dev/null 2>&1 || fail "second stop"
echo "test_launcher: ok"
