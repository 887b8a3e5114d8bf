# %postun of plesk-reseller-agent. $1: 0 = erase, 1 or more = upgrade.
# rpm has no purge: an erase keeps an edited agent.ini as agent.ini.rpmsave, and this script
# keeps the token files and /var/lib/plesk-reseller-agent (journal, panel.ini backups); an
# edited catalog-proxy.ini is kept as catalog-proxy.ini.rpmsave.
# Remove them by hand for a clean slate (docs/agent.md, "Logs, upgrade, remove").
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
