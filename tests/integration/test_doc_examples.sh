#!/bin/sh
# The documents' examples, run as written (tests/support/doc-examples.sh), in
# a network namespace of their own so that the default ports they name are
# free: the README's quick-start line `make run`, the `sh tested` blocks of
# every document against that node, Ctrl-C, the `sh tested-stopped` blocks
# against its stopped data dir, then the `sh tested-cluster` blocks against
# a 3-node cluster that deploy/strata-cluster starts as `make cluster`
# would. The README's `make test` line is what .ci/run runs, word for word.
# The working directory stands for a clone: ./build is this build, ./deploy
# the source's, and `make` runs the source's Makefile on this build (a
# `make` first on PATH adds -C SOURCE_DIR), so nothing is written into the
# source tree.
# Args: SOURCE_DIR BUILD_DIR. Needs root (unshare --net); exit 77 otherwise.
set -eu
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
SKIP=77
if [ -z "${DOC_EXAMPLES_IN_NETNS:-}" ]; then
    [ "$(id -u)" -eq 0 ] || {
        echo "SKIPPED: not root (a network namespace of its own needs root)"
        exit "$SKIP"
    }
    # `make run` builds with the release flags: on another build it would
    # reconfigure that build.
    grep -q '^CMAKE_BUILD_TYPE:STRING=RelWithDebInfo$' "$build/CMakeCache.txt" || {
        echo "SKIPPED: $build is not the release build that make run builds"
        exit "$SKIP"
    }
    DOC_EXAMPLES_IN_NETNS=1 exec unshare --net sh "$0" "$@"
fi
ip link set lo up

. "$src/tests/support/doc-examples.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-doc-examples-XXXXXX")
RUN_PID=""
# Ctrl-C to make run's process group; false if it still runs 60 s later.
stop_run() {
    kill -INT "-$RUN_PID" 2>/dev/null || true
    end=$(($(date +%s) + 60))
    while kill -0 "$RUN_PID" 2>/dev/null; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.2 # polling for make run to end, bounded by the deadline
    done
    wait "$RUN_PID" 2>/dev/null || true
}
cleanup() {
    set +e
    [ -z "$RUN_PID" ] || stop_run || kill -KILL "-$RUN_PID" 2>/dev/null
    [ ! -d "$work/data/cluster" ] || BUILD="$build" "$src/deploy/strata-cluster" stop --dir "$work/data/cluster" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "test_doc_examples: FAIL: $*" >&2
    exit 1
}
# Polls "$@" until it succeeds or LIMIT seconds pass.
wait_until() {
    limit=$1
    shift
    end=$(($(date +%s) + limit))
    while ! "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.2 # polling, bounded by the deadline above
    done
}

ln -s "$build" "$work/build"
ln -s "$src/deploy" "$work/deploy"
mkdir "$work/bin"
cat >"$work/bin/make" <<EOF
#!/bin/sh
exec /usr/bin/make -C "$src" "\$@"
EOF
chmod +x "$work/bin/make"
export PATH="$work/bin:$build/services/ctl:$PATH"
export BUILD="$build"
export STRATA_NODE_DATA_DIR="$work/strata-data"
unset STRATA_SERVER
cd "$work"
ctl="$build/services/ctl/stratactl"

# ---- the README's two commands ----------------------------------------------
doc_commands quickstart "$src/README.md" >quickstart.txt
[ "$(wc -l <quickstart.txt)" -eq 2 ] || fail "README.md's quickstart block has not two commands: $(cat quickstart.txt)"
run_line=$(sed -n '1s/^[^\t]*\t//p' quickstart.txt)
test_line=$(sed -n '2s/^[^\t]*\t//p' quickstart.txt)
case $run_line in *"make run"*) ;; *) fail "the first quickstart command is not make run: $run_line" ;; esac
case $test_line in *"make test"*) ;; *) fail "the second quickstart command is not make test: $test_line" ;; esac
# .ci/run is that command and nothing else (CI runs it; it cannot run here).
ci=$(grep -v '^#' "$src/.ci/run" | grep -v '^$')
[ "$ci" = "$(echo "${test_line%%#*}" | sed 's/ *$//')" ] ||
    fail ".ci/run runs [$ci], the README says [$test_line]"

docs=$(cd "$src" && git ls-files '*.md' 2>/dev/null || find . -name '*.md' -not -path './build*')
files=""
for d in $docs; do files="$files $src/$d"; done

# ---- the bench block: its verbs and flags, not its minutes of measuring ----------
bench="$build/bench/strata-bench"
if [ -x "$bench" ]; then
    "$bench" --help >bench-help.txt
    benched=0
    doc_commands bench "$src/README.md" | cut -f2 >bench.txt
    while read -r cmd; do
        set -f
        # shellcheck disable=SC2086 # the command's words
        set -- ${cmd%%#*}
        set +f
        case $1 in
        make) continue ;;
        ./build/bench/strata-bench) shift ;;
        *) fail "README.md's bench block runs $1" ;;
        esac
        for word in "$@"; do
            case $word in
            -*) grep -q "^  $word " bench-help.txt || fail "strata-bench --help has no $word (README.md: $cmd)" ;;
            *.jsonl) ;;
            *) grep -q "^  $word  *[a-z]" bench-help.txt || fail "strata-bench --help has no verb $word (README.md: $cmd)" ;;
            esac
        done
        benched=$((benched + 1))
    done <bench.txt
    verbs=$(awk '/^verbs:/ { on = 1; next } /^$/ { on = 0 } on && /^  [a-z]/ { print $1 }' bench-help.txt | grep -v '^all$')
    for verb in $verbs; do
        grep -q "strata-bench $verb " bench.txt || fail "README.md's bench block has no line for strata-bench $verb"
    done
    [ "$benched" -ge 8 ] || fail "README.md's bench block has $benched strata-bench lines"
fi

# ---- every config block, through its process's --print-config ----------------
mkdir configs
# shellcheck disable=SC2086 # a list of files
doc_configs configs $files >configs.txt
configs=0
while IFS="$(printf '\t')" read -r where program path; do
    bin="$build/services/${program#strata-}/$program"
    [ -x "$bin" ] || fail "$where: a cfg block for $program, which is not built"
    "$bin" -c "$path" --print-config >/dev/null 2>configs.err ||
        fail "$where: $program --print-config refuses the block: $(cat configs.err)"
    configs=$((configs + 1))
done <configs.txt
[ "$configs" -ge 6 ] || fail "only $configs cfg blocks"

# `make run`, as in a terminal: a process group of its own for Ctrl-C.
env --default-signal=INT setsid sh -c "$run_line" >run.out 2>&1 </dev/null &
RUN_PID=$!
# The banner's last line: every process has started and is ready.
started() { kill -0 "$RUN_PID" && grep -q "^Ctrl-C stops the node" run.out; }
wait_until 180 started && kill -0 "$RUN_PID" ||
    {
        cat run.out >&2
        fail "make run's node did not start within 180 s"
    }
grep -q "event=initialised dir=$work/strata-data" run.out || fail "make run did not log event=initialised for ./strata-data"

# ---- every `sh tested` block against it ---------------------------------------
# shellcheck disable=SC2086 # a list of files
doc_run tested $files || fail "an example of a sh tested block failed"
[ "$DOC_RAN" -ge 30 ] || fail "only $DOC_RAN commands in sh tested blocks"

# ---- Ctrl-C --------------------------------------------------------------------
stop_run || fail "make run still runs 60 s after Ctrl-C"
RUN_PID=""
grep -q "event=stopped" run.out || fail "the writer did not log event=stopped after Ctrl-C"
for name in writer compactor distributor snapshotter; do
    [ ! -e "strata-data/$name.pid" ] || fail "$name.pid left after Ctrl-C"
    [ ! -e "strata-data/$name.ctl" ] || fail "$name.ctl left after Ctrl-C"
done
! pgrep -f "strata-.*$work" >/dev/null || fail "a process of the node runs after Ctrl-C: $(pgrep -af "strata-.*$work")"

# shellcheck disable=SC2086 # a list of files
doc_run tested-stopped $files || fail "an example of a sh tested-stopped block failed"
[ "$DOC_RAN" -ge 1 ] || fail "no sh tested-stopped command"

# ---- a cluster, as make cluster starts it ---------------------------------------
./deploy/strata-cluster start --dir ./data/cluster >cluster.out 2>&1 ||
    {
        cat cluster.out >&2
        fail "strata-cluster start"
    }
# shellcheck disable=SC2086 # a list of files
doc_run tested-cluster $files || fail "an example of a sh tested-cluster block failed"
[ "$DOC_RAN" -ge 8 ] || fail "only $DOC_RAN commands in sh tested-cluster blocks"
./deploy/strata-cluster stop --dir ./data/cluster >/dev/null 2>&1 || fail "strata-cluster stop"
echo "test_doc_examples: ok"
