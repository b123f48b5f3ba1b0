# %preun (Fedora's %systemd_preun): $1 is 0 on erase, 1 or more on upgrade.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now ringwarden.service >/dev/null 2>&1 || :
fi
