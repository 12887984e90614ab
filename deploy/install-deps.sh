#!/bin/sh
# Installs every Debian 12 package Strata needs to build, test and benchmark.
# Idempotent: when everything is present it prints nothing and touches nothing.
set -eu

PACKAGES="build-essential cmake pkg-config git
libzmq3-dev libczmq-dev libmsgpack-dev libprotobuf-c-dev protobuf-c-compiler
check libsubunit-dev libisal-dev libxxhash-dev liblz4-dev
libmicrohttpd-dev libcjson-dev libsystemd-dev systemd
librocksdb-dev libleveldb-dev redis-server libhiredis-dev
clang libclang-rt-14-dev
iproute2 nftables faketime prometheus curl jq
docker.io docker-compose mmdebstrap"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages:$missing (run as root to install them)" >&2
    exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# A dockerd that manages iptables sets the FORWARD policy to DROP, which cuts
# the bridge the cluster tests put their network namespaces on; the Docker
# installed here (and started at once where systemd runs) leaves the host's
# firewall alone. Published ports still work, through docker-proxy.
case " $missing " in *" docker.io "*)
    if [ ! -e /etc/docker/daemon.json ]; then
        mkdir -p /etc/docker
        printf '{\n  "iptables": false,\n  "ip-forward": false,\n  "ip-masq": false\n}\n' \
            >/etc/docker/daemon.json
        echo "install-deps: wrote /etc/docker/daemon.json: Docker without iptables rules" >&2
    fi
    ;;
esac
# prometheus is here for promtool alone (test_observability checks every
# /metrics page with it); Debian 12 ships promtool in no smaller package.
# Masked before the install so its server never starts where systemd runs.
case " $missing " in *" prometheus "*)
    mkdir -p /etc/systemd/system
    [ -e /etc/systemd/system/prometheus.service ] ||
        ln -s /dev/null /etc/systemd/system/prometheus.service
    ;;
esac
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
