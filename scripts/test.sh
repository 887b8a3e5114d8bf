#!/usr/bin/env bash
# Runs the whole test suite. The panel.ini tests use PHP's own INI parser (Debian's
# php-cli, the reader Plesk uses) as an oracle; it is installed here when missing, and so are
# Debian's postgresql and chromium for the central's tests.
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
# The central's tests run on SQLite and on PostgreSQL: they start a throw-away cluster from
# Debian's server binaries (initdb + pg_ctl in a temp dir); with CI=true they must be there.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing postgresql (the central's second database)..." >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
        echo "PostgreSQL is missing: the central's PostgreSQL tests will be skipped" >&2
    fi
fi
# The fleet page's test loads each page in Debian's headless Chromium; with CI=true it must be there.
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing chromium (the fleet page's browser test)..." >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "Chromium is missing: the fleet page's browser test will be skipped" >&2
    fi
fi
exec cargo test "$@"
