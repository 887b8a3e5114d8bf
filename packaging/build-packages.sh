#!/usr/bin/env bash
# Builds the .deb and the .rpm of plesk-reseller-agent and of plesk-reseller-central into
# target/packages/, for amd64 and arm64, with binaries that run on glibc 2.17 and newer.
#
#   packaging/build-packages.sh [--release N] [--arch amd64|arm64|all]
#
# --release N   package revision/release (default 1): the .deb becomes VERSION-N, the .rpm
#               VERSION-N. Raise it to rebuild the same program version as an upgrade.
# --arch A      which packages to build (default all: amd64 and arm64).
#
# Portable binaries: `cargo zigbuild --target <triple>.2.17` links against glibc 2.17's
# symbol versions (zig ships the stubs), so the newest symbol the binary asks for is
# GLIBC_2.17 whatever machine builds it: RHEL/CloudLinux 7 and 8, Debian 10/11, Ubuntu 20.04
# and newer. A dynamic glibc build (not a static musl one) keeps the system's resolver (NSS,
# /etc/nsswitch.conf), and the same allocator and TLS code (rustls/aws-lc) the tests ran.
#
# Installs what it needs when it is missing: the Rust targets (rustup), zig (PyPI's ziglang),
# cargo-zigbuild, cargo-deb and cargo-generate-rpm (cargo install --locked).
# Honours CARGO_TARGET_DIR for the build; the packages always land in ./target/packages/.
set -euo pipefail

release=1
arch=all
while [ $# -gt 0 ]; do
    case "$1" in
    --release)
        release="${2:?--release needs a number}"
        shift 2
        ;;
    --arch)
        arch="${2:?--arch needs amd64, arm64 or all}"
        shift 2
        ;;
    *)
        echo "build-packages.sh: unknown argument '$1' (only --release N and --arch A are accepted)" >&2
        exit 2
        ;;
    esac
done
case "$release" in
'' | *[!0-9]*)
    echo "build-packages.sh: --release must be a whole number, not '$release'" >&2
    exit 2
    ;;
esac
case "$arch" in
amd64) triples=(x86_64-unknown-linux-gnu) ;;
arm64) triples=(aarch64-unknown-linux-gnu) ;;
all) triples=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu) ;;
*)
    echo "build-packages.sh: --arch must be amd64, arm64 or all, not '$arch'" >&2
    exit 2
    ;;
esac

cd "$(dirname "$0")/.."
out=target/packages
# zig's own cache (glibc stubs, compiler-rt) inside the build tree, not in ~/.cache: a clean
# clone builds from nothing, and `cargo clean` clears it too.
export ZIG_GLOBAL_CACHE_DIR="${ZIG_GLOBAL_CACHE_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/zig-cache}"
gen="$out/gen" # Cargo.toml's package metadata points its man page and completion assets here
glibc_floor=2.17
# Pinned so that a fresh CI machine builds with the tools this was tested with.
zig_version=0.17.1
zigbuild_version=0.24.1

# ------------------------------------------------------------ tools
install_tools() {
    if [ ! -x /usr/lib/rpm/find-requires ]; then
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "== installing rpm (its find-requires lists the .rpm's library dependencies)"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rpm >/dev/null
        else
            echo "build-packages.sh: needs rpm's /usr/lib/rpm/find-requires: install the rpm package" >&2
            exit 1
        fi
    fi
    for tool in cargo-deb cargo-generate-rpm; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "== installing $tool"
            cargo install --locked "$tool"
        fi
    done
    if ! command -v cargo-zigbuild >/dev/null 2>&1; then
        echo "== installing cargo-zigbuild $zigbuild_version"
        cargo install --locked --version "$zigbuild_version" cargo-zigbuild
    fi
    # cargo-zigbuild finds zig on PATH or as `python3 -m ziglang`.
    if ! command -v zig >/dev/null 2>&1 && ! python3 -m ziglang version >/dev/null 2>&1; then
        echo "== installing zig (PyPI ziglang $zig_version)"
        python3 -m pip install --quiet "ziglang==$zig_version"
    fi
    local t
    for t in "${triples[@]}"; do
        if ! rustup target list --installed | grep -x "$t" >/dev/null; then
            echo "== installing the Rust target $t"
            if ! rustup target add "$t"; then
                echo "build-packages.sh: cannot install the Rust target $t with rustup; build with --arch amd64" >&2
                exit 1
            fi
        fi
    done
}

# ------------------------------------------------------------ steps, one product each
# portable_build BIN TRIPLE: release binary BIN for TRIPLE, newest glibc symbol $glibc_floor.
# It lands where `cargo build --target TRIPLE` puts it (target/TRIPLE/release/BIN), which is
# where cargo-deb and cargo-generate-rpm look when given --target.
portable_build() {
    local bin=$1 triple=$2
    echo "== building $bin for $triple (glibc $glibc_floor)"
    cargo zigbuild --locked --release --target "$triple.$glibc_floor" -p "$bin" --bin "$bin"
}

# package BIN TRIPLE [DIR]: the .deb and the .rpm of the cargo package BIN whose Cargo.toml is
# in DIR (default: the top). Its metadata lists the assets with target/release/ paths;
# --target points them at target/TRIPLE/release/.
package() {
    local bin=$1 triple=$2 dir=${3:-.} rpm_arch
    case "$triple" in
    x86_64-*) rpm_arch=x86_64 ;;
    aarch64-*) rpm_arch=aarch64 ;;
    esac
    echo "== building the .deb of $bin for $triple"
    cargo deb --no-build --locked -p "$bin" --target "$triple" \
        --deb-version "$version-$release" --output "$out/"
    echo "== building the .rpm of $bin for $triple"
    # rpm's own find-requires (elfdeps) reads the ELF of any architecture; the builtin one
    # runs ldd and finds nothing in a foreign binary. An xz payload: rpm 4.11 (EL7) cannot
    # read the default zstd.
    cargo generate-rpm -p "$dir" --target "$triple" --arch "$rpm_arch" \
        --auto-req find-requires --payload-compress xz \
        --set-metadata "release = \"$release\"" --output "$out/"
}

install_tools

echo "== generating the man page and shell completions from the clap definitions"
rm -rf "$gen"
cargo run --locked --quiet --example gen-docs -- "$gen"
gzip -9 -n -f "$gen/plesk-reseller-agent.1"

version=$(cargo metadata --no-deps --format-version 1 --locked |
    sed -n 's/.*"name":"plesk-reseller-agent","version":"\([^"]*\)".*/\1/p')
if [ -z "$version" ]; then
    echo "build-packages.sh: cannot read the package version from cargo metadata" >&2
    exit 1
fi

rm -f "$out"/*.deb "$out"/*.rpm
for triple in "${triples[@]}"; do
    portable_build plesk-reseller-agent "$triple"
    package plesk-reseller-agent "$triple"
    # The store's server: its own package (never installed on Plesk servers), same floor.
    portable_build plesk-reseller-central "$triple"
    package plesk-reseller-central "$triple" crates/central
done

echo "== packages"
ls -l "$out"/*.deb "$out"/*.rpm
