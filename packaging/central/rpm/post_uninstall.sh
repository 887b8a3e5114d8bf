# %postun of plesk-reseller-central: the unit is gone on erase; tell systemd. The database and
# an edited central.ini (as .rpmsave) are kept; the system user stays.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
