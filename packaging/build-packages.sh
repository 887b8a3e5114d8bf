#!/usr/bin/env bash
# Builds the .deb and the .rpm of plesk-reseller-agent into target/packages/.
#
#   packaging/build-packages.sh [--release N]
#
# --release N   package revision/release (default 1): the .deb becomes VERSION-N, the .rpm
#               VERSION-N. Raise it to rebuild the same program version as an upgrade.
#
# Installs cargo-deb and cargo-generate-rpm (cargo install --locked) when they are missing.
# Honours CARGO_TARGET_DIR for the build; the packages always land in ./target/packages/.
set -euo pipefail

release=1
while [ $# -gt 0 ]; do
    case "$1" in
    --release)
        release="${2:?--release needs a number}"
        shift 2
        ;;
    *)
        echo "build-packages.sh: unknown argument '$1' (only --release N is accepted)" >&2
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

cd "$(dirname "$0")/.."
out=target/packages
gen="$out/gen" # Cargo.toml's package metadata points its man page and completion assets here

for tool in cargo-deb cargo-generate-rpm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "== installing $tool"
        cargo install --locked "$tool"
    fi
done

echo "== building the release binary"
cargo build --locked --release --bin plesk-reseller-agent

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

echo "== building the .deb"
rm -f "$out"/*.deb "$out"/*.rpm
cargo deb --no-build --locked --deb-version "$version-$release" --output "$out/"

echo "== building the .rpm"
cargo generate-rpm --set-metadata "release = \"$release\"" --output "$out/"

echo "== packages"
ls -l "$out"/*.deb "$out"/*.rpm
