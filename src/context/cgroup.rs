//! Where a cgroup path puts a process: its systemd unit and slice, and the container it
//! runs in, read from the path alone (no I/O, no lookups).
//!
//! The input is a path as the kernel gives it: a cgroup v2 path, or the path part of a
//! `/proc/PID/cgroup` line (v1 or v2). The layouts recognised are the ones the runtimes
//! really create, with the systemd and the cgroupfs cgroup drivers:
//!
//! | runtime | cgroup (… = any parent) |
//! | --- | --- |
//! | docker | `…/docker-ID.scope`, `…/docker/ID` |
//! | containerd | `…/cri-containerd-ID.scope`, `…/nerdctl-ID.scope`, `…/kubepods/…/podUID/ID` |
//! | cri-o | `…/crio-ID.scope`, `…/kubepods/…/podUID/crio-ID` |
//! | podman | `…/libpod-ID.scope`, `…/libpod_parent/…/libpod-ID`, `…/X.service/libpod-payload-ID` |
//! | lxc | `…/lxc.payload.NAME`, `…/lxc.payload/NAME`, `…/lxc/NAME` |
//! | systemd-nspawn | `…/machine-NAME.scope`, `…/systemd-nspawn@NAME.service`, `…/machine.slice/NAME.scope/payload` |
//!
//! Choices, each because a wrong answer is worse than none:
//! - IDs of docker, containerd, cri-o and podman must be 64 lowercase hex digits, and a bare
//!   ID (cgroupfs) counts only in its runtime's parent (`docker/`, a Kubernetes pod):
//!   anything else is no container, never a guess.
//! - A bare ID under a Kubernetes pod (cgroupfs driver) is containerd's: the runtime is not
//!   in the path, and containerd is the default since dockershim went (Kubernetes 1.24).
//! - Monitors are not their container: podman's conmon (`libpod-conmon-ID.scope`,
//!   `libpod_parent/conmon`, quadlet's `runtime`), cri-o's (`crio-conmon-ID.scope`),
//!   nspawn's `supervisor` and `lxc.monitor.NAME`. They run on the host, outside the
//!   container's namespaces; their unit still names them.
//! - The outermost container wins: a nested cgroup (systemd inside the container, a
//!   runtime inside it, a kind node's pods) still belongs to the container on this host.
//! - Inside a container, unit and slice stop at the container's own cgroup: names below it
//!   are made by whatever runs inside (its `sshd.service` is not this host's), so the unit
//!   is the host's, e.g. `docker-ID.scope`, or none for a cgroupfs container.
//! - Elsewhere the unit is the deepest unit in the path, under `user@UID.service` too
//!   (`…/user@1000.service/app.slice/foo.service` is `foo.service`): a user manager is a
//!   systemd of this host and `systemctl --user` knows that unit. Besides `.service` and
//!   `.scope`, `.socket`, `.mount` and `.swap` count: systemd runs their commands (mount
//!   helpers, ExecStartPre=) in their own cgroups. The slice is the deepest slice above
//!   the unit; the root slice (`-.slice`) is not in paths, so `/init.scope` has none.
//! - `machine-qemu…` and `machine-lxc…` scopes are libvirt's (a VM's emulator, a
//!   libvirt-lxc domain), not nspawn's. systemd-vmspawn VMs use the same scope name as
//!   nspawn and cannot be told apart from the path: they read as systemd-nspawn.
//! - `systemd-nspawn --register=no` (no machined) gets a plain `NAME.scope` from systemd;
//!   such a scope counts only in `machine.slice` and only for its `payload`, the one name
//!   that says nspawn made it (nspawn itself stays in the scope).

/// A container runtime recognised from its cgroup layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    Docker,
    Containerd,
    CriO,
    Podman,
    Lxc,
    SystemdNspawn,
}

impl Runtime {
    /// The runtime's name as the output writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
            Runtime::Lxc => "lxc",
            Runtime::SystemdNspawn => "systemd-nspawn",
        }
    }
}

/// A container a cgroup belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    pub runtime: Runtime,
    /// 64 hex digits (docker, containerd, cri-o, podman); the name for lxc and nspawn.
    pub id: String,
    /// The name when the path has it (lxc, nspawn): the OCI runtimes' names are not in it.
    pub name: Option<String>,
    /// The Kubernetes pod's UID, with dashes, when the container is in a pod's cgroup.
    pub pod_uid: Option<String>,
}

/// What a cgroup path says about the process in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// The systemd unit, as systemd names it (escapes kept): `sshd.service`.
    pub unit: Option<String>,
    /// The deepest slice above the unit; none without a unit.
    pub slice: Option<String>,
    pub container: Option<Container>,
}

/// Unit types whose cgroups hold processes (a slice only holds other cgroups).
const UNIT_SUFFIXES: [&str; 5] = [".service", ".scope", ".socket", ".mount", ".swap"];

/// The unit, slice and container of a cgroup path (see the module doc for the rules).
/// Linear in the path's length; any text is accepted.
pub fn placement(path: &str) -> Placement {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    // Found once, so that the walk stays linear on long paths.
    let kubepods = parts.iter().position(|&p| p == "kubepods");
    let libpod_parent = parts.iter().position(|&p| p == "libpod_parent");
    let found = (0..parts.len())
        .find_map(|i| container_at(&parts, i, kubepods, libpod_parent).map(|c| (i, c)));
    let (host, container) = match found {
        Some((i, c)) => (&parts[..=i], Some(c)),
        None => (&parts[..], None),
    };
    let Some(u) = host.iter().rposition(|p| is_unit(p)) else {
        return Placement {
            container,
            ..Placement::default()
        };
    };
    let slice = host[..u].iter().rev().find(|p| is_slice(p));
    Placement {
        unit: Some(host[u].to_owned()),
        slice: slice.map(|s| (*s).to_owned()),
        container,
    }
}

fn is_unit(part: &str) -> bool {
    UNIT_SUFFIXES
        .iter()
        .any(|s| part.strip_suffix(s).is_some_and(|name| !name.is_empty()))
}

fn is_slice(part: &str) -> bool {
    part.strip_suffix(".slice").is_some_and(|n| !n.is_empty())
}

/// The container whose own cgroup is `parts[i]`, if it is one. `kubepods`/`libpod_parent`:
/// where that component first appears (cgroupfs parents).
fn container_at(
    parts: &[&str],
    i: usize,
    kubepods: Option<usize>,
    libpod_parent: Option<usize>,
) -> Option<Container> {
    let part = parts[i];
    let prev = i.checked_sub(1).map(|j| parts[j]);
    let next = parts.get(i + 1).copied();
    // A pod's cgroup is the container's parent; a cgroupfs one (`podUID`) only counts
    // under a `kubepods` component above it.
    let pod = prev.and_then(|p| pod_uid(p, kubepods.is_some_and(|k| k + 1 < i)));
    let oci = |runtime, id: &str| {
        is_id(id).then(|| Container {
            runtime,
            id: id.to_owned(),
            name: None,
            pod_uid: pod.clone(),
        })
    };

    if let Some(base) = part.strip_suffix(".scope") {
        // Monitors first: their prefixes start like the containers'.
        if base.starts_with("libpod-conmon-") || base.starts_with("crio-conmon-") {
            return None;
        }
        const SCOPES: [(&str, Runtime); 5] = [
            ("docker-", Runtime::Docker),
            ("cri-containerd-", Runtime::Containerd),
            ("nerdctl-", Runtime::Containerd),
            ("crio-", Runtime::CriO),
            ("libpod-", Runtime::Podman),
        ];
        for (prefix, runtime) in SCOPES {
            if let Some(id) = base.strip_prefix(prefix) {
                return oci(runtime, id);
            }
        }
        if let Some(name) = base.strip_prefix("machine-") {
            return nspawn(name, next);
        }
        // `systemd-nspawn --register=no`: nspawn asks systemd for `NAME.scope` in
        // machine.slice (no `machine-` prefix) and stays in it itself; only its `payload`
        // is the container.
        if prev == Some("machine.slice") && next == Some("payload") {
            return nspawn(base, next);
        }
        return None;
    }
    if let Some(base) = part.strip_suffix(".service") {
        // `machinectl start` runs nspawn as this template's instance (--keep-unit).
        return base
            .strip_prefix("systemd-nspawn@")
            .and_then(|name| nspawn(name, next));
    }
    if let Some(name) = part.strip_prefix("lxc.payload.") {
        return lxc(name);
    }
    // Quadlet's default `--cgroups=split`: the payload beside conmon's `runtime`.
    if let Some(id) = part.strip_prefix("libpod-payload-") {
        return oci(Runtime::Podman, id);
    }
    match prev {
        Some("lxc" | "lxc.payload") => return lxc(part),
        Some("docker") => return oci(Runtime::Docker, part),
        _ => {}
    }
    if libpod_parent.is_some_and(|l| l < i)
        && let Some(id) = part.strip_prefix("libpod-")
    {
        return oci(Runtime::Podman, id);
    }
    // The rest are bare IDs, which count only in a pod's cgroup.
    pod.as_ref()?;
    match part.strip_prefix("crio-") {
        Some(id) => oci(Runtime::CriO, id),
        None => oci(Runtime::Containerd, part),
    }
}

/// A container ID of the OCI runtimes: 64 lowercase hex digits, nothing else.
fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(is_lower_hex)
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// The pod UID in a pod's cgroup name: `…kubepods…-podUID.slice` (systemd driver, `-`
/// escaped as `_`) or `podUID` (cgroupfs, `cgroupfs` true when under `kubepods`).
fn pod_uid(part: &str, cgroupfs: bool) -> Option<String> {
    let uid = match part.strip_suffix(".slice") {
        Some(base) if base.contains("kubepods") => base
            .rsplit('-')
            .next()?
            .strip_prefix("pod")?
            .replace('_', "-"),
        Some(_) => return None,
        None if cgroupfs => part.strip_prefix("pod")?.to_owned(),
        None => return None,
    };
    is_pod_uid(&uid).then_some(uid)
}

/// A pod UID: a UUID (8-4-4-4-12 lowercase hex) or, for static pods, the 32 hex digits of
/// the manifest's hash the kubelet uses instead.
fn is_pod_uid(s: &str) -> bool {
    let b = s.as_bytes();
    match b.len() {
        32 => b.iter().all(|&c| is_lower_hex(c)),
        36 => b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => is_lower_hex(c),
        }),
        _ => false,
    }
}

fn lxc(name: &str) -> Option<Container> {
    (!name.is_empty()).then(|| Container {
        runtime: Runtime::Lxc,
        id: name.to_owned(),
        name: Some(name.to_owned()),
        pod_uid: None,
    })
}

/// An nspawn machine from its escaped name; `next`: the component below its unit, where
/// nspawn keeps itself (`supervisor`) apart from the container (`payload`).
fn nspawn(escaped: &str, next: Option<&str>) -> Option<Container> {
    if next == Some("supervisor") {
        return None;
    }
    let name = unescape(escaped)?;
    // Machine names are host names: a control character or a slash is no machine's.
    let valid = !name.is_empty() && !name.chars().any(|c| c.is_control() || c == '/');
    // libvirt registers its domains as `qemu-N-NAME` and `lxc-PID-NAME`.
    if !valid || name.starts_with("qemu-") || name.starts_with("lxc-") {
        return None;
    }
    Some(Container {
        runtime: Runtime::SystemdNspawn,
        id: name.clone(),
        name: Some(name),
        pod_uid: None,
    })
}

/// Undoes systemd's unit name escaping (`\xNN` for a byte, e.g. `\x2d` for `-`). None
/// for a malformed escape or bytes that are not UTF-8: a name we cannot read is not one
/// to report.
fn unescape(s: &str) -> Option<String> {
    if !s.contains('\\') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        if b.get(i + 1) != Some(&b'x') {
            return None;
        }
        let hi = hex_value(*b.get(i + 2)?)?;
        let lo = hex_value(*b.get(i + 3)?)?;
        out.push(hi << 4 | lo);
        i += 4;
    }
    String::from_utf8(out).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "50afb545d974fff134a361feaaf0a1cbf82887e20719fd094bac3dac19d7dc90";
    const D2: &str = "e1e8e3c4cc7699a0f5d1fa3f9bc9dc52bdea156aa2f92238c756fa734a8a6eef";
    const C: &str = "bee9a4f010e152ba52ae27026ad258b829d72941c769a2751ea673200d5c00c7";
    const R: &str = "5759e49a147a3ce934572de3ddd5140e73ded084c852991c5a951b4de2231ad3";
    const P: &str = "a15ea3308e41d19ea7bdb4fb7558bb09b38b3471bed9aa64d6c4035eb7cd64d2";
    const UID: &str = "01aa6988-9a81-4876-8b6d-fa9161640138";
    const UID_: &str = "01aa6988_9a81_4876_8b6d_fa9161640138";
    const STATIC_UID: &str = "69f3c73177591faf2b98f2c3ab1b4d0f";

    fn host(unit: &str, slice: Option<&str>) -> Placement {
        Placement {
            unit: Some(unit.to_owned()),
            slice: slice.map(str::to_owned),
            container: None,
        }
    }

    fn oci(runtime: Runtime, id: &str, pod: Option<&str>) -> Container {
        Container {
            runtime,
            id: id.to_owned(),
            name: None,
            pod_uid: pod.map(str::to_owned),
        }
    }

    fn named(runtime: Runtime, name: &str) -> Container {
        Container {
            runtime,
            id: name.to_owned(),
            name: Some(name.to_owned()),
            pod_uid: None,
        }
    }

    fn inside(unit: Option<&str>, slice: Option<&str>, c: Container) -> Placement {
        Placement {
            unit: unit.map(str::to_owned),
            slice: slice.map(str::to_owned),
            container: Some(c),
        }
    }

    fn check(cases: &[(String, Placement)]) {
        for (path, want) in cases {
            assert_eq!(&placement(path), want, "{path}");
        }
    }

    #[test]
    fn host_units_and_slices() {
        let none = Placement::default();
        check(&[
            ("/".into(), none.clone()),
            ("".into(), none.clone()),
            // The v1 controllers often stop at the slice: no unit there.
            ("/system.slice".into(), none.clone()),
            ("/user.slice".into(), none.clone()),
            ("/init.scope".into(), host("init.scope", None)),
            ("/system.slice/sshd.service".into(), host("sshd.service", Some("system.slice"))),
            ("/system.slice/cron.service".into(), host("cron.service", Some("system.slice"))),
            (
                "/system.slice/system-getty.slice/getty@tty1.service".into(),
                host("getty@tty1.service", Some("system-getty.slice")),
            ),
            (
                "/user.slice/user-1000.slice/session-3.scope".into(),
                host("session-3.scope", Some("user-1000.slice")),
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service".into(),
                host("user@1000.service", Some("user-1000.slice")),
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service/init.scope".into(),
                host("init.scope", Some("user-1000.slice")),
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service".into(),
                host("foo.service", Some("app.slice")),
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/vte-spawn-285f9042-eb6e-4abb-922b-8fcbcc688ed6.scope".into(),
                host(
                    "vte-spawn-285f9042-eb6e-4abb-922b-8fcbcc688ed6.scope",
                    Some("app-org.gnome.Terminal.slice"),
                ),
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service/app.slice/app-flatpak-org.mozilla.firefox-2836.scope".into(),
                host("app-flatpak-org.mozilla.firefox-2836.scope", Some("app.slice")),
            ),
            // A mount helper runs in the mount unit's cgroup; escapes stay as systemd has them.
            (
                "/system.slice/mnt-data\\x2d1.mount".into(),
                host("mnt-data\\x2d1.mount", Some("system.slice")),
            ),
            // A delegated service's own sub-cgroups are still that service.
            (
                "/system.slice/containerd.service".into(),
                host("containerd.service", Some("system.slice")),
            ),
            (
                "/system.slice/docker.service".into(),
                host("docker.service", Some("system.slice")),
            ),
            (
                "/system.slice/foo.service/worker".into(),
                host("foo.service", Some("system.slice")),
            ),
        ]);
    }

    #[test]
    fn docker() {
        let d = || oci(Runtime::Docker, D, None);
        let scope = format!("docker-{D}.scope");
        check(&[
            (
                format!("/system.slice/docker-{D}.scope"),
                inside(Some(&scope), Some("system.slice"), d()),
            ),
            (format!("/docker/{D}"), inside(None, None, d())),
            // Docker in docker: the outer container is the one on this host.
            (format!("/docker/{D}/docker/{D2}"), inside(None, None, d())),
            // systemd inside the container: its units are not this host's.
            (
                format!("/system.slice/docker-{D}.scope/init.scope"),
                inside(Some(&scope), Some("system.slice"), d()),
            ),
            (
                format!("/system.slice/docker-{D}.scope/system.slice/sshd.service"),
                inside(Some(&scope), Some("system.slice"), d()),
            ),
            // Rootless docker under the user's manager.
            (
                format!(
                    "/user.slice/user-1000.slice/user@1000.service/user.slice/docker-{D}.scope"
                ),
                inside(Some(&scope), Some("user.slice"), d()),
            ),
            // Kubernetes with docker and the systemd driver (a Guaranteed pod).
            (
                format!("/kubepods.slice/kubepods-pod{UID_}.slice/docker-{D}.scope"),
                inside(
                    Some(&scope),
                    Some(&format!("kubepods-pod{UID_}.slice")),
                    oci(Runtime::Docker, D, Some(UID)),
                ),
            ),
            // A kind node is a docker container: its pods are inside it.
            (
                format!(
                    "/system.slice/docker-{D}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{C}.scope"
                ),
                inside(Some(&scope), Some("system.slice"), d()),
            ),
        ]);
    }

    #[test]
    fn containerd() {
        let pod = |p: &str| oci(Runtime::Containerd, C, Some(p));
        let scope = format!("cri-containerd-{C}.scope");
        check(&[
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{C}.scope"
                ),
                inside(
                    Some(&scope),
                    Some(&format!("kubepods-burstable-pod{UID_}.slice")),
                    pod(UID),
                ),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{C}.scope"
                ),
                inside(
                    Some(&scope),
                    Some(&format!("kubepods-besteffort-pod{UID_}.slice")),
                    pod(UID),
                ),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{C}.scope"),
                inside(
                    Some(&scope),
                    Some(&format!("kubepods-pod{UID_}.slice")),
                    pod(UID),
                ),
            ),
            // cgroupfs driver (k3s, kubeadm with cgroupfs), every QoS class.
            (
                format!("/kubepods/burstable/pod{UID}/{C}"),
                inside(None, None, pod(UID)),
            ),
            (
                format!("/kubepods/besteffort/pod{UID}/{C}"),
                inside(None, None, pod(UID)),
            ),
            (
                format!("/kubepods/pod{UID}/{C}"),
                inside(None, None, pod(UID)),
            ),
            // A static pod's UID is its manifest's hash.
            (
                format!("/kubepods/burstable/pod{STATIC_UID}/{C}"),
                inside(None, None, pod(STATIC_UID)),
            ),
            // nerdctl with the systemd driver: containerd without Kubernetes.
            (
                format!("/system.slice/nerdctl-{C}.scope"),
                inside(
                    Some(&format!("nerdctl-{C}.scope")),
                    Some("system.slice"),
                    oci(Runtime::Containerd, C, None),
                ),
            ),
        ]);
    }

    #[test]
    fn cri_o() {
        let pod_slice = format!("kubepods-burstable-pod{UID_}.slice");
        let crio = || oci(Runtime::CriO, R, Some(UID));
        check(&[
            (
                format!("/kubepods.slice/kubepods-burstable.slice/{pod_slice}/crio-{R}.scope"),
                inside(Some(&format!("crio-{R}.scope")), Some(&pod_slice), crio()),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{UID_}.slice/crio-{R}.scope"),
                inside(
                    Some(&format!("crio-{R}.scope")),
                    Some(&format!("kubepods-pod{UID_}.slice")),
                    crio(),
                ),
            ),
            // The monitor is no container; its unit names it.
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/{pod_slice}/crio-conmon-{R}.scope"
                ),
                host(&format!("crio-conmon-{R}.scope"), Some(&pod_slice)),
            ),
            (
                format!("/kubepods/burstable/pod{UID}/crio-{R}"),
                inside(None, None, crio()),
            ),
            (
                format!("/kubepods/burstable/pod{UID}/crio-conmon-{R}"),
                Placement::default(),
            ),
        ]);
    }

    #[test]
    fn podman() {
        let p = || oci(Runtime::Podman, P, None);
        let scope = format!("libpod-{P}.scope");
        let conmon = format!("libpod-conmon-{P}.scope");
        let user = "/user.slice/user-1000.slice/user@1000.service";
        check(&[
            (
                format!("/machine.slice/libpod-{P}.scope"),
                inside(Some(&scope), Some("machine.slice"), p()),
            ),
            (
                format!("/machine.slice/libpod-conmon-{P}.scope"),
                host(&conmon, Some("machine.slice")),
            ),
            // systemd in the container: podman adds a `container` sub-cgroup.
            (
                format!("/machine.slice/libpod-{P}.scope/container"),
                inside(Some(&scope), Some("machine.slice"), p()),
            ),
            (
                format!("{user}/user.slice/libpod-{P}.scope"),
                inside(Some(&scope), Some("user.slice"), p()),
            ),
            (
                format!("{user}/user.slice/libpod-conmon-{P}.scope"),
                host(&conmon, Some("user.slice")),
            ),
            // A podman pod's slice (not a Kubernetes pod: no UID).
            (
                format!("/machine.slice/machine-libpod_pod_{D}.slice/libpod-{P}.scope"),
                inside(
                    Some(&scope),
                    Some(&format!("machine-libpod_pod_{D}.slice")),
                    p(),
                ),
            ),
            // cgroupfs driver; conmon has a cgroup of its own there.
            (
                format!("/libpod_parent/libpod-{P}"),
                inside(None, None, p()),
            ),
            ("/libpod_parent/conmon".into(), Placement::default()),
            // Quadlet (`--cgroups=split`): the service holds the payload and conmon's `runtime`.
            (
                format!("/system.slice/nginx.service/libpod-payload-{P}"),
                inside(Some("nginx.service"), Some("system.slice"), p()),
            ),
            (
                "/system.slice/nginx.service/runtime".into(),
                host("nginx.service", Some("system.slice")),
            ),
            (
                format!("{user}/app.slice/redis.service/libpod-payload-{P}"),
                inside(Some("redis.service"), Some("app.slice"), p()),
            ),
        ]);
    }

    #[test]
    fn lxc() {
        let web = || named(Runtime::Lxc, "web");
        check(&[
            ("/lxc.payload.web".into(), inside(None, None, web())),
            (
                "/lxc.payload.web/init.scope".into(),
                inside(None, None, web()),
            ),
            (
                "/lxc.payload.web/system.slice/nginx.service".into(),
                inside(None, None, web()),
            ),
            ("/lxc.monitor.web".into(), Placement::default()),
            // lxc 3.x, and Proxmox (`ns` is its container-side subtree).
            ("/lxc.payload/web".into(), inside(None, None, web())),
            ("/lxc/web".into(), inside(None, None, web())),
            (
                "/lxc/101/ns/init.scope".into(),
                inside(None, None, named(Runtime::Lxc, "101")),
            ),
            ("/lxc.monitor/101".into(), Placement::default()),
            ("/lxc".into(), Placement::default()),
            ("/lxc.payload.".into(), Placement::default()),
        ]);
    }

    #[test]
    fn nspawn() {
        let deb = || named(Runtime::SystemdNspawn, "debian");
        let fedora = || named(Runtime::SystemdNspawn, "fedora-39");
        let ms = Some("machine.slice");
        check(&[
            (
                "/machine.slice/machine-debian.scope/payload/init.scope".into(),
                inside(Some("machine-debian.scope"), ms, deb()),
            ),
            (
                "/machine.slice/machine-debian.scope/payload/system.slice/sshd.service".into(),
                inside(Some("machine-debian.scope"), ms, deb()),
            ),
            // Before nspawn split itself off (and on v1): all in the scope.
            ("/machine.slice/machine-debian.scope".into(), inside(Some("machine-debian.scope"), ms, deb())),
            ("/machine.slice/machine-debian.scope/supervisor".into(), host("machine-debian.scope", ms)),
            (
                "/machine.slice/machine-fedora\\x2d39.scope/payload".into(),
                inside(Some("machine-fedora\\x2d39.scope"), ms, fedora()),
            ),
            // `machinectl start`: the template service instead of a scope.
            (
                "/machine.slice/systemd-nspawn@fedora\\x2d39.service/payload/system.slice/sshd.service".into(),
                inside(Some("systemd-nspawn@fedora\\x2d39.service"), ms, fedora()),
            ),
            (
                "/machine.slice/systemd-nspawn@fedora\\x2d39.service/supervisor".into(),
                host("systemd-nspawn@fedora\\x2d39.service", ms),
            ),
            // libvirt's VMs and containers are machines too, but not nspawn's.
            (
                "/machine.slice/machine-qemu\\x2d1\\x2dWin10.scope/libvirt/emulator".into(),
                host("machine-qemu\\x2d1\\x2dWin10.scope", ms),
            ),
            (
                "/machine.slice/machine-lxc\\x2d4242\\x2dweb.scope".into(),
                host("machine-lxc\\x2d4242\\x2dweb.scope", ms),
            ),
            // `--register=no` (no machined): systemd's `NAME.scope`, nspawn itself in it and
            // the container in `payload` (measured with systemd 252); NAME is mangled, not
            // escaped: `-` stays.
            (
                "/machine.slice/fedora-39.scope/payload".into(),
                inside(Some("fedora-39.scope"), ms, fedora()),
            ),
            (
                "/machine.slice/debian.scope/payload/system.slice/sshd.service".into(),
                inside(Some("debian.scope"), ms, deb()),
            ),
            ("/machine.slice/debian.scope".into(), host("debian.scope", ms)),
            ("/machine.slice/debian.scope/supervisor".into(), host("debian.scope", ms)),
            // Without `payload` below it, or outside machine.slice, a scope is no machine.
            ("/machine.slice/debian.scope/other".into(), host("debian.scope", ms)),
            (
                "/system.slice/debian.scope/payload".into(),
                host("debian.scope", Some("system.slice")),
            ),
            (
                "/machine.slice/qemu\\x2d1\\x2dWin10.scope/payload".into(),
                host("qemu\\x2d1\\x2dWin10.scope", ms),
            ),
        ]);
    }

    #[test]
    fn no_guessing() {
        let short = &D[1..];
        let upper = D.to_uppercase();
        check(&[
            (
                format!("/system.slice/docker-{short}.scope"),
                host(&format!("docker-{short}.scope"), Some("system.slice")),
            ),
            (
                format!("/system.slice/docker-{upper}.scope"),
                host(&format!("docker-{upper}.scope"), Some("system.slice")),
            ),
            (
                format!("/system.slice/docker-{D}0.scope"),
                host(&format!("docker-{D}0.scope"), Some("system.slice")),
            ),
            ("/docker/not-an-id".into(), Placement::default()),
            (format!("/docker/{short}"), Placement::default()),
            // A bare ID needs its runtime's parent.
            (format!("/foo/{C}"), Placement::default()),
            (format!("/pod{UID}/{C}"), Placement::default()),
            (
                format!("/kubepods/burstable/pod{UID}/not-an-id"),
                Placement::default(),
            ),
            (
                format!("/kubepods/burstable/podnot-a-uid/{C}"),
                Placement::default(),
            ),
            // cgroupfs writes the UID as it is: underscores are the systemd driver's.
            (
                format!("/kubepods/burstable/pod{UID_}/{C}"),
                Placement::default(),
            ),
            (
                format!("/kubepods/burstable/pod{}/{C}", UID.to_uppercase()),
                Placement::default(),
            ),
            // A scope names its container itself: a bad pod UID only loses the UID.
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podxyz.slice/cri-containerd-{C}.scope"
                ),
                inside(
                    Some(&format!("cri-containerd-{C}.scope")),
                    Some("kubepods-burstable-podxyz.slice"),
                    oci(Runtime::Containerd, C, None),
                ),
            ),
            (format!("/libpod-{P}"), Placement::default()),
            // An nspawn name that does not unescape is no name.
            (
                "/machine.slice/machine-a\\x2.scope".into(),
                host("machine-a\\x2.scope", Some("machine.slice")),
            ),
            (
                "/machine.slice/machine-a\\xff.scope".into(),
                host("machine-a\\xff.scope", Some("machine.slice")),
            ),
            (
                "/machine.slice/machine-a\\x2fb.scope".into(),
                host("machine-a\\x2fb.scope", Some("machine.slice")),
            ),
            (
                "/machine.slice/machine-.scope".into(),
                host("machine-.scope", Some("machine.slice")),
            ),
            // Bare suffixes are no units.
            ("/.service/.scope/.slice".into(), Placement::default()),
        ]);
    }

    #[test]
    fn runtime_names() {
        let all = [
            (Runtime::Docker, "docker"),
            (Runtime::Containerd, "containerd"),
            (Runtime::CriO, "cri-o"),
            (Runtime::Podman, "podman"),
            (Runtime::Lxc, "lxc"),
            (Runtime::SystemdNspawn, "systemd-nspawn"),
        ];
        for (r, s) in all {
            assert_eq!(r.as_str(), s);
        }
    }

    #[test]
    fn unescapes_systemd_names() {
        assert_eq!(unescape("fedora\\x2d39").as_deref(), Some("fedora-39"));
        assert_eq!(unescape("a\\x2D\\x5fb").as_deref(), Some("a-_b"));
        assert_eq!(unescape("\\xc3\\xa9").as_deref(), Some("é"));
        assert_eq!(unescape("plain").as_deref(), Some("plain"));
        for bad in ["\\", "\\x", "\\x2", "a\\y41", "\\xg0", "\\xff", "\\xc3"] {
            assert_eq!(unescape(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn never_panics() {
        let long = "/a".repeat(100_000);
        let long_hex = format!("/kubepods/pod{UID}/{}", "f".repeat(1 << 16));
        let deep = format!("/docker/{D}").repeat(10_000);
        let mut odd = vec![
            String::new(),
            "/".into(),
            "//".into(),
            "///system.slice//sshd.service//".into(),
            "\\x".into(),
            "/machine.slice/machine-\\x".into(),
            "/machine.slice/machine-\\x.scope".into(),
            "/machine.slice/machine-\\".into(),
            "/machine.slice/machine-\\.scope".into(),
            "/machine.slice/machine-\\xé.scope".into(),
            "/machine.slice/machine-é\\x0.scope".into(),
            "/machine.slice/systemd-nspawn@\\x00.service".into(),
            "/kubepods/pod".into(),
            "/kubepods/pod/".into(),
            "/kubepods-pod.slice/crio-.scope".into(),
            "/-pod.slice/docker-.scope".into(),
            "/lxc.payload./lxc/".into(),
            "/docker/".into(),
            "/libpod_parent/libpod-".into(),
            "\u{0}/\u{feff}/\u{10ffff}.scope".into(),
            "/../../..".into(),
            "0::/system.slice/sshd.service".into(),
            "1:name=systemd:/docker/x".into(),
            long,
            long_hex,
            deep,
        ];
        // Every prefix of a few real paths, cut at every character boundary.
        for p in [
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{C}.scope"
            ),
            "/machine.slice/systemd-nspawn@fedora\\x2d39.service/payload".to_owned(),
            "/lxc.payload.wéb/init.scope".to_owned(),
        ] {
            odd.extend(p.char_indices().map(|(i, _)| p[..i].to_owned()));
        }
        for s in &odd {
            let got = placement(s);
            if let Some(c) = &got.container {
                assert!(!c.id.is_empty(), "{s:?}");
            }
        }
        // The deep docker path is one container, the outermost.
        let deep = format!("/docker/{D}").repeat(10_000);
        assert_eq!(
            placement(&deep).container,
            Some(oci(Runtime::Docker, D, None))
        );
    }
}
