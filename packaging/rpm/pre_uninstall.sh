# %preun of plesk-reseller-agent. $1: 0 = erase, 1 or more = upgrade (then nothing happens:
# the service keeps running and the new package's %post restarts it).
# The catalog proxy is disabled and stopped the same way (a no-op when it is neither).
UNIT=plesk-reseller-agent.service
PROXY=plesk-catalog-proxy.service
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable "$UNIT" "$PROXY" >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ]; then
        # Blocks until a running license job has finished or timed out (TimeoutStopSec).
        systemctl stop "$UNIT" "$PROXY" >/dev/null 2>&1 || :
    fi
fi
exit 0
