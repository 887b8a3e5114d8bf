#!/usr/bin/env bash
# SANDBOX ONLY: runs plesk-reseller-agent's main job on this machine without Plesk and
# without a store. Everything lives under target/sandbox/:
#   - a sandbox panel.ini (a copy of examples/sandbox/panel.ini, shaped like Plesk's sample),
#   - the stand-in `plesk` command from tests/fixtures/plesk-standin (records its calls),
#   - a spool directory standing in for the reseller's store (contract section 6).
# It runs one `sync` pass, then the daemon for a few seconds: a drifted panel.ini is
# repaired and a job dropped into the spool runs at once. Then the same daemon runs against
# a real local plesk-reseller-central (SQLite under target/sandbox/central) instead of the
# spool: a job queued with `jobs add` runs at once and its result shows in `jobs show`.
# Nothing outside target/sandbox is touched.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

step() { printf '\n== %s\n' "$*"; }

# Stop what this script started if a step fails, so no daemon is left running.
pid= apid= cpid=
cleanup() {
    local p
    for p in $pid $apid $cpid; do kill -TERM "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

step "building plesk-reseller-agent and plesk-reseller-central (about 2-3 minutes on a fresh clone, seconds after)"
cargo build
bin="$repo/target/debug/plesk-reseller-agent"
central="$repo/target/debug/plesk-reseller-central"
sb="$repo/target/sandbox"
rm -rf "$sb"
mkdir -p "$sb/plesk" "$sb/conf" "$sb/spool"
cp tests/fixtures/plesk-standin "$sb/plesk/plesk"
cp examples/sandbox/panel.ini "$sb/conf/panel.ini"

cat >"$sb/agent.ini" <<INI
; SANDBOX config, written by examples/sandbox/run.sh
[central]
url = file://$sb/spool
host_id = sandbox-1
poll_interval = 60
[panel]
ini_path = $sb/conf/panel.ini
buy_url = https://local-fallback.example.com
[plesk]
command = $sb/plesk/plesk
timeout = 30
[agent]
state_dir = $sb/state
socket = $sb/run/agent.sock
INI

# What the reseller's store would send: its Buy Now and catalog URLs, and two jobs.
cat >"$sb/spool/instructions.json" <<'JSON'
{
  "panel_ini": { "buy_url": "https://shop.example.com/plesk?ref=sandbox&lang=en",
                 "catalog_url": "http://catalog.example.com:8080" },
  "jobs": [
    { "id": "ord-1001", "type": "install_key", "activation_code": "A00000-K6QK03-KSG046-H6BK67-1GE201" },
    { "id": "ord-1002", "type": "retrieve_keys" }
  ]
}
JSON

step "plesk-reseller-agent check: the config and the environment, one line per check"
"$bin" --config "$sb/agent.ini" check || true

step "plesk-reseller-agent sync (one pass)"
"$bin" --config "$sb/agent.ini" sync

step "panel.ini changes (only the two managed keys)"
diff -u examples/sandbox/panel.ini "$sb/conf/panel.ini" || true

step "results written to the spool (activation code masked)"
for f in "$sb"/spool/results/*.json; do echo "$f:"; cat "$f"; echo; done

step "what the stand-in plesk was asked to run"
cat "$sb/plesk/calls.log"

step "the daemon starts"
"$bin" --config "$sb/agent.ini" run 2>"$sb/daemon.log" &
pid=$!
for _ in $(seq 50); do "$bin" --config "$sb/agent.ini" status >/dev/null 2>&1 && break; sleep 0.1; done
echo "running (pid $pid), panel.ini: $(grep '^buyUrl' "$sb/conf/panel.ini")"

step "drift: someone else edits buyUrl in panel.ini; the daemon puts it back"
drift='buyUrl = "https://someone-else.example.com"'
echo "written by hand:  $drift"
sed -i "s|^buyUrl = .*|$drift|" "$sb/conf/panel.ini"
for _ in $(seq 50); do grep -qxF "$drift" "$sb/conf/panel.ini" || break; sleep 0.1; done
echo "a moment later:   $(grep '^buyUrl' "$sb/conf/panel.ini")"

step "a new job dropped into the spool runs at once"
cat >"$sb/spool/instructions.json.new" <<'JSON'
{ "panel_ini": { "buy_url": "https://shop.example.com/plesk?ref=sandbox&lang=en",
                 "catalog_url": "http://catalog.example.com:8080" },
  "jobs": [ { "id": "ord-1003", "type": "retrieve_keys" } ] }
JSON
mv "$sb/spool/instructions.json.new" "$sb/spool/instructions.json"
for _ in $(seq 50); do [ -e "$sb/spool/results/ord-1003.json" ] && break; sleep 0.1; done
ls "$sb/spool/results/"

step "plesk-reseller-agent status"
"$bin" --config "$sb/agent.ini" status || true

step "SIGTERM: a clean stop, and the daemon's log"
kill -TERM "$pid"
wait "$pid"
pid=
cat "$sb/daemon.log"

step "a real local plesk-reseller-central (SQLite, loopback) instead of the spool"
cs="$sb/central"
mkdir -p "$cs" "$sb/plesk2"
cp tests/fixtures/plesk-standin "$sb/plesk2/plesk"
# The fleet page's listener needs a fixed port (its address is not written anywhere).
uiport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$cs/admin.token"
chmod 600 "$cs/admin.token"
cat >"$cs/central.ini" <<INI
; SANDBOX config, written by examples/sandbox/run.sh
[server]
listen = 127.0.0.1:0
admin_socket = $cs/run/admin.sock
admin_listen = 127.0.0.1:$uiport
admin_token_file = $cs/admin.token
max_wait = 25
[database]
url = sqlite://$cs/db/central.db
[fleet]
buy_url = https://shop.example.com/plesk?ref=central
catalog_url = http://catalog.example.com:8080
INI
ccli() { "$central" --config "$cs/central.ini" "$@"; }
"$central" --config "$cs/central.ini" serve --address-file "$cs/addr" 2>"$cs/central.log" &
cpid=$!
for _ in $(seq 100); do [ -s "$cs/addr" ] && break; sleep 0.1; done
addr=$(cat "$cs/addr")
echo "central listening on $addr"
step "hosts add sandbox-1: the server's token, shown once, goes to the agent's token_file"
# On a real server it goes to /etc/plesk-reseller-agent/token.
ccli hosts add sandbox-1 --json | sed -n 's/.*"token": "\(.*\)".*/\1/p' >"$sb/central-token"
chmod 600 "$sb/central-token"
echo "token written to $sb/central-token (mode 0600)"
sed -e "s|^url = .*|url = http://$addr|" -e "s|^poll_interval = .*|poll_interval = 60\ntoken_file = $sb/central-token\nlong_poll = 25|" \
    -e "s|$sb/plesk/plesk|$sb/plesk2/plesk|" -e "s|$sb/state|$sb/state2|" -e "s|$sb/run/agent.sock|$sb/run/agent2.sock|" \
    "$sb/agent.ini" >"$sb/agent-central.ini"

step "the agent's daemon, now against the central (held long-poll)"
"$bin" --config "$sb/agent-central.ini" run 2>"$sb/daemon-central.log" &
apid=$!
for _ in $(seq 100); do ccli hosts show sandbox-1 --json | grep '"last_seen_at": "' >/dev/null && break; sleep 0.1; done
echo "sandbox-1 is polling"

step "jobs add --host sandbox-1 install-key …: queued, the held poll wakes, the job runs"
job=$(ccli jobs add --host sandbox-1 install-key A00000-K6QK03-KSG046-H6BK67-1GE201 --json | sed -n 's/.*"id": "\(.*\)".*/\1/p')
for _ in $(seq 100); do ccli jobs show "$job" --json | grep '"state": "queued"' >/dev/null || break; sleep 0.1; done
ccli jobs show "$job"

step "hosts list: the fleet as the central sees it"
ccli hosts list

step "panel.ini now carries the central's [fleet] buy_url"
grep '^buyUrl' "$sb/conf/panel.ini"

step "the fleet page (HTTP Basic, password = the admin token)"
page=$(exec 3<>"/dev/tcp/127.0.0.1/$uiport" && printf 'GET /ui HTTP/1.1\r\nHost: sandbox\r\nAuthorization: Basic %s\r\nConnection: close\r\n\r\n' \
    "$(printf 'admin:%s' "$(cat "$cs/admin.token")" | base64 -w0)" >&3 && cat <&3)
echo "$page" | sed -n 1p
echo "$page" | grep -o '<tr data-host="sandbox-1" data-health="[a-z_]*"' || { echo "sandbox-1 is not on the fleet page" >&2; exit 1; }
echo "sandbox-1 is on it"

step "SIGTERM to the agent and the central, and the central's log"
kill -TERM "$apid"; wait "$apid"; apid=
kill -TERM "$cpid"; wait "$cpid"; cpid=
cat "$cs/central.log"

step "done: everything is under $sb"
cat <<NEXT
Try next:
  - the central and its fleet page again:
      $central --config $cs/central.ini serve
      then open http://127.0.0.1:$uiport/ui (any user name; the password is in $cs/admin.token)
  - with it running, its command line:
      $central --config $cs/central.ini hosts show sandbox-1
      $central --config $cs/central.ini jobs list
  - the agent against the spool: edit $sb/conf/panel.ini or $sb/spool/instructions.json, then
      $bin --config $sb/agent.ini sync
      $bin --config $sb/agent.ini status
  - what the stand-in plesk was asked to run: $sb/plesk2/calls.log
  - the docs: docs/agent.md (the agent), docs/central.md (the central),
    docs/store-integration.md (connecting a store), ARCHITECTURE.md (the code)
NEXT
