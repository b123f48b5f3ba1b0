//! A running daemon's BPF maps, as `bpftool map` would reach them: through the ids its
//! own fds hold (BPF_MAP_GET_FD_BY_ID), so only this test's daemon, whatever other daemons
//! run at the same time.
use std::collections::HashSet;
use std::fs;

use libbpf_rs::{MapCore, MapHandle};

/// Every map the daemon `pid` holds an fd of, with its name (the kernel keeps 15 bytes).
pub fn daemon_maps(pid: u32) -> Vec<(String, MapHandle)> {
    let mut ids = HashSet::new();
    for e in fs::read_dir(format!("/proc/{pid}/fdinfo")).expect("the daemon's fdinfo") {
        let text = fs::read_to_string(e.expect("fdinfo entry").path()).unwrap_or_default();
        if let Some(id) = text
            .lines()
            .find_map(|l| l.strip_prefix("map_id:"))
            .and_then(|v| v.trim().parse::<u32>().ok())
        {
            ids.insert(id);
        }
    }
    ids.into_iter()
        .filter_map(|id| MapHandle::from_map_id(id).ok())
        .map(|m| (m.name().to_string_lossy().into_owned(), m))
        .collect()
}

/// The one map called `name` among `maps`.
pub fn map(maps: &[(String, MapHandle)], name: &str) -> MapHandle {
    let found: Vec<_> = maps.iter().filter(|(n, _)| n == name).collect();
    assert_eq!(found.len(), 1, "the daemon holds one map {name}");
    MapHandle::try_from(&found[0].1).expect("dup map fd")
}
