#!/bin/sh
# The compose cluster for real (deploy/compose/docker-compose.yml on the image
# docker/build-image.sh makes): every service healthy, quorum writes through
# a published client port with every acknowledged key recorded, the stream
# tailed through a published distributor port, the master's writer container
# killed while a client writes, a new master taking writes with every
# acknowledged key, the killed container started again and following with
# everything, then everything torn down. Then the README's `sh tested-compose`
# lines, run as written (tests/support/doc-examples.sh) in a directory that
# stands for a clone, and the project and images they made removed. Starts
# dockerd (without touching the host's firewall) when none runs, and stops it
# again.
# Args: SOURCE_DIR BUILD_DIR. Exit 77 (CTest's skip) with a SKIPPED line when
# this machine cannot run Docker.
set -eu
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
ctl="$build/services/ctl/stratactl"
DOCKER=${DOCKER:-docker}
COMPOSE=${COMPOSE:-docker-compose}
SKIP=77
T0=$(date +%s)
# Node N's published ports are 17400 + 100 (N - 1) + offset, as the compose
# file says.
SERVERS="tcp://127.0.0.1:17400,tcp://127.0.0.1:17500,tcp://127.0.0.1:17600"
PROCESSES="writer election replicator compactor distributor snapshotter"
IMAGE=strata:compose-test
PHASE1_KEYS=100
AFTER_FAILOVER_KEYS=50

say() { echo "test_compose: [$(($(date +%s) - T0)) s] $*"; }
skip() {
    echo "SKIPPED: $*"
    exit "$SKIP"
}

# ---- can this machine run it? -------------------------------------------

[ "$(id -u)" -eq 0 ] || skip "not root (dockerd and mmdebstrap need root)"
command -v dockerd >/dev/null || skip "no dockerd (apt-get install docker.io)"
command -v "$DOCKER" >/dev/null || skip "no docker client (apt-get install docker.io)"
command -v "$COMPOSE" >/dev/null || skip "no docker-compose (apt-get install docker-compose)"
command -v mmdebstrap >/dev/null || skip "no mmdebstrap (apt-get install mmdebstrap)"
awk '$3 == "cgroup" || $3 == "cgroup2" { found = 1 } END { exit !found }' /proc/mounts ||
    skip "no cgroup file system mounted"
[ "$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null)" = bookworm ] ||
    skip "not Debian 12: the image's binaries come from this host's build"
busy=$(ss -Hltn 2>/dev/null | awk '{ print $4 }' | grep -E ':1(74|75|76)[0-9][0-9]$' | head -n 1 || true)
[ -z "$busy" ] || skip "$busy is taken: the compose file publishes 17400..17685 (a compose cluster already up?)"

work="$build/test_compose.d"
rm -rf "$work"
mkdir -p "$work"
export COMPOSE_PROJECT_NAME="stratatest$$"
export COMPOSE_FILE="$src/deploy/compose/docker-compose.yml"
export STRATA_NODE1_IMAGE="$IMAGE" STRATA_NODE2_IMAGE="$IMAGE" STRATA_NODE3_IMAGE="$IMAGE"
DOCKERD_PID=""
UP=0
# The README's lines make project strata and the images README_IMAGES.
README_PROJECT=strata
README_IMAGES=""
README_UP=0
WRITER_PID=""

# Polls "$@" until it succeeds or LIMIT seconds pass.
wait_until() {
    limit=$1
    shift
    end=$(($(date +%s) + limit))
    while ! "$@"; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.2 # polling, bounded by the deadline above
    done
}

teardown() {
    status=$?
    set +e
    [ -z "$WRITER_PID" ] || {
        touch "$work/stop-writing"
        wait "$WRITER_PID"
    }
    if [ "$UP" = 1 ]; then
        if [ "$status" -ne 0 ] && [ "$status" -ne "$SKIP" ]; then
            for n in 1 2 3; do
                for p in writer election replicator; do
                    echo "--- node$n-$p (last lines)" >&2
                    "$COMPOSE" logs --no-color --tail 15 "node$n-$p" 2>&1 | tail -n 15 >&2
                done
            done
            "$COMPOSE" ps >&2
            # What the health checks said, for a container that never turned
            # healthy.
            for cid in $("$COMPOSE" ps -q 2>/dev/null); do
                "$DOCKER" inspect -f '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}: {{range .State.Health.Log}}[exit {{.ExitCode}}] {{.Output}}{{end}}{{end}}' \
                    "$cid" 2>/dev/null | grep -v ' healthy: ' | tail -c 3000 >&2
            done
        fi
        "$COMPOSE" down --volumes --remove-orphans --timeout 30 >"$work/down.log" 2>&1 ||
            { echo "test_compose: docker-compose down failed:" >&2; cat "$work/down.log" >&2; }
    fi
    if [ "$README_UP" = 1 ]; then
        if [ "$status" -ne 0 ] && [ "$status" -ne "$SKIP" ]; then
            readme_compose ps >&2
        fi
        readme_compose down --volumes --remove-orphans --timeout 30 >"$work/readme-down.log" 2>&1 ||
            { echo "test_compose: docker-compose -p $README_PROJECT down failed:" >&2; cat "$work/readme-down.log" >&2; }
        # shellcheck disable=SC2086 # a list of tags
        "$DOCKER" image rm $README_IMAGES >/dev/null 2>&1
    fi
    "$DOCKER" image rm "$IMAGE" >/dev/null 2>&1
    if [ -n "$DOCKERD_PID" ]; then
        kill -TERM "$DOCKERD_PID" 2>/dev/null
        wait_until 60 dockerd_gone || echo "test_compose: dockerd (pid $DOCKERD_PID) still running" >&2
    fi
    echo "test_compose: total $(($(date +%s) - T0)) s"
    exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

readme_compose() { "$COMPOSE" -f "$src/deploy/compose/docker-compose.yml" -p "$README_PROJECT" "$@"; }
dockerd_gone() { ! kill -0 "$DOCKERD_PID" 2>/dev/null; }
docker_answers() { "$DOCKER" version >/dev/null 2>&1; }

fail() {
    echo "test_compose: FAIL: $*" >&2
    exit 1
}

# ---- dockerd --------------------------------------------------------------

if ! docker_answers; then
    # No iptables rules, no forwarding or masquerading, no docker0: the
    # cluster tests run their own bridge, namespaces and nft tables on this
    # host, and Docker's FORWARD policy (DROP) would cut them off. Published
    # ports then go through docker-proxy; the compose network is a bridge of
    # its own that docker-compose down removes.
    # A config file of its own: /etc/docker/daemon.json may say some of the
    # same, and dockerd refuses a setting given both there and as a flag.
    cat >"$work/daemon.json" <<'EOF'
{
  "iptables": false,
  "ip6tables": false,
  "ip-forward": false,
  "ip-masq": false,
  "bridge": "none"
}
EOF
    say "starting dockerd (log $work/dockerd.log)"
    dockerd --config-file "$work/daemon.json" >"$work/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    if ! wait_until 60 docker_answers; then
        why=$(grep -iE 'level=(fatal|error)' "$work/dockerd.log" | tail -n 1)
        kill -0 "$DOCKERD_PID" 2>/dev/null || {
            DOCKERD_PID=""
            skip "dockerd does not start here: ${why:-see $work/dockerd.log}"
        }
        fail "dockerd did not answer within 60 s (log $work/dockerd.log)"
    fi
fi
say "docker $("$DOCKER" version -f '{{.Server.Version}}'), storage $("$DOCKER" info -f '{{.Driver}}')"

# ---- the image ------------------------------------------------------------

say "building $IMAGE"
BUILD="$build" DOCKER="$DOCKER" "$src/docker/build-image.sh" --tag "$IMAGE" >"$work/image.log" 2>&1 ||
    {
        cat "$work/image.log" >&2
        fail "docker/build-image.sh"
    }
say "$(tail -n 1 "$work/image.log")"

# Health checks run through `docker exec`. Inside a chroot (a build root, a
# throw-away test system) runc starts containers but cannot enter a running
# one: the exec's chdir to the image's WORKDIR fails, every health check
# with it, and no service turns healthy. Told apart from a failure of ours
# on one container of the image before anything else starts.
probe=$("$DOCKER" run -d --rm --network none --entrypoint sleep "$IMAGE" 60 2>"$work/probe.err") ||
    fail "docker run of $IMAGE: $(cat "$work/probe.err")"
if ! "$DOCKER" exec "$probe" true >"$work/probe.err" 2>&1; then
    "$DOCKER" rm -f "$probe" >/dev/null 2>&1
    skip "docker exec cannot enter a running container here, so no health check can run: $(head -c 300 "$work/probe.err")"
fi
"$DOCKER" rm -f "$probe" >/dev/null 2>&1

# Until stratactl has its check verb, the health checks stand in for it: the
# writer answers status, another process's pid in its endpoints file lives.
if ! "$ctl" help check >/dev/null 2>&1; then
    say "NOTE: this stratactl has no check verb; health checks use a stand-in"
    {
        echo "services:"
        for n in 1 2 3; do
            for p in $PROCESSES; do
                echo "  node$n-$p:"
                echo "    healthcheck:"
                echo "      test:"
                echo "        - CMD-SHELL"
                if [ "$p" = writer ]; then
                    echo "        - stratactl --timeout 2000 -s tcp://127.0.0.1:7400 status"
                else
                    cat <<EOF
        - |
          pid=\$\$(awk '\$\$1 == "pid" { gsub(/"/, "", \$\$3); print \$\$3 }' /data/$p.endpoints) && kill -0 "\$\$pid"
EOF
                fi
            done
        done
    } >"$work/standin.yml"
    COMPOSE_FILE="$COMPOSE_FILE:$work/standin.yml"
fi

# ---- up -------------------------------------------------------------------

say "docker-compose up (project $COMPOSE_PROJECT_NAME)"
UP=1
STRATA_BOOTSTRAP=true "$COMPOSE" up -d >"$work/up.log" 2>&1 || {
    cat "$work/up.log" >&2
    fail "docker-compose up"
}

# Every process container healthy, every holder running.
all_healthy() {
    for id in $("$COMPOSE" ps -q); do
        state=$("$DOCKER" inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id")
        case "$state" in "running healthy" | "running none") ;; *) return 1 ;; esac
    done
    [ "$("$COMPOSE" ps -q | wc -l)" -eq 21 ]
}
wait_until 180 all_healthy || fail "not every service healthy within 180 s: $("$COMPOSE" ps)"
say "21 containers up, every process healthy"

# ---- the master, quorum writes, the stream --------------------------------

status_table() { "$ctl" --timeout 1000 cluster status --servers "$SERVERS" 2>/dev/null || true; }
leader() { status_table | awk '$3 == "leader" { print $1; exit }'; }
node_of() { echo $(((${1##*:} - 17400) / 100 + 1)); }
MASTER_EP=""
have_master() {
    MASTER_EP=$(leader)
    [ -n "$MASTER_EP" ]
}
wait_until 60 have_master || fail "no master within 60 s: $(status_table)"
master=$(node_of "$MASTER_EP")
say "master: node$master ($MASTER_EP)"

# Keys are k000000 on, the value of each fixed by its key, so that a write
# retried after a lost answer writes the same again. A line per acknowledged
# write: key, endpoint, ms since the epoch.
# A loaded machine can make the master step down with no fault injected;
# a write it refused is asked of whoever is master next, within a minute.
i=0
retry_until=0
while [ "$i" -lt "$PHASE1_KEYS" ]; do
    key=$(printf 'k%06d' "$i")
    if "$ctl" --timeout 5000 -s "$MASTER_EP" put "$key" "v-$key" >"$work/put.out" 2>&1; then
        echo "$key $MASTER_EP $(date +%s%3N)" >>"$work/acked"
        i=$((i + 1))
        retry_until=0
        continue
    fi
    [ "$retry_until" -ne 0 ] || retry_until=$(($(date +%s) + 60))
    [ "$(date +%s)" -lt "$retry_until" ] ||
        fail "put $key: no master took it within 60 s: $(cat "$work/put.out")"
    say "put $key on $MASTER_EP: $(cat "$work/put.out"); asking the master again"
    wait_until 30 have_master || fail "no master within 30 s: $(status_table)"
done
master=$(node_of "$MASTER_EP")
say "$PHASE1_KEYS quorum writes acknowledged"

# The stream from a follower's distributor, history then live, through its
# published ports: the first PHASE1_KEYS records are those writes in order.
follower=$((master % 3 + 1))
dport=$((17410 + 100 * (follower - 1)))
timeout 60 "$ctl" --timeout 10000 tail --from 1 --count "$PHASE1_KEYS" \
    --live "tcp://127.0.0.1:$dport" --delayed-endpoint "tcp://127.0.0.1:$((dport + 1))" \
    --history "tcp://127.0.0.1:$((dport + 2))" >"$work/tail.out" 2>"$work/tail.err" ||
    fail "tail on node$follower's distributor: $(cat "$work/tail.err")"
cut -f3 "$work/tail.out" >"$work/tail.keys"
head -n "$PHASE1_KEYS" "$work/acked" | cut -d' ' -f1 >"$work/phase1.keys"
cmp -s "$work/tail.keys" "$work/phase1.keys" ||
    fail "tail on node$follower gave other keys than the $PHASE1_KEYS written: $(diff "$work/phase1.keys" "$work/tail.keys" | head -n 5)"
say "tail --count $PHASE1_KEYS on node$follower's distributor (127.0.0.1:$dport): every write, in order"

# ---- kill the master's writer container under writes ----------------------

# One write at a time to the node that last took one, else the next node.
write_loop() {
    n=$1
    ep=$MASTER_EP
    while [ ! -f "$work/stop-writing" ]; do
        key=$(printf 'k%06d' "$n")
        if "$ctl" --timeout 1000 -s "$ep" put "$key" "v-$key" >/dev/null 2>&1; then
            echo "$key $ep $(date +%s%3N)" >>"$work/acked"
            n=$((n + 1))
        else
            node=$(node_of "$ep")
            ep="tcp://127.0.0.1:$((17400 + 100 * (node % 3)))"
        fi
    done
}
write_loop "$PHASE1_KEYS" &
WRITER_PID=$!
acked() { wc -l <"$work/acked"; }
acked_at_least() { [ "$(acked)" -ge "$1" ]; }
wait_until 60 acked_at_least $((PHASE1_KEYS + 50)) || fail "the writing client got no 50 acks in 60 s"

# The master now, which a loaded machine may have moved since the writes
# above: the kill must hit the node in office.
wait_until 30 have_master || fail "no master within 30 s before the kill: $(status_table)"
master=$(node_of "$MASTER_EP")
writer_cid=$("$COMPOSE" ps -q "node$master-writer")
kill_ms=$(date +%s%3N)
KILLED_EP=$MASTER_EP
"$DOCKER" kill "$writer_cid" >/dev/null || fail "docker kill node$master-writer"
say "killed node$master-writer's container at $(acked) acknowledged writes"

# The first write acknowledged after the kill, by another node.
acked_after_kill() {
    awk -v t="$kill_ms" -v old="$KILLED_EP" '$3 > t && $2 != old { print; exit }' "$work/acked"
}
first_after() { [ -n "$(acked_after_kill)" ]; }
wait_until 30 first_after || fail "no write acknowledged by another node within 30 s of the kill: $(status_table)"
first=$(acked_after_kill)
NEW_EP=$(echo "$first" | cut -d' ' -f2)
new=$(node_of "$NEW_EP")
failover_ms=$(($(echo "$first" | cut -d' ' -f3) - kill_ms))
say "node$new took writes $failover_ms ms after the kill"
target=$(($(acked) + AFTER_FAILOVER_KEYS))
wait_until 60 acked_at_least "$target" || fail "no $AFTER_FAILOVER_KEYS more acks from node$new in 60 s"
touch "$work/stop-writing"
wait "$WRITER_PID" || fail "the writing client"
WRITER_PID=""
# The master's lease and heartbeats keep it in office unless the machine
# starves it; the check below reads from whichever node is master now.
wait_until 30 have_master || fail "no master within 30 s after the failover: $(status_table)"
[ "$MASTER_EP" = "$NEW_EP" ] || say "node$(node_of "$MASTER_EP") is master now, not node$new"
NEW_EP=$MASTER_EP
new=$(node_of "$NEW_EP")

# Every acknowledged write, with its value, read on one node.
awk '{ print $1 "\tv-" $1 }' "$work/acked" | sort -u >"$work/expected"
check_all_acked() {
    "$ctl" --timeout 10000 -s "$1" scan k l --limit 10000000 >"$work/scan.out" ||
        fail "scan on $1"
    sort "$work/scan.out" | comm -23 "$work/expected" - >"$work/missing"
    [ ! -s "$work/missing" ] ||
        fail "$(wc -l <"$work/missing") acknowledged writes missing on $1, first: $(head -n 3 "$work/missing")"
}
check_all_acked "$NEW_EP"
say "all $(wc -l <"$work/expected") acknowledged writes on the new master node$new"

# ---- the killed container back --------------------------------------------

"$DOCKER" start "$writer_cid" >/dev/null || fail "docker start node$master-writer"
healthy() { [ "$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$1")" = healthy ]; }
wait_until 120 healthy "$writer_cid" || fail "node$master-writer not healthy within 120 s of its start"
role_is_follower() {
    "$ctl" --timeout 1000 -s "$KILLED_EP" status 2>/dev/null | grep -q '^role[[:space:]]*follower$'
}
wait_until 60 role_is_follower || fail "node$master not a follower within 60 s: $(status_table)"
commit_of() { status_table | awk -v ep="$1" '$1 == ep { print $6 " " $7 }'; }
caught_up() {
    leader_commit=$(commit_of "$NEW_EP" | cut -d' ' -f1)
    mine=$(commit_of "$KILLED_EP")
    [ -n "$leader_commit" ] && [ "$mine" = "$leader_commit $leader_commit" ]
}
wait_until 60 caught_up || fail "node$master did not catch up within 60 s: $(status_table)"
check_all_acked "$KILLED_EP"
say "node$master rejoined as a follower, caught up to commit $(commit_of "$NEW_EP" | cut -d' ' -f1), all acknowledged writes there"

# Its other processes lived on beside the killed writer (restarts, if a
# process chose to exit, are the restart policy's and are shown).
restarts=""
for p in $PROCESSES; do
    cid=$("$COMPOSE" ps -q "node$master-$p")
    [ "$("$DOCKER" inspect -f '{{.State.Running}}' "$cid")" = true ] || fail "node$master-$p is not running"
    restarts="$restarts $p:$("$DOCKER" inspect -f '{{.RestartCount}}' "$cid")"
done
wait_until 120 all_healthy || fail "not every service healthy again: $("$COMPOSE" ps)"
say "every service healthy again (node$master restarts:$restarts); failover ${failover_ms} ms"

# ---- the README's compose lines -------------------------------------------

# They end in `down --volumes` and the removal of the images they built: a
# project or an image of those names that is here already is someone's, not
# ours to delete.
theirs=$({
    "$DOCKER" ps -aq --filter "label=com.docker.compose.project=$README_PROJECT"
    "$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$README_PROJECT"
} 2>/dev/null | head -n 1)
[ -z "$theirs" ] ||
    skip "a compose project $README_PROJECT is here, which the README's lines would take over (this test's own checks passed)"
# build-image.sh's default tag, and the upgrade's.
README_IMAGES="strata:$("$ctl" --version | cut -d' ' -f2) strata:0.1.1"
for tag in $README_IMAGES; do
    ! "$DOCKER" image inspect "$tag" >/dev/null 2>&1 ||
        skip "the image $tag is here, which the README's lines would build again and this test remove (this test's own checks passed)"
done

# Their project publishes the same ports.
"$COMPOSE" down --volumes --remove-orphans --timeout 30 >"$work/down.log" 2>&1 || {
    cat "$work/down.log" >&2
    fail "docker-compose down"
}
UP=0
say "project $COMPOSE_PROJECT_NAME down"

# A clone, as far as the lines look: ./build is this build, ./deploy and
# ./docker the source's, and `make` runs the source's Makefile on this build.
readme="$work/readme"
mkdir -p "$readme/bin"
ln -s "$build" "$readme/build"
ln -s "$src/deploy" "$readme/deploy"
ln -s "$src/docker" "$readme/docker"
printf '#!/bin/sh\nexec /usr/bin/make -C "%s" "$@"\n' "$src" >"$readme/bin/make"
chmod +x "$readme/bin/make"
. "$src/tests/support/doc-examples.sh"
say "README.md's sh tested-compose lines (project $README_PROJECT, log $work/readme.log)"
README_UP=1
if ! (
    # A reader's shell, without this test's settings.
    unset COMPOSE_PROJECT_NAME COMPOSE_FILE STRATA_NODE1_IMAGE STRATA_NODE2_IMAGE STRATA_NODE3_IMAGE
    export PATH="$readme/bin:$PATH" BUILD="$build"
    cd "$readme"
    doc_run tested-compose "$src/README.md" || exit 1
    echo "$DOC_RAN" >"$work/readme.ran"
) >"$work/readme.log" 2>&1; then
    cat "$work/readme.log" >&2
    fail "README.md's sh tested-compose lines"
fi
say "README.md: $(cat "$work/readme.ran") sh tested-compose commands ran, each with exit 0"
echo "test_compose: ok"
