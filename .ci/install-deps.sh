#!/usr/bin/env bash
# Installs what building and testing the hypervisor needs on a Debian 12 machine (run as root):
# QEMU 10 from bookworm-backports (7.2's MTE emulation is broken), arm64 package access for
# the Linux guest images (kernel, busybox) and device trees, and the Rust targets pinned by
# rust-toolchain.toml.
# The backports mirror is the one apt already uses for the main Debian suite.
set -euo pipefail

main_uri() {
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
            /etc/apt/sources.list.d/debian.sources
    elif [ -f /etc/apt/sources.list ]; then
        awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; exit } }' \
            /etc/apt/sources.list
    fi
}

need_qemu() {
    ! command -v qemu-system-aarch64 >/dev/null 2>&1 ||
        ! qemu-system-aarch64 --version | grep -qE 'version (9\.[1-9]|[1-9][0-9])\.'
}

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: must run as root" >&2
    exit 1
fi

uri="$(main_uri)"
if [ -z "$uri" ]; then
    echo "install-deps: cannot find the Debian mirror in apt's sources" >&2
    exit 1
fi

if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat > /etc/apt/sources.list.d/backports.sources <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
if need_qemu; then
    apt-get install -y -q -t bookworm-backports qemu-system-arm
fi
apt-get install -y -q device-tree-compiler cpio >/dev/null
qemu-system-aarch64 --version | head -1

if [ -f rust-toolchain.toml ]; then
    rustup show active-toolchain >/dev/null
fi
