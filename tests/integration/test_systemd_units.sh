#!/bin/sh
# systemd-analyze verify on every unit of deploy/systemd, instantiated for a
# node, with ExecStart pointed at the built binaries (verify checks that
# they exist). Any line verify prints fails the test, warnings included;
# and a unit whose binary is missing must fail it, so the check can fail.
# Args: SOURCE_DIR BUILD_DIR.
set -eu
# Absolute: ExecStart needs an absolute path.
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-units-XXXXXX")
trap 'rm -rf "$dir"' EXIT
fail() {
    echo "test_systemd_units: FAIL: $*" >&2
    exit 1
}
command -v systemd-analyze >/dev/null ||
    fail "no systemd-analyze (Debian package systemd; deploy/install-deps.sh installs it)"

# The units as installed, but with /usr/local/bin/strata-NAME replaced by
# BUILD/services/NAME/strata-NAME.
instantiate() {
    mkdir -p "$1"
    for unit in "$src"/deploy/systemd/*; do
        sed "s#/usr/local/bin/strata-\([a-z]*\)#$2/services/\1/strata-\1#g" "$unit" \
            >"$1/$(basename "$unit")"
    done
}

# Every unit as node1's instance; prints what verify said, returns its status.
verify() {
    units=""
    for unit in "$1"/*; do
        name=$(basename "$unit")
        units="$units ${name%%@*}@node1.${name##*.}"
    done
    # shellcheck disable=SC2086 # a list of unit names
    (cd "$1" && SYSTEMD_UNIT_PATH="$1:" systemd-analyze verify $units 2>&1)
}

count=0
for unit in "$src"/deploy/systemd/*; do count=$((count + 1)); done
[ "$count" -eq 7 ] || fail "deploy/systemd holds $count units, expected six services and a target"
for name in writer election replicator compactor distributor snapshotter; do
    unit="$src/deploy/systemd/strata-$name@.service"
    [ -f "$unit" ] || fail "no $unit"
    grep -q "^ExecStart=/usr/local/bin/strata-$name -c /etc/strata/%i.cfg\$" "$unit" ||
        fail "$unit: ExecStart is not /usr/local/bin/strata-$name -c /etc/strata/%i.cfg"
    grep -q "^Type=notify\$" "$unit" || fail "$unit: not Type=notify"
    grep -q "^Wants=.*strata-$name@%i.service" "$src/deploy/systemd/strata-node@.target" ||
        fail "strata-node@.target does not want strata-$name@%i.service"
done

instantiate "$dir/good" "$build"
out=$(verify "$dir/good") || fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify reported: $out"

# The same check must notice a missing binary.
instantiate "$dir/bad" "$dir/nowhere"
if out=$(verify "$dir/bad") && [ -z "$out" ]; then
    fail "verify passed units whose binaries do not exist"
fi
# The README's `sh systemd` block cannot run here (no systemd, and it
# installs into /usr/local and /etc): check what it names instead. Every
# file it installs exists in a clone with this build, every unit it enables
# is one of deploy/systemd's templates, every stratactl verb it uses is one.
. "$src/tests/support/doc-examples.sh"
doc_commands systemd "$src/README.md" | cut -f2 >"$dir/systemd.txt"
clone="$dir/clone"
mkdir "$clone"
ln -s "$build" "$clone/build"
ln -s "$src/deploy" "$clone/deploy"
checked=0
while read -r cmd; do
    set -f
    # shellcheck disable=SC2086 # the command's words
    set -- ${cmd%%#*}
    set +f
    [ "$1" != sudo ] || shift
    [ "$1" != -u ] || shift 2
    case $1 in
    make | useradd) ;;
    install)
        shift
        sources=""
        directory=0
        while [ $# -gt 1 ]; do
            case $1 in
            -d) directory=1 ;;
            -m) shift ;;
            *) sources="$sources $1" ;;
            esac
            shift
        done
        [ "$directory" = 1 ] && continue
        for pattern in $sources; do
            # shellcheck disable=SC2086 # a glob, expanded in the clone
            found=$(cd "$clone" && ls -d $pattern 2>/dev/null | wc -l)
            [ "$found" -gt 0 ] || fail "README.md's systemd block installs $pattern, which this build does not have"
        done
        ;;
    systemctl)
        for word in "$@"; do
            case $word in
            strata-*@*.service | strata-*@*.target)
                template="${word%%@*}@.${word##*.}"
                [ -f "$src/deploy/systemd/$template" ] ||
                    fail "README.md's systemd block names $word; deploy/systemd has no $template"
                ;;
            esac
        done
        ;;
    stratactl)
        "$build/services/ctl/stratactl" "$2" --help >/dev/null 2>&1 ||
            fail "README.md's systemd block uses stratactl $2, which stratactl does not know"
        ;;
    *) fail "README.md's systemd block runs $1, which this check does not know: $cmd" ;;
    esac
    checked=$((checked + 1))
done <"$dir/systemd.txt"
[ "$checked" -ge 8 ] || fail "README.md's systemd block has $checked commands"
echo "test_systemd_units: ok ($count units, $checked commands of the README's systemd block)"
