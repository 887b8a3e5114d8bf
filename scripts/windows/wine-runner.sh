#!/usr/bin/env bash
# CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER: runs a Windows test binary under Wine in the
# scratch prefix (made by setup-wine.sh on first use), with a timeout so a hung test cannot
# stall CI. WINE_TEST_TIMEOUT (seconds, default 600) sets it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export WINEPREFIX=${WINEPREFIX:-$root/target/wine-prefix}
export WINEDEBUG=${WINEDEBUG:--all}
[ -f "$WINEPREFIX/system.reg" ] || "$here/setup-wine.sh" "$WINEPREFIX" >/dev/null
exec timeout --kill-after=10 "${WINE_TEST_TIMEOUT:-600}" wine "$@"
