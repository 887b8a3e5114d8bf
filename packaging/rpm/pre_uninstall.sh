# %preun of plesk-reseller-agent. $1: 0 = erase, 1 or more = upgrade (then nothing happens:
# the service keeps running and the new package's %post restarts it).
UNIT=plesk-reseller-agent.service
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable "$UNIT" >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ]; then
        # Blocks until a running license job has finished or timed out (TimeoutStopSec).
        systemctl stop "$UNIT" >/dev/null 2>&1 || :
    fi
fi
exit 0
