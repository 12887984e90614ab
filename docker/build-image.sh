#!/bin/sh
# build-image.sh: builds the Strata image (docker/Dockerfile) from the
# release build's binaries. With no image registry to pull debian from, it
# first makes the base here: a Debian bookworm with the binaries' runtime
# packages, by mmdebstrap from the Debian mirror, imported into Docker. That
# base is kept under a tag naming its package list and reused while the list
# stays the same.
set -eu

PROG=build-image.sh
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
BUILD=${BUILD:-$SRC/build}
DOCKER=${DOCKER:-docker}
SUITE=bookworm
MIRROR=${STRATA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${STRATA_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SERVICES="writer election replicator compactor distributor snapshotter"
# The legacy builder is in every daemon and needs no buildx plugin in the
# client; the Dockerfile uses nothing BuildKit adds.
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"

usage() {
    cat <<EOF
usage: $PROG [--tag IMAGE] [--base IMAGE] [--rebuild-base]

Builds the Strata image from the binaries in \$BUILD (now $BUILD; make build
first): strata-{$(echo "$SERVICES" | tr ' ' ',')} and stratactl.

  --tag IMAGE     the image's name (default strata:<version>, the version
                  stratactl --version prints)
  --base IMAGE    build on IMAGE (e.g. debian:bookworm-slim from a registry)
                  instead of the local base
  --rebuild-base  make the local base again even if its tag exists

The local base, strata-base:$SUITE-<hash of its packages>, is made with
mmdebstrap from $MIRROR
(\$STRATA_DEBIAN_MIRROR) and $SECURITY_MIRROR
(\$STRATA_DEBIAN_SECURITY_MIRROR). Needs root (mmdebstrap), a running
dockerd, and binaries built on Debian 12, whose glibc the base has.
Environment: BUILD, DOCKER (the client, default docker).
Exit codes: 0 built, 1 failure, 2 usage.
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    say "$*"
    exit 1
}

TAG=""
BASE=""
REBUILD_BASE=0
while [ $# -gt 0 ]; do
    case "$1" in
    --tag | --base)
        [ $# -ge 2 ] || {
            say "$1 needs a value"
            exit 2
        }
        if [ "$1" = --tag ]; then TAG=$2; else BASE=$2; fi
        shift 2
        ;;
    --rebuild-base)
        REBUILD_BASE=1
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        say "unknown option '$1' (see --help)"
        exit 2
        ;;
    esac
done

BINARIES=""
for name in $SERVICES; do BINARIES="$BINARIES $BUILD/services/$name/strata-$name"; done
BINARIES="$BINARIES $BUILD/services/ctl/stratactl"
for bin in $BINARIES; do
    [ -x "$bin" ] || die "no $bin: build first (make build), or set BUILD"
done
# The binaries need the glibc they were linked against, or a newer one.
codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null || true)
[ "$codename" = "$SUITE" ] ||
    die "the binaries were built on '${codename:-unknown}', the image is Debian $SUITE: build on Debian 12"
"$DOCKER" version >/dev/null 2>&1 || die "no docker daemon answers ($DOCKER version fails)"
version=$("$BUILD/services/ctl/stratactl" --version | awk '{print $2}')
[ -n "$TAG" ] || TAG="strata:$version"

# The packages holding the libraries the binaries ask for by name (DT_NEEDED);
# apt brings in what those need in turn. One dpkg -S for them all: it reads
# every package's file list each time.
library_paths() {
    for bin in $BINARIES; do
        libs=$(objdump -p "$bin" | awk '$1 == "NEEDED" { print $2 }')
        resolved=$(ldd "$bin")
        for lib in $libs; do
            path=$(echo "$resolved" | awk -v lib="$lib" '$1 == lib && $3 ~ /^\// { print $3; exit }')
            [ -n "$path" ] || die "$bin: ldd does not find $lib"
            echo "$path"
        done
    done
}
PATHS=$(library_paths | sort -u)
# shellcheck disable=SC2086 # a list of paths without blanks
OWNERS=$(dpkg -S $PATHS 2>/dev/null) || true
PACKAGES=""
for path in $PATHS; do
    # dpkg knows a library by the path its package installed it at, which on
    # a merged /usr may be ldd's or the real one.
    pkg=$(echo "$OWNERS" | awk -v p="$path" -v r="$(readlink -f "$path")" '
        { n = index($0, ": "); file = substr($0, n + 2) }
        file == p || file == r { print substr($0, 1, n - 1); exit }')
    [ -n "$pkg" ] || pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null) ||
        die "$path belongs to no Debian package"
    PACKAGES="$PACKAGES ${pkg%%:*}"
done
PACKAGES=$(echo "$PACKAGES" | tr ' ' '\n' | sed '/^$/d' | sort -u | tr '\n' ' ')
PACKAGES=${PACKAGES% }
[ -n "$PACKAGES" ] || die "found no runtime packages for the binaries"
say "runtime packages: $PACKAGES"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/strata-image-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if [ -z "$BASE" ]; then
    # passwd for the Dockerfile's useradd; minbase does not have it.
    base_packages="passwd $PACKAGES"
    hash=$(printf '%s %s %s\n' "$SUITE" "$MIRROR" "$base_packages" | sha256sum | cut -c1-12)
    BASE="strata-base:$SUITE-$hash"
    if [ "$REBUILD_BASE" = 0 ] && "$DOCKER" image inspect "$BASE" >/dev/null 2>&1; then
        say "reusing the base $BASE"
    else
        command -v mmdebstrap >/dev/null || die "no mmdebstrap (apt-get install mmdebstrap)"
        [ "$(id -u)" -eq 0 ] || die "mmdebstrap's root mode needs root"
        say "making the base $BASE with mmdebstrap (a few minutes)"
        # No documentation, manual pages or translations: a server image reads
        # none of them. mmdebstrap leaves out apt's package lists and caches
        # (the Dockerfile runs apt only when the base lacks a package).
        mmdebstrap --variant=minbase --include="$(echo "$base_packages" | tr ' ' ',')" \
            --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --dpkgopt='path-include=/usr/share/locale/locale.alias' \
            --dpkgopt='path-exclude=/usr/share/doc/*' \
            --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            --dpkgopt='path-exclude=/usr/share/info/*' \
            "$SUITE" "$tmp/base.tar" \
            "deb $MIRROR $SUITE main" \
            "deb $MIRROR $SUITE-updates main" \
            "deb $SECURITY_MIRROR $SUITE-security main" >"$tmp/mmdebstrap.log" 2>&1 || {
            tail -n 30 "$tmp/mmdebstrap.log" >&2
            die "mmdebstrap failed"
        }
        "$DOCKER" import --change 'CMD ["/bin/bash"]' "$tmp/base.tar" "$BASE" >/dev/null ||
            die "docker import of the base failed"
        rm -f "$tmp/base.tar"
    fi
    # The base has every package, so the build's RUN needs no network (and
    # works on a daemon without a default bridge).
    set -- --network none
else
    set --
fi

# The context: the Dockerfile and the binaries without their debug
# information (build/ keeps it for gdb).
mkdir "$tmp/bin"
cp "$HERE/Dockerfile" "$tmp/Dockerfile"
for bin in $BINARIES; do
    strip --strip-debug -o "$tmp/bin/$(basename "$bin")" "$bin"
done
"$DOCKER" build "$@" --build-arg BASE="$BASE" --build-arg RUNTIME_PACKAGES="$PACKAGES" \
    --label org.opencontainers.image.version="$version" \
    --label org.opencontainers.image.revision="$(git -C "$SRC" rev-parse HEAD 2>/dev/null || echo unknown)" \
    -t "$TAG" "$tmp" >"$tmp/build.log" 2>&1 || {
    tail -n 30 "$tmp/build.log" >&2
    die "docker build failed"
}
size=$("$DOCKER" image inspect -f '{{.Size}}' "$TAG")
base_size=$("$DOCKER" image inspect -f '{{.Size}}' "$BASE" 2>/dev/null || echo 0)
echo "built $TAG on $BASE: $((size / 1048576)) MiB (the base $((base_size / 1048576)) MiB)"
