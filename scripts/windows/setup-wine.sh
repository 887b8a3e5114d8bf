#!/usr/bin/env bash
# Makes the scratch Wine prefix the Windows tests run in: `wineboot -i` (no X needed), then the
# bcryptprimitives.dll stand-in (Wine < 9 lacks it; Rust >= 1.78 binaries need it).
# Usage: scripts/windows/setup-wine.sh [PREFIX]   (default: target/wine-prefix)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export WINEPREFIX=${1:-${WINEPREFIX:-$root/target/wine-prefix}}
export WINEDEBUG=-all WINEARCH=win64
mkdir -p "$(dirname "$WINEPREFIX")"
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    # wineboot prints harmless complaints about the missing display and wine32.
    timeout 300 wineboot -i >/dev/null 2>&1 || true
    timeout 120 wineserver -w || true
fi
[ -f "$WINEPREFIX/system.reg" ] || { echo "setup-wine: wineboot did not create $WINEPREFIX" >&2; exit 1; }
sys32="$WINEPREFIX/drive_c/windows/system32"
if [ ! -e "$sys32/bcryptprimitives.dll" ] && ! ls /usr/lib/*/wine/x86_64-windows/bcryptprimitives.dll >/dev/null 2>&1; then
    x86_64-w64-mingw32-gcc -O2 -shared -o "$sys32/bcryptprimitives.dll" "$here/bcryptprimitives.c" -lbcrypt
fi
echo "$WINEPREFIX"
