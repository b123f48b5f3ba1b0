# %post (Fedora's %systemd_post): $1 is 1 on first install, 2 or more on upgrade.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
    # The distribution's preset policy decides whether a new service is enabled
    # (Fedora: disabled; `systemctl enable --now ringwarden` starts it).
    systemctl --no-reload preset ringwarden.service >/dev/null 2>&1 || :
fi
