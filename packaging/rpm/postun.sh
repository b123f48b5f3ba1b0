# %postun (Fedora's %systemd_postun_with_restart): $1 is 0 on erase, 1 or more on upgrade.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        # The new binary and unit are in place: restart the service if it was running.
        systemctl try-restart ringwarden.service >/dev/null 2>&1 || :
    fi
fi
if [ "$1" -eq 0 ]; then
    # The package cannot own its directories (cargo-generate-rpm): remove them when empty
    # (a changed configuration stays, saved as ringwarden.toml.rpmsave).
    rmdir /etc/ringwarden /usr/share/ringwarden /usr/share/doc/ringwarden/docs \
        /usr/share/doc/ringwarden 2>/dev/null || :
fi
