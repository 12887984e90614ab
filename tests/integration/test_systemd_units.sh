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
echo "test_systemd_units: ok ($count units)"
