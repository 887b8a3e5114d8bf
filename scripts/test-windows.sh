#!/usr/bin/env bash
# The agent's Windows build and tests under Wine (issue 24), for CI on a fresh Debian 12
# machine (root, rustup on PATH). Installs what it needs, builds the agent crate and its
# tests for x86_64-pc-windows-gnu, runs them under Wine in a scratch prefix. Every step has a
# timeout; any failure exits non-zero. Only the agent and plesk-sysutil: no central, no
# release build. CARGO_TARGET_DIR and WINEPREFIX may point elsewhere (a cold run).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=x86_64-pc-windows-gnu

step() { # step TITLE SECONDS COMMAND...
    local title=$1 secs=$2 t0=$SECONDS
    shift 2
    echo "== windows: $title"
    if ! timeout --kill-after=15 "$secs" "$@"; then
        echo "== windows: FAILED: $title (after $((SECONDS - t0)) s)" >&2
        exit 1
    fi
    echo "== ($((SECONDS - t0)) s)"
}

install_deps() {
    # 64-bit only: Debian's `wine` (8.0) is a wrapper that runs wine64 for 64-bit programs,
    # so no `dpkg --add-architecture i386` and no wine32. The win32 thread model of mingw is enough.
    local need=()
    command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64-win32)
    command -v wine >/dev/null || need+=(wine)
    command -v wine64 >/dev/null || [ -x /usr/lib/wine/wine64 ] || need+=(wine64)
    command -v wixl >/dev/null || need+=(wixl msitools)
    command -v zip >/dev/null || need+=(zip)
    if [ ${#need[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    rustup target add "$target" >/dev/null
}

export target
export -f install_deps # `timeout` runs programs, not functions
step "install mingw-w64, wine, wixl and the rustup target" 900 bash -c install_deps
export WINEPREFIX=${WINEPREFIX:-$root/target/wine-prefix} WINEDEBUG=-all
step "wine prefix with the bcryptprimitives stand-in" 400 scripts/windows/setup-wine.sh "$WINEPREFIX"

export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$root/scripts/windows/wine-runner.sh"
# Tests each get their own timeout through the runner; the cargo step has its own.
export WINE_TEST_TIMEOUT=300
step "build the agent's Windows tests" 2400 \
    cargo test --target "$target" -p plesk-sysutil -p plesk-reseller-agent --no-run
step "run them under Wine" 900 \
    cargo test --target "$target" -p plesk-sysutil -p plesk-reseller-agent
step "zip and MSI" 600 packaging/windows/build-zip.sh --debug
timeout 30 wineserver -k 2>/dev/null || true
echo "== windows: total $SECONDS s"
echo "== windows: all passed"
