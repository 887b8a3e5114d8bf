#!/usr/bin/env bash
# Windows packages of the agent, built on Linux: a zip (the exe, a sample agent.ini, the
# operator page) and an MSI made with Debian's wixl (ServiceInstall: automatic start).
# Usage: packaging/windows/build-zip.sh [--debug]   (default: a release build)
# Output: target/packages/windows/plesk-reseller-agent-VERSION-windows-x64.{zip,msi}
#
# wixl silently drops Permanent and NeverOverwrite; the MSI's Config component is patched
# with msibuild afterwards (256 64-bit + 128 never overwrite + 16 permanent = 400), so an
# edited agent.ini survives uninstall and is not replaced by an upgrade.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=x86_64-pc-windows-gnu
profile=release
[ "${1:-}" = --debug ] && profile=debug
if [ "$profile" = release ]; then
    cargo build --target "$target" --release -p plesk-reseller-agent --bin plesk-reseller-agent
else
    cargo build --target "$target" -p plesk-reseller-agent --bin plesk-reseller-agent
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
out=${CARGO_TARGET_DIR:-target}/packages/windows
stage=$out/stage
rm -rf "$stage"
mkdir -p "$stage"
cp "${CARGO_TARGET_DIR:-target}/$target/$profile/plesk-reseller-agent.exe" "$stage/"
cp packaging/windows/agent.ini packaging/windows/agent.wxs "$stage/"
cp docs/windows.md "$stage/README-windows.md"
name=plesk-reseller-agent-$version-windows-x64
rm -f "$out/$name.zip"
(cd "$stage" && zip -q -X "../$name.zip" plesk-reseller-agent.exe agent.ini README-windows.md)
echo "zip: $out/$name.zip"
if command -v wixl >/dev/null; then
    (cd "$stage" && wixl -a x64 -D Version="$version" -o "../$name.msi" agent.wxs 2>/dev/null)
    msibuild "$out/$name.msi" -q "UPDATE \`Component\` SET \`Attributes\` = 400 WHERE \`Component\` = 'Config'"
    # Fail when wixl dropped the service or the patch did not take.
    msiinfo export "$out/$name.msi" ServiceInstall | grep -q plesk-reseller-agent
    msiinfo export "$out/$name.msi" Component | grep -q $'^Config\t.*\t400\t'
    echo "msi: $out/$name.msi"
else
    echo "msi: skipped (no wixl; apt-get install wixl msitools)"
fi
