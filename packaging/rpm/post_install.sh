# %post of plesk-reseller-agent. $1: 1 = first install, 2 or more = upgrade.
# Install: enable and start. Upgrade: reload units and try-restart (a stopped service stays
# stopped; an admin's disable is kept). Without systemd as PID 1 only the enable symlink is made.
# plesk-catalog-proxy.service is shipped but never enabled or started here; an upgrade
# try-restarts it (a no-op unless it is running). An enroll.key (or token) written before the
# install is never touched: the agent exchanges the key itself (docs/enrollment.md).
UNIT=plesk-reseller-agent.service
PROXY=plesk-catalog-proxy.service
if [ "$1" -eq 1 ]; then
    # Secrets live next to agent.ini; keep the directory closed to other users.
    chmod 0750 /etc/plesk-reseller-agent 2>/dev/null || :
    # `enable` (not `preset`): RHEL-family presets disable unknown services, and this one
    # is installed to run.
    systemctl enable "$UNIT" >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || :
        systemctl start "$UNIT" >/dev/null 2>&1 || :
    fi
else
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || :
        systemctl try-restart "$UNIT" >/dev/null 2>&1 || :
        systemctl try-restart "$PROXY" >/dev/null 2>&1 || :
    fi
fi
exit 0
