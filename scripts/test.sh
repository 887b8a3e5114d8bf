#!/usr/bin/env bash
# Runs the whole test suite. The panel.ini tests use PHP's own INI parser (Debian's
# php-cli, the reader Plesk uses) as an oracle; it is installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v php >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing php-cli (the panel.ini oracle)..." >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq php-cli >/dev/null
    else
        echo "php is missing: install php-cli, or set SKIP_PHP_ORACLE=1 to skip the PHP oracle test" >&2
        [ "${SKIP_PHP_ORACLE:-}" = 1 ] || exit 1
    fi
fi
exec cargo test "$@"
