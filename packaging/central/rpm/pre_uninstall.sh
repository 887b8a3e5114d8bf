# %preun of plesk-reseller-central ($1: 0 = erase, 1 = upgrade): only an erase stops and
# disables the service.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now plesk-reseller-central.service >/dev/null 2>&1 || :
fi
