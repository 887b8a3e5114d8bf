#!/usr/bin/env bash
# `php -l` on every PHP file of the WHMCS module (integrations/whmcs) for the oldest and the
# newest PHP it claims, 7.4 and 8.3, besides the machine's own php. Debian has one php, so
# 7.4 and 8.3 come from the npm registry as PHP.wasm builds (@php-wasm/cli, WordPress
# Playground's), run by the machine's Node.js; cached in target/php-wasm. tests/smoke.php then
# runs the module's pure parts on both.
set -euo pipefail
cd "$(dirname "$0")/.."

PHPWASM_VERSION=3.1.56
cache=target/php-wasm
cli=$cache/node_modules/@php-wasm/cli/php-wasm.js
if [ ! -e "$cli" ] || [ "$(cat "$cache/version" 2>/dev/null)" != "$PHPWASM_VERSION" ]; then
    command -v npm >/dev/null || { echo "npm is missing: install nodejs and npm to lint PHP 7.4 and 8.3" >&2; exit 1; }
    echo "installing @php-wasm/cli $PHPWASM_VERSION (PHP 7.4 and 8.3 for php -l)..." >&2
    mkdir -p "$cache"
    npm install --prefix "$cache" --no-audit --no-fund --loglevel=error \
        "@php-wasm/cli@$PHPWASM_VERSION" "@php-wasm/node-7-4@$PHPWASM_VERSION" \
        "@php-wasm/node-8-3@$PHPWASM_VERSION" >&2
    echo "$PHPWASM_VERSION" >"$cache/version"
fi

mapfile -t files < <(find integrations/whmcs -name '*.php' -not -path '*/vendor/*' | sort)
failed=0
lint() { # lint LABEL COMMAND... (the file is appended)
    local label=$1 f out
    shift
    for f in "${files[@]}"; do
        if ! out=$("$@" "$f" 2>&1) || ! grep -q '^No syntax errors detected' <<<"$out"; then
            echo "PHP $label: $f: $(grep -v '^$' <<<"$out" | head -3)" >&2
            failed=$((failed + 1))
        fi
    done
}
for v in 7.4 8.3; do
    # The wasm build must really be that version, or the check proves nothing.
    got=$(PHP=$v node "$cli" -r 'echo PHP_MAJOR_VERSION, ".", PHP_MINOR_VERSION;' 2>/dev/null | tail -1)
    [ "$got" = "$v" ] || { echo "PHP.wasm for $v runs PHP $got" >&2; exit 1; }
    lint "$v" env PHP=$v node "$cli" -l
    # And the pure parts run there (the webhook vector, Buy Now, the server URLs), not only parse.
    # PHP.wasm's exit status is 0 even after exit(1): judge by the output.
    out=$(PHP=$v node "$cli" integrations/whmcs/tests/smoke.php 2>&1 || true)
    if ! grep -q "^smoke ok on PHP $v\." <<<"$out"; then
        echo "PHP $v: tests/smoke.php: $out" >&2
        failed=$((failed + 1))
    fi
done
command -v php >/dev/null && lint "$(php -r 'echo PHP_MAJOR_VERSION, ".", PHP_MINOR_VERSION;')" php -l
echo "php -l: ${#files[@]} files on PHP 7.4, 8.3 and the installed php; $failed failed"
[ "$failed" = 0 ]
