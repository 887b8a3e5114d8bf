#!/usr/bin/env bash
# Runs the whole test suite. The panel.ini tests use PHP's own INI parser (Debian's
# php-cli, the reader Plesk uses) as an oracle; the central's tests start throw-away
# PostgreSQL clusters (initdb + pg_ctl in a temp dir) and drive headless Chromium for the
# fleet page; the WHMCS module's tests run PHPUnit. Each is installed here from Debian's
# packages when missing; the OpenAPI document's validator and the webhook tests' signature
# verifier (standardwebhooks) come from PyPI. With CI=true the
# tests that need them refuse to skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# need PACKAGE WHY TEST...: installs PACKAGE when the command TEST... fails.
updated=
need() {
    local package=$1 why=$2
    shift 2
    "$@" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing $package ($why)..." >&2
        [ -n "$updated" ] || apt-get update -qq
        updated=1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
    else
        echo "$package is missing ($why): install it; the tests that need it skip or fail" >&2
    fi
}
need php-cli "the panel.ini oracle" command -v php
need phpunit "the WHMCS module's tests (crates/central/tests/whmcs.rs)" command -v phpunit
need postgresql "the central's second database" sh -c 'ls /usr/lib/postgresql/*/bin/initdb'
need chromium "the fleet page's browser test" test -x /usr/bin/chromium
need python3-pip "the PyPI test tools below" python3 -m pip --version
# The OpenAPI document's validator (crates/central/tests/openapi.rs): from PyPI, Debian has no
# package of it. Pinned; pip refuses a system Python without --break-system-packages.
if ! python3 -m openapi_spec_validator --version >/dev/null 2>&1; then
    echo "installing openapi-spec-validator (the OpenAPI document's validator)..." >&2
    python3 -m pip install -q openapi-spec-validator==0.9.0 >/dev/null 2>&1 ||
        python3 -m pip install -q --break-system-packages openapi-spec-validator==0.9.0 >/dev/null 2>&1 ||
        echo "openapi-spec-validator is missing (pip install failed): the OpenAPI validity test skips or fails" >&2
fi
# The Standard Webhooks reference verifier from PyPI checks the central's signatures.
if ! python3 -c 'import standardwebhooks' >/dev/null 2>&1; then
    echo "installing standardwebhooks from PyPI (the webhook tests' verifier)..." >&2
    # Debian's python3 refuses a plain pip install outside a venv (PEP 668).
    python3 -m pip install -q --break-system-packages standardwebhooks >/dev/null 2>&1 ||
        python3 -m pip install -q standardwebhooks >/dev/null 2>&1 ||
        echo "cannot install standardwebhooks: the webhook tests skip that check" >&2
fi
if ! command -v php >/dev/null 2>&1 && [ "${SKIP_PHP_ORACLE:-}" != 1 ]; then
    echo "php is missing: install php-cli, or set SKIP_PHP_ORACLE=1 to skip the PHP oracle test" >&2
    exit 1
fi
exec cargo test "$@"
