//! The cgroup path parser of the process context (unit, slice, container): cgroups an
//! unprivileged user delegated to itself can be named anything. Never a panic, and never a
//! container id that is not the runtime's form.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Kernel names are bytes; the daemon hands the parser the lossy text.
    let path = String::from_utf8_lossy(data);
    let (unit, slice, container) = ringwarden::fuzzing::cgroup_placement(&path);
    if let Some(u) = &unit {
        assert!(path.contains(u.as_str()), "unit {u:?} not in {path:?}");
    }
    assert!(slice.is_none() || unit.is_some(), "a slice without a unit");
    if let Some((runtime, id, _, _)) = container {
        if matches!(runtime, "docker" | "containerd" | "cri-o" | "podman") {
            assert!(
                id.len() == 64
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{runtime} id {id:?}"
            );
        }
    }
});
