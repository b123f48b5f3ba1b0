#!/usr/bin/env bash
# Builds a Debian guest for tests/vm/run into DIR: rootfs.img (ext4, made with mkfs.ext4
# -d, no loop mount), vmlinuz and initrd.img (the release's own cloud kernel, with BTF:
# 5.10 in Debian 11, 6.1 in 12, 6.12 in 13), taken from the root file system for qemu's
# -kernel/-initrd.
# tests/vm/run keys its cache on the release and a hash of this file: any change here
# builds new images.
# Usage: image.sh DIR [SUITE]   (root; needs debootstrap, e2fsprogs and the Debian mirror;
#                                SUITE: bullseye, bookworm (the default) or trixie)
set -euo pipefail

out=${1:?usage: image.sh DIR [SUITE]}
suite=${2:-bookworm}
mirror=http://deb.debian.org/debian
# systemd + journald, apt (in minbase), iproute2, curl for /metrics, libelf1 and zlib1g so the
# package's dependencies are already there (the guest has no network), python3 to read JSON
# in the checks, procps for ps/pgrep when something has to be diagnosed, man-db so the check
# that `man ringwarden` works after the install has a man to run, systemd-journal-remote for
# the forwarding check (journal-upload to journal-remote).
packages=systemd,systemd-sysv,udev,dbus,kmod,initramfs-tools,linux-image-cloud-amd64,iproute2,curl,libelf1,zlib1g,python3,procps,man-db,systemd-journal-remote
case $suite in
bullseye | bookworm) ;;
# The 64-bit time_t transition renamed libelf1 (its libelf1t64 provides libelf1, which is
# what the package depends on, but debootstrap wants the real name).
trixie) packages=${packages/libelf1/libelf1t64} ;;
*)
  echo "image.sh: unknown suite $suite (bullseye, bookworm or trixie)" >&2
  exit 2
  ;;
esac

root="$out/rootfs"
cleanup() {
  # debootstrap mounts proc/sys in the target; never leave them behind (mkfs -d would copy
  # them, rm -rf would walk into them).
  local m
  for m in $(findmnt -rno TARGET | grep -F "$root/" | sort -r); do umount -l "$m" || true; done
}
trap cleanup EXIT

rm -rf "$root"
mkdir -p "$root"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" \
  >"$out/debootstrap.log" 2>&1 || {
  tail -n 30 "$out/debootstrap.log" >&2
  echo "image.sh: debootstrap failed (full log: $out/debootstrap.log)" >&2
  exit 1
}
cleanup

# Some minimal images tell dpkg not to unpack man pages (path-exclude in dpkg.cfg.d); the man
# check needs them unpacked, so such a rule is an error here, not something to work around.
if grep -rqs 'path-exclude.*/usr/share/man' "$root/etc/dpkg/dpkg.cfg.d/"; then
  echo "image.sh: $root/etc/dpkg/dpkg.cfg.d/ excludes /usr/share/man" >&2
  exit 1
fi

kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n 1)
release=${kernel##*/vmlinuz-}
if [ ! -e "$root/boot/initrd.img-$release" ]; then
  chroot "$root" update-initramfs -c -k "$release" >>"$out/debootstrap.log" 2>&1
fi

# A fixed machine id: an empty one means "first boot", and systemd-firstboot may then wait
# for answers on the console.
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$root/etc/machine-id"
echo rwvm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 rwvm\n' >"$root/etc/hosts"
echo '/dev/vda / ext4 rw 0 0' >"$root/etc/fstab"
# The daily apt jobs could hold the dpkg lock while the test installs the package.
ln -sf /dev/null "$root/etc/systemd/system/apt-daily.timer"
ln -sf /dev/null "$root/etc/systemd/system/apt-daily-upgrade.timer"

# The payload runner: once the system is up, mount the second disk, run its in/run with
# out/ as the place for results, unmount and power off. Type=exec: a oneshot would keep the
# boot "starting", so `is-system-running --wait` would never return.
cat >"$root/usr/local/sbin/rwvm-payload" <<'EOF'
#!/bin/sh
exec >/dev/ttyS1 2>&1
echo "rwvm: waiting for the system to be up"
timeout 300 systemctl is-system-running --wait
echo "rwvm: system is $(systemctl is-system-running), uptime $(cut -d' ' -f1 /proc/uptime) s"
mkdir -p /io
if mount /dev/vdb /io; then
  mkdir -p /io/out
  cut -d' ' -f1 /proc/uptime >/io/out/boot-seconds
  if [ -x /io/in/run ]; then
    /io/in/run /io/in /io/out
    echo "rwvm: payload exited with $?"
  else
    echo "rwvm: no /io/in/run on the payload disk"
  fi
  sync
  umount /io
else
  echo "rwvm: cannot mount /dev/vdb"
fi
echo "rwvm: powering off"
systemctl poweroff --force
EOF
chmod 755 "$root/usr/local/sbin/rwvm-payload"
cat >"$root/etc/systemd/system/rwvm-payload.service" <<'EOF'
[Unit]
Description=ringwarden system test payload
After=multi-user.target

[Service]
Type=exec
ExecStart=/usr/local/sbin/rwvm-payload

[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/rwvm-payload.service \
  "$root/etc/systemd/system/multi-user.target.wants/rwvm-payload.service"

chroot "$root" apt-get clean
cp "$kernel" "$out/vmlinuz"
cp "$root/boot/initrd.img-$release" "$out/initrd.img"
echo "$release" >"$out/kernel-release"
[ -e "$root/boot/config-$release" ] && grep -q '^CONFIG_DEBUG_INFO_BTF=y' "$root/boot/config-$release" || {
  echo "image.sh: kernel $release has no CONFIG_DEBUG_INFO_BTF=y" >&2
  exit 1
}

truncate -s 2G "$out/rootfs.img"
mkfs.ext4 -q -F -L rwvm-root -d "$root" "$out/rootfs.img"
rm -rf "$root"
