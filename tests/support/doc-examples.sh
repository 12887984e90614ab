# Sourced by the shell suites that run the documents' examples. A fenced
# block whose info string is "sh TAG" holds commands for the suite that
# knows TAG (README.md, "Examples in the documents", lists them); nothing
# else in a document is run.

# doc_commands TAG FILE...: each command of FILE's "sh TAG" blocks, in order,
# as FILE:LINE<TAB>COMMAND: indentation dropped, lines ending in a
# backslash joined to the next, blank lines and lines that are only a
# comment skipped. A block left open is an error.
doc_commands() {
    tag=$1
    shift
    awk -v tag="$tag" '
        function flush() {
            if (cmd != "") printf "%s:%d\t%s\n", FILENAME, first, cmd
            cmd = ""
        }
        FNR == 1 { if (inblock) { open_at = prev; exit 1 } inblock = 0 }
        {
            line = $0
            sub(/^[ \t]+/, "", line)
            prev = FILENAME ":" FNR
        }
        line ~ /^```/ {
            if (inblock) { flush(); inblock = 0; next }
            inblock = 1
            mine = (line == "```sh " tag)
            next
        }
        !inblock || !mine { next }
        cmd == "" && (line == "" || line ~ /^#/) { next }
        {
            if (cmd == "") first = FNR
            if (line ~ /\\$/) { cmd = cmd substr(line, 1, length(line) - 1); next }
            cmd = cmd line
            flush()
        }
        END {
            if (open_at != "" || inblock) {
                print "doc_commands: a fenced block is not closed (" (open_at != "" ? open_at : prev) ")" > "/dev/stderr"
                exit 1
            }
        }' "$@"
}

# doc_run TAG FILE...: runs every command doc_commands finds with sh -c in
# the current directory; each must exit 0. An `export` is run by the
# caller's shell, so that the commands after it see it, as in a reader's
# terminal. A command whose comment says "until Ctrl-C" runs until it has
# printed a line (within DOC_CTRL_C_WAIT seconds, 20 by default) and is then
# sent SIGINT in a process group of its own, as a terminal's Ctrl-C would
# be; it must end within as long again, with exit 0. Prints each command
# before it runs; on a failure, its output, and returns 1. Sets DOC_RAN to
# the number of commands run.
doc_run() {
    list=$(mktemp)
    out=$(mktemp)
    err=$(mktemp)
    doc_commands "$@" >"$list" || {
        rm -f "$list" "$out" "$err"
        return 1
    }
    DOC_RAN=0
    status=0
    while IFS="$(printf '\t')" read -r where cmd; do
        echo "doc_run: $where: $cmd"
        case $cmd in
        "export "*)
            # For the commands after it, as in the reader's shell.
            eval "$cmd" || {
                echo "doc_run: $where: failed" >&2
                status=1
            }
            ;;
        *"until Ctrl-C"*)
            # A background job of a script starts with SIGINT ignored, which
            # a shell script it runs could then not trap: restore it. The
            # shell in between stands for the terminal's, which Ctrl-C does
            # not end: its trap outlives the signal and is reset for what it
            # runs.
            # Emptied here, not by the child's redirection: the last
            # command's output must not pass for this one's first line.
            : >"$out"
            env --default-signal=INT setsid sh -c "trap : INT; $cmd" >"$out" 2>"$err" </dev/null &
            pid=$!
            end=$(($(date +%s) + ${DOC_CTRL_C_WAIT:-20}))
            while [ ! -s "$out" ] && kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do
                sleep 0.1 # polling for its first line, bounded by the deadline
            done
            if [ ! -s "$out" ]; then
                echo "doc_run: $where: printed nothing within ${DOC_CTRL_C_WAIT:-20} s" >&2
                kill -KILL "-$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
                status=1
            else
                kill -INT "-$pid" 2>/dev/null || true
                end=$(($(date +%s) + ${DOC_CTRL_C_WAIT:-20}))
                while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do
                    sleep 0.1 # polling for its end, bounded by the deadline
                done
                if kill -0 "$pid" 2>/dev/null; then
                    echo "doc_run: $where: still running ${DOC_CTRL_C_WAIT:-20} s after Ctrl-C" >&2
                    kill -KILL "-$pid" 2>/dev/null || true
                    wait "$pid" 2>/dev/null || true
                    status=1
                else
                    rc=0
                    wait "$pid" || rc=$?
                    [ "$rc" -eq 0 ] || {
                        echo "doc_run: $where: exit $rc after Ctrl-C" >&2
                        status=1
                    }
                fi
            fi
            ;;
        *)
            rc=0
            sh -c "$cmd" >"$out" 2>"$err" </dev/null || rc=$?
            [ "$rc" -eq 0 ] || {
                echo "doc_run: $where: exit $rc" >&2
                status=1
            }
            ;;
        esac
        if [ "$status" -ne 0 ]; then
            echo "--- stdout" >&2
            cat "$out" >&2
            echo "--- stderr" >&2
            cat "$err" >&2
            break
        fi
        DOC_RAN=$((DOC_RAN + 1))
    done <"$list"
    rm -f "$list" "$out" "$err"
    return "$status"
}

# doc_configs DIR FILE...: writes each "cfg PROGRAM" block of FILE into a file
# of its own in DIR, as it stands (indentation and comments kept), and prints
# FILE:LINE<TAB>PROGRAM<TAB>PATH for each.
doc_configs() {
    dir=$1
    shift
    awk -v dir="$dir" '
        /^```/ {
            if (path != "") { close(path); printf "%s:%d\t%s\t%s\n", FILENAME, first, program, path; path = ""; inblock = 0; next }
            if (inblock) { inblock = 0; next }
            inblock = 1
            if ($1 == "```cfg" && NF == 2) { n++; first = FNR; program = $2; path = dir "/" n ".cfg"; printf "" > path }
            next
        }
        path != "" { print > path }' "$@"
}
