# %post of plesk-reseller-central ($1: 1 = install, 2 = upgrade). Creates the system user;
# the service is not enabled on install (configure it first, then `systemctl enable --now`);
# an upgrade try-restarts a running central.
if ! getent group plesk-reseller-central >/dev/null; then
    groupadd --system plesk-reseller-central
fi
if ! getent passwd plesk-reseller-central >/dev/null; then
    useradd --system --gid plesk-reseller-central --no-create-home \
        --home-dir /var/lib/plesk-reseller-central --shell /sbin/nologin \
        --comment "Plesk reseller central" plesk-reseller-central
fi
chown root:plesk-reseller-central /etc/plesk-reseller-central /etc/plesk-reseller-central/central.ini
chmod 0750 /etc/plesk-reseller-central
chmod 0640 /etc/plesk-reseller-central/central.ini
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 2 ]; then
        systemctl try-restart plesk-reseller-central.service >/dev/null 2>&1 || :
    fi
fi
