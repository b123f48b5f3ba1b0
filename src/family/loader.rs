//! Loading a family's BPF object with graceful degradation, attaching it, and the
//! handles on its maps the daemon works with (ring slot, counters, config, high-water).

use super::Family;
use crate::sys;
use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, MapType, Object, ObjectBuilder, OpenObject};
use std::cell::{Cell, RefCell};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Why a family, one of its maps or its ring could not be had. Runtime errors (exit 1):
/// at start a family that cannot load is logged and left out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// libbpf's or the kernel's answer as is (a map read or write, a duplicated fd).
    #[error(transparent)]
    Bpf(#[from] libbpf_rs::Error),
    /// Opening, sizing, loading the family's BPF object, with what was being done.
    #[error("{0}")]
    Load(String),
    /// A map of the family (finding, duplicating or writing it), with which one.
    #[error("{0}")]
    Map(String),
    /// Creating or swapping a ring buffer.
    #[error("{0}")]
    Ring(String),
}

impl sys::Exit for Error {
    fn exit_code(&self) -> u8 {
        sys::exit::RUNTIME
    }
}

/// What became of one BPF program.
#[derive(Clone, Debug)]
pub struct ProgramStatus {
    pub name: String,
    /// e.g. `tp_btf/sched_process_exec`
    pub section: String,
    /// `None` when attached (or not applicable); otherwise why not.
    pub error: Option<String>,
    /// Set when the program is left out by design on this kernel, with the reason.
    pub not_applicable: Option<String>,
}

impl ProgramStatus {
    pub fn attached(&self) -> bool {
        self.error.is_none() && self.not_applicable.is_none()
    }
}

/// A family's programs, attached, and handles on its maps. The object itself is
/// dropped after attaching: the links keep the programs alive and the handles the maps.
pub struct Loaded {
    pub family: Family,
    /// The ring buffers in the outer map's slots, one per shard (slot i: shard i).
    pub shards: Vec<Shard>,
    /// Produced / dropped counters (struct rw_counters per slot).
    pub stats: MapHandle,
    /// struct rw_config: the daemon's pid and the stop flag.
    config: MapHandle,
    /// What the daemon last wrote into `config` (plus the tgid the programs learned):
    /// anything else found there was written behind its back (see `check_tamper`).
    expected: Cell<Config>,
    /// Changes `update_config` found (and overwrote) before the tick's check.
    unreported: RefCell<Vec<Tamper>>,
    /// The ARRAY_OF_MAPS the programs reach the shards' rings through.
    outer: MapHandle,
    /// struct rw_fill: the in-kernel high-water mark.
    fill: MapHandle,
    /// The family's own maps by name (e.g. syscall_filter).
    maps: Vec<(String, MapHandle)>,
    /// The syscall set the kernel filter holds (syscall family).
    syscalls: Vec<u32>,
    pub programs: Vec<ProgramStatus>,
    /// Why the 5.10 variant runs (bpf/kernel.h), or `None` for the full object. The
    /// variant's records carry no seq: its drops are reported from the counters.
    pub variant_510: Option<String>,
    links: Vec<Link>,
    /// The attached programs' own fds (by name), for their run-time statistics.
    prog_fds: Vec<(String, OwnedFd)>,
}

/// One shard's ring: what is in slot `i` of the outer map for shard `i`.
pub struct Shard {
    pub ring: MapHandle,
    pub size: u64,
    /// The kernel's id of `ring`: what the outer map's slot must hold (`None` if the
    /// kernel could not tell it: then the slot is not checked, never a finding).
    id: Option<u32>,
}

impl Shard {
    fn new(ring: MapHandle) -> Shard {
        Shard {
            size: u64::from(ring.max_entries()),
            id: map_id(&ring),
            ring,
        }
    }
}

/// Family settings written into its maps after load.
#[derive(Debug, Default)]
pub struct LoadOptions {
    /// Every shard's ring size at load.
    pub ring_size: u64,
    /// Rings, one per group of CPUs (1: one ring). Fixed for the life of the family's
    /// counter maps, which have a slot per shard and are handed on with `reuse`.
    pub shards: u32,
    /// Syscall numbers the syscall family reports.
    pub syscalls: Vec<u32>,
    /// Counter maps of an earlier load of this family, handed to the new object
    /// (`reuse_fd`) so its numbers and sequence continue across a rebuild.
    pub reuse: Option<Shared>,
    /// The filter object's maps (`filter::Filters::maps`), by name: the object uses
    /// these instead of its own, so that every family judges by the same rules.
    pub filter_maps: Vec<(String, MapHandle)>,
    /// The daemon keeps process context: records that keep its tables are sent even
    /// when filtered, marked for the tables only (RW_CONFIG_CONTEXT).
    pub context: bool,
    /// Programs of the family the configuration leaves out, each with why (reported as
    /// not applicable).
    pub skip: Vec<(&'static str, String)>,
    /// Values the family's own maps start with (map name, value of key 0).
    pub map_values: Vec<(&'static str, Vec<u8>)>,
}

/// The maps whose contents must outlive one loaded object: the books and the high-water mark.
#[derive(Debug)]
pub struct Shared {
    stats: MapHandle,
    fill: MapHandle,
    /// The family's own counter maps (named in [`KEPT`]).
    kept: Vec<(String, MapHandle)>,
}

/// Maps of a family's own that hold counts and so outlive one loaded object, like its
/// books: the syscall family's counts of what no program reports, the anomaly family's
/// suppressed failures not yet reported.
const KEPT: &[&str] = &[
    super::syscall::UNSEEN_MAP,
    super::anomaly::RATE_MAP,
    super::anomaly::RATE_OVER_MAP,
];

impl Shared {
    /// One of the kept maps, by name.
    pub fn map(&self, name: &str) -> Option<&MapHandle> {
        self.kept.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }

    /// New handles on the same maps.
    pub fn dup(&self) -> Result<Shared, Error> {
        Shared::of(&self.stats, &self.fill, &self.kept)
    }

    fn of(
        stats: &MapHandle,
        fill: &MapHandle,
        kept: &[(String, MapHandle)],
    ) -> Result<Shared, Error> {
        let dup = |m: &MapHandle| MapHandle::try_from(m).map_err(Error::Bpf);
        Ok(Shared {
            stats: dup(stats)?,
            fill: dup(fill)?,
            kept: kept
                .iter()
                .map(|(n, m)| Ok((n.clone(), dup(m)?)))
                .collect::<Result<_, Error>>()?,
        })
    }
}

/// `struct rw_counters` (bpf/common.h): one ring slot's books, kept by the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub produced: u64,
    pub dropped: u64,
    pub untracked: u64,
    pub filtered: u64,
    pub rate_limited: u64,
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl plain::Plain for Counters {}

impl Counters {
    /// The sum of shards' books.
    pub fn add(&mut self, o: &Counters) {
        self.produced += o.produced;
        self.dropped += o.dropped;
        self.untracked += o.untracked;
        self.filtered += o.filtered;
        self.rate_limited += o.rate_limited;
    }
}

impl Loaded {
    /// Shard `slot`'s counters, or `None` if the kernel could not be asked.
    pub fn try_counters(&self, slot: usize) -> Option<Counters> {
        let v = self
            .stats
            .lookup(&(slot as u32).to_ne_bytes(), MapFlags::ANY)
            .ok()??;
        let mut c = Counters::default();
        plain::copy_from_bytes(&mut c, &v).ok()?;
        Some(c)
    }

    /// Shard `slot`'s counters for the stats; zeros if the kernel could not be asked
    /// (cannot happen for an ARRAY map we hold), rather than a crash.
    pub fn counters(&self, slot: usize) -> Counters {
        self.try_counters(slot).unwrap_or_default()
    }

    /// Every shard's counters summed.
    pub fn total(&self) -> Counters {
        let mut t = Counters::default();
        for i in 0..self.shards.len() {
            t.add(&self.counters(i));
        }
        t
    }

    /// Shard `slot`'s ring size (0: no such shard).
    pub fn shard_size(&self, slot: usize) -> u64 {
        self.shards.get(slot).map_or(0, |s| s.size)
    }

    /// Bytes of every shard's ring.
    pub fn ring_bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.size).sum()
    }

    pub fn attached(&self) -> usize {
        self.links.len()
    }

    /// The kernel's run statistics of the attached program `name`: (runs, ns spent),
    /// counted while run-time statistics are on (see [`enable_run_stats`]); `None` when
    /// the kernel could not tell.
    pub fn run_stats(&self, name: &str) -> Option<(u64, u64)> {
        let (_, fd) = self.prog_fds.iter().find(|(n, _)| n == name)?;
        prog_run_stats(fd.as_fd())
    }

    /// Makes every program of the family stop reporting, at once (one map write; see
    /// RW_CONFIG_STOPPED in bpf/common.h for why this comes before detaching).
    pub fn stop(&self) -> Result<(), Error> {
        self.update_config(|c| c.flags |= RW_CONFIG_STOPPED)
    }

    /// Batching: commits wake the reader only once the ring holds `bytes` (0: the
    /// kernel's default wake-ups).
    pub fn set_wakeup(&self, bytes: u64) -> Result<(), Error> {
        self.update_config(|c| c.wakeup_bytes = bytes)
    }

    /// Writes the daemon's config with `f` applied. What the kernel holds is compared
    /// first: a change made behind the daemon's back is kept for the next
    /// [`Loaded::check_tamper`] rather than carried over (or silently overwritten).
    fn update_config(&self, f: impl FnOnce(&mut Config)) -> Result<(), Error> {
        let mut found = self.config_diff();
        let mut cfg = self.expected.get();
        f(&mut cfg);
        self.write_expected(cfg)?;
        self.unreported.borrow_mut().append(&mut found);
        Ok(())
    }

    /// Writes `cfg` as the daemon's config. While the daemon's tgid is not known yet
    /// (in a PID namespace), the one the programs hold is left as it is: it is checked
    /// once known (see [`Loaded::know_self_tgid`]), and a genuine one is not unlearned.
    fn write_expected(&self, cfg: Config) -> Result<(), Error> {
        let mut w = cfg;
        if self.tgid_pending()
            && let Some(cur) = self.current_config()
        {
            w.self_tgid = cur.self_tgid;
        }
        write_config(&self.config, &w)?;
        self.expected.set(cfg);
        Ok(())
    }

    /// In a PID namespace, until the daemon's real tgid is known.
    fn tgid_pending(&self) -> bool {
        let exp = self.expected.get();
        exp.self_tgid == 0 && exp.ns_tgid != 0
    }

    fn current_config(&self) -> Option<Config> {
        let v = self
            .config
            .lookup(&RW_SLOT.to_ne_bytes(), MapFlags::ANY)
            .ok()??;
        let mut cur = Config::default();
        plain::copy_from_bytes(&mut cur, &v).ok()?;
        Some(cur)
    }

    /// Whether the family's programs see the daemon's own activity every tick (its
    /// stats and output writes; its syscalls), and so learn its tgid in a PID namespace
    /// (see rw_learn_self in bpf/common.h) without anyone's help.
    pub fn sees_daemon(&self) -> bool {
        matches!(self.family, Family::File | Family::Syscall)
    }

    /// The tgid the programs learned in a PID namespace, while the daemon has not taken
    /// one as its own. Anyone who can write the map can put a value there: it is the
    /// daemon's only if this family [`sees_daemon`](Loaded::sees_daemon).
    pub fn learned_tgid(&self) -> Option<u32> {
        if !self.tgid_pending() {
            return None;
        }
        let cur = self.current_config()?;
        (cur.self_tgid != 0).then_some(cur.self_tgid)
    }

    /// Takes `tgid` as the daemon's real tgid (learned by a family that sees the
    /// daemon): written into this family's config, so its programs skip the daemon
    /// without learning; a different value found there (an attacker's, hiding their
    /// own events) is a finding for the next check. Nothing to do once known.
    pub fn know_self_tgid(&self, tgid: u32) -> Result<(), Error> {
        if !self.tgid_pending() {
            return Ok(());
        }
        let mut found = self.config_diff();
        if let Some(cur) = self.current_config()
            && cur.self_tgid != 0
            && cur.self_tgid != tgid
        {
            found.push(Tamper {
                family: self.family.name(),
                map: "rw_config".to_string(),
                field: "self_tgid".to_string(),
                expected: tgid.into(),
                found: cur.self_tgid.into(),
            });
        }
        self.unreported.borrow_mut().append(&mut found);
        let mut cfg = self.expected.get();
        cfg.self_tgid = tgid;
        write_config(&self.config, &cfg)?;
        self.expected.set(cfg);
        Ok(())
    }

    /// The kernel's rw_config against what the daemon wrote: one finding per field
    /// that differs. While the daemon's tgid is not known, `self_tgid` is not compared
    /// (the programs learn it; see [`Loaded::know_self_tgid`]).
    fn config_diff(&self) -> Vec<Tamper> {
        let Some(cur) = self.current_config() else {
            return Vec::new();
        };
        let mut exp = self.expected.get();
        if self.tgid_pending() {
            exp.self_tgid = cur.self_tgid;
        }
        let fields = [
            ("self_tgid", exp.self_tgid.into(), cur.self_tgid.into()),
            ("flags", exp.flags.into(), cur.flags.into()),
            ("ns_tgid", exp.ns_tgid.into(), cur.ns_tgid.into()),
            ("family", exp.family.into(), cur.family.into()),
            ("pidns_dev", exp.pidns_dev, cur.pidns_dev),
            ("pidns_ino", exp.pidns_ino, cur.pidns_ino),
            ("wakeup_bytes", exp.wakeup_bytes, cur.wakeup_bytes),
            ("shards", exp.shards.into(), cur.shards.into()),
            ("cpus", exp.cpus.into(), cur.cpus.into()),
        ];
        fields
            .into_iter()
            .filter(|(_, e, c)| e != c)
            .map(|(field, expected, found)| Tamper {
                family: self.family.name(),
                map: "rw_config".to_string(),
                field: field.to_string(),
                expected,
                found,
            })
            .collect()
    }

    /// Compares what the programs depend on with what the daemon set, restores it at
    /// once, and returns every difference: the config (pid filter, stop flag, wake-ups),
    /// the ring in the outer map's slot (another ring there takes the events), and the
    /// syscall filter. One map read each (the filter: one batch read), every tick.
    pub fn check_tamper(&self) -> Vec<Tamper> {
        let mut found = std::mem::take(&mut *self.unreported.borrow_mut());
        let config = self.config_diff();
        if !config.is_empty() {
            if let Err(e) = self.write_expected(self.expected.get()) {
                log::error!("{}: restoring rw_config: {e}", self.family);
            }
            found.extend(config);
        }
        // slot_diff restores the slot itself, only when it changed: a write costs an RCU
        // grace period (~15 ms here), which every tick would pay once per family.
        for slot in 0..self.shards.len() {
            found.extend(self.slot_diff(slot));
        }
        if let Some((_, m)) = self.maps.iter().find(|(n, _)| n == SYSCALL_FILTER) {
            found.extend(self.filter_diff(m));
        }
        found
    }

    /// The ring in the outer map's slot against the daemon's, restored if another: a
    /// finding only when both ids are known (an unknown one is no evidence, and a restore
    /// costs an RCU grace period).
    fn slot_diff(&self, slot: usize) -> Option<Tamper> {
        let shard = self.shards.get(slot)?;
        let expected = shard.id?;
        let key = (slot as u32).to_ne_bytes();
        let inner = match self.outer.lookup(&key, MapFlags::ANY) {
            // An id read from an outer map is the inner map's id; an empty slot is 0.
            Ok(v) => v
                .and_then(|v| v.get(..4).and_then(|b| b.try_into().ok()))
                .map_or(0, u32::from_ne_bytes),
            Err(_) => return None,
        };
        if inner == expected {
            return None;
        }
        let fd = shard.ring.as_fd().as_raw_fd() as u32;
        if let Err(e) = self.outer.update(&key, &fd.to_ne_bytes(), MapFlags::ANY) {
            log::error!("{}: restoring ring slot {slot}: {e}", self.family);
        }
        Some(Tamper {
            family: self.family.name(),
            map: format!("{}_rings", self.family),
            field: if slot == 0 {
                "ring_id".to_string()
            } else {
                format!("ring_id[{slot}]")
            },
            expected: expected.into(),
            found: inner.into(),
        })
    }

    /// The syscall filter against the set the daemon wrote, entries restored one by
    /// one: one finding per syscall switched on or off behind its back. Read in one
    /// batch: ~0.27 ms a tick here, where 1024 lookups took 3 to 19 ms.
    fn filter_diff(&self, m: &MapHandle) -> Vec<Tamper> {
        let Ok(entries) = m.lookup_batch(super::syscalls::MAX_NR, MapFlags::ANY, MapFlags::ANY)
        else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for (k, v) in entries {
            let (Some(nr), Some(&on)) = (
                k.get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_ne_bytes),
                v.first(),
            ) else {
                continue;
            };
            // The entry's bits as set_syscall_filter writes them (report, count compat).
            let want = super::syscall::filter_entry(nr, self.syscalls.contains(&nr));
            if on == want {
                continue;
            }
            if let Err(e) = m.update(&nr.to_ne_bytes(), &[want], MapFlags::ANY) {
                log::error!("{}: restoring {SYSCALL_FILTER}[{nr}]: {e}", self.family);
            }
            found.extend(
                filter_bit_changes(nr, want, on).map(|(field, expected, found)| Tamper {
                    family: self.family.name(),
                    map: SYSCALL_FILTER.to_string(),
                    field,
                    expected,
                    found,
                }),
            );
        }
        found
    }

    /// Returns once no program of the family is still running from before the call:
    /// writing a slot of an ARRAY_OF_MAPS (here: the same ring again) makes the kernel
    /// wait for an RCU grace period, which covers every running BPF program. After
    /// `stop` + `sync`, the ring gets nothing new.
    pub fn sync(&self) -> Result<(), Error> {
        let Some(shard) = self.shards.first() else {
            return Ok(());
        };
        let fd = shard.ring.as_fd().as_raw_fd() as u32;
        self.outer
            .update(&RW_SLOT.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(Error::Bpf)
    }

    /// The most bytes the ring held right after a commit since the last call, then
    /// starts a new period. (A commit racing with the reset may be missed: a mark.)
    pub fn take_high_water(&self, slot: usize) -> u64 {
        let key = (slot as u32).to_ne_bytes();
        let hw = match self.fill.lookup(&key, MapFlags::ANY) {
            Ok(Some(v)) => v
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_ne_bytes),
            _ => 0,
        };
        let _ = self.fill.update(&key, &0u64.to_ne_bytes(), MapFlags::ANY);
        hw
    }

    /// Sets the syscall family's syscall set: a map write, no reload.
    pub fn set_syscalls(&mut self, nrs: &[u32]) -> Result<(), Error> {
        let Some((_, m)) = self.maps.iter().find(|(n, _)| n == SYSCALL_FILTER) else {
            return Err(Error::Map(format!(
                "the {} family has no syscall filter",
                self.family
            )));
        };
        let written = set_syscall_filter(m, nrs);
        // What the kernel now holds, even after a failure part way (entries below the
        // failed one are the new set's): the tamper check expects exactly that, so it
        // does not "restore" the daemon's own partial write.
        let upto = written.as_ref().err().map_or(u32::MAX, |(nr, _)| *nr);
        self.syscalls = partly_written(&self.syscalls, nrs, upto);
        written.map_err(|(_, e)| Error::Map(format!("{}: {e}", self.family)))
    }

    /// Whether the family takes the configured syscall set (it has a syscall filter).
    pub fn takes_syscalls(&self) -> bool {
        self.maps.iter().any(|(n, _)| n == SYSCALL_FILTER)
    }

    pub fn syscalls(&self) -> &[u32] {
        &self.syscalls
    }

    /// Creates a ring of `size` bytes for this family (not yet in use).
    pub fn new_ring(&self, size: u64) -> Result<MapHandle, Error> {
        create_ring(&format!("{}_ring", self.family), size)
    }

    /// Puts `ring` in shard `slot`'s slot and returns the ring it replaces. When this
    /// returns, no program can still write to the old ring (the kernel waits for running
    /// programs on map-in-map updates), so what it holds is final: drain it, drop it.
    pub fn swap_ring(&mut self, slot: usize, ring: MapHandle) -> Result<MapHandle, Error> {
        let family = self.family;
        let shard = self
            .shards
            .get_mut(slot)
            .ok_or_else(|| Error::Ring(format!("the {family} ring has no shard {slot}")))?;
        let fd = ring.as_fd().as_raw_fd() as u32;
        self.outer
            .update(
                &(slot as u32).to_ne_bytes(),
                &fd.to_ne_bytes(),
                MapFlags::ANY,
            )
            .map_err(|e| Error::Ring(format!("swapping the {family} ring: {e}")))?;
        let old = std::mem::replace(shard, Shard::new(ring));
        // The mark so far was the old ring's, not to be judged against the new size.
        self.take_high_water(slot);
        Ok(old.ring)
    }

    /// Handles on the maps a later load of this family takes over (`LoadOptions::reuse`).
    pub fn shared(&self) -> Result<Shared, Error> {
        let kept: Vec<(String, MapHandle)> = self
            .maps
            .iter()
            .filter(|(n, _)| KEPT.contains(&n.as_str()))
            .map(|(n, m)| Ok((n.clone(), MapHandle::try_from(m)?)))
            .collect::<Result<_, libbpf_rs::Error>>()
            .map_err(|e| Error::Map(format!("{}: {e}", self.family)))?;
        Shared::of(&self.stats, &self.fill, &kept)
            .map_err(|e| Error::Map(format!("{}: {e}", self.family)))
    }

    /// The syscall family's counts of what no program reports (compat syscalls,
    /// io_uring submissions); `None` for other families or if the kernel could not be asked.
    pub fn unseen(&self) -> Option<super::syscall::Unseen> {
        let (_, m) = self
            .maps
            .iter()
            .find(|(n, _)| n == super::syscall::UNSEEN_MAP)?;
        let v = m.lookup(&RW_SLOT.to_ne_bytes(), MapFlags::ANY).ok()??;
        super::syscall::Unseen::from_bytes(&v)
    }

    /// One of the family's own maps, by name.
    /// New values for the family's settings maps ([`LoadOptions::map_values`]), while it
    /// runs: the programs read them on their next event.
    pub fn write_map_values(&self, values: &[(&'static str, Vec<u8>)]) -> Result<(), Error> {
        write_values(&self.maps, values)
    }

    pub fn map(&self, name: &str) -> Option<&MapHandle> {
        self.maps.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }

    /// Detaches every program (slow for classic tracepoints: ~75 ms each here).
    pub fn detach(&mut self) {
        self.links.clear();
    }
}

/// Something the daemon set in a family's maps, found changed by someone else (and
/// already put back): raised as a `tamper` anomaly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tamper {
    /// The family whose map it is, or `filters` for the maps every family shares.
    pub family: &'static str,
    /// `rw_config`, `FAMILY_rings` (the outer map's ring slot) or `syscall_filter`.
    pub map: String,
    /// The rw_config member, `ring_id`, or the syscall's name (its number if unnamed).
    pub field: String,
    pub expected: u64,
    pub found: u64,
}

/// One (field, expected, found) per bit of a syscall filter entry that differs: the
/// report bit is named after the 64-bit syscall `nr`, the compat bit after the ia32
/// syscall of the same number (`compat:open`, as entry 5 is fstat but ia32 open), and
/// bits the daemon never sets together as `NAME:other` (values masked to them).
fn filter_bit_changes(nr: u32, want: u8, on: u8) -> impl Iterator<Item = (String, u64, u64)> {
    use super::syscall::filter;
    let name = super::syscalls::name(nr).map_or_else(|| nr.to_string(), str::to_string);
    let diff = want ^ on;
    let other = !(filter::REPORT | filter::COMPAT);
    let bit = |b: u8| (u64::from(want & b != 0), u64::from(on & b != 0));
    let mut out = Vec::new();
    if diff & filter::REPORT != 0 {
        let (e, f) = bit(filter::REPORT);
        out.push((name.clone(), e, f));
    }
    if diff & filter::COMPAT != 0 {
        let (e, f) = bit(filter::COMPAT);
        out.push((format!("compat:{}", super::syscall::ia32_name(nr)), e, f));
    }
    if diff & other != 0 {
        out.push((
            format!("{name}:other"),
            u64::from(want & other),
            u64::from(on & other),
        ));
    }
    out.into_iter()
}

/// The kernel's id of a map, if the kernel tells it.
fn map_id(m: &MapHandle) -> Option<u32> {
    m.info().ok().map(|i| i.info.id)
}

/// `enum rw_config_flags` (bpf/common.h).
const RW_CONFIG_STOPPED: u32 = 1;
const RW_CONFIG_CONTEXT: u32 = 2;
/// `enum rw_slots` (bpf/common.h): the key of the one ring slot every family uses.
const RW_SLOT: u32 = 0;
/// Slots per outer array as the object declares it (the loader sets one per shard).
#[cfg(test)]
const RW_RING_SLOTS: u32 = 1;
/// The most shards a family's ring can have.
pub const MAX_SHARDS: u32 = 64;

/// A BPF ring buffer of `size` bytes named `name`, outside any object (ring swaps,
/// and `check`'s probe for ring buffer support).
pub fn create_ring(name: &str, size: u64) -> Result<MapHandle, Error> {
    let bytes =
        u32::try_from(size).map_err(|_| Error::Ring(format!("ring size {size} is too large")))?;
    let opts = libbpf_rs::libbpf_sys::bpf_map_create_opts {
        sz: size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
        ..Default::default()
    };
    MapHandle::create(MapType::RingBuf, Some(name), 0, 0, bytes, &opts)
        .map_err(|e| Error::Ring(format!("creating ring {name} of {size} bytes: {e}")))
}

/// Writes `struct rw_config { self_tgid, flags }` (bpf/common.h).
/// `struct rw_config` (bpf/common.h).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub self_tgid: u32,
    pub flags: u32,
    pub ns_tgid: u32,
    /// The family's index: its bit in the filter sets, its key in rw_uid_loss.
    pub family: u32,
    pub pidns_dev: u64,
    pub pidns_ino: u64,
    pub wakeup_bytes: u64,
    /// Ring shards, and the possible CPUs they divide (see rw_slot in bpf/common.h).
    pub shards: u32,
    pub cpus: u32,
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl plain::Plain for Config {}

/// The initial PID namespace always has this inode number (PROC_PID_INIT_INO).
const INIT_PIDNS_INO: u64 = 0xEFFF_FFFC;

/// Who the daemon is, for the programs' self filter. Outside a PID namespace its pid is
/// the kernel's tgid; inside one, the programs learn the tgid (see rw_learn_self).
fn initial_config(family: Family) -> Config {
    use std::os::unix::fs::MetadataExt;
    let pid = std::process::id();
    let family = family.index() as u32;
    match std::fs::metadata("/proc/self/ns/pid") {
        Ok(m) if m.ino() != INIT_PIDNS_INO => Config {
            ns_tgid: pid,
            pidns_dev: m.dev(),
            pidns_ino: m.ino(),
            family,
            ..Config::default()
        },
        _ => Config {
            self_tgid: pid,
            family,
            ..Config::default()
        },
    }
}

fn write_config(map: &MapHandle, cfg: &Config) -> Result<(), Error> {
    // SAFETY: Config is repr(C) plain data; its bytes are the map value.
    let bytes = unsafe { plain::as_bytes(cfg) };
    map.update(&RW_SLOT.to_ne_bytes(), bytes, MapFlags::ANY)
        .map_err(Error::Bpf)
}

/// Opens the family's compiled object (src/family/objects.rs), or its 5.10 variant.
/// Plain libbpf objects rather than generated skeletons: one loader for every family, not
/// one copy per skeleton type (~100 KB of the stripped binary), and an object owns its
/// storage (no leaked skeleton storage per load).
fn open(family: Family) -> Result<OpenObject, Error> {
    let elf = match variant_510(family) {
        Some(_) => super::objects::get(&variant_object(family))?,
        None => super::objects::get(family.name())?,
    };
    // libbpf is done with the buffer when the open returns (bpf_object__elf_finish).
    ObjectBuilder::default()
        // As the skeletons named it: libbpf derives the internal maps' names from it.
        .name(format!("{family}_bpf"))
        .and_then(|b| b.open_memory(&elf))
        .map_err(|e| Error::Load(format!("opening the {family} BPF object: {e}")))
}

/// Creates the map preallocated if it is a hash declared `BPF_F_NO_PREALLOC` (see
/// [`super::kernel::prealloc_hashes`]).
pub(super) fn preallocate(m: &mut libbpf_rs::OpenMapMut<'_>) -> Result<(), Error> {
    let flags = m.map_flags();
    let no_prealloc = libbpf_rs::libbpf_sys::BPF_F_NO_PREALLOC;
    if m.map_type() != libbpf_rs::MapType::Hash || flags & no_prealloc == 0 {
        return Ok(());
    }
    m.set_map_flags(flags & !no_prealloc)
        .map_err(|e| Error::Load(format!("preallocating {}: {e}", m.name().to_string_lossy())))
}

/// The name of `family`'s 5.10 variant in the embedded objects (build.rs).
fn variant_object(family: Family) -> String {
    format!("{family}.510")
}

/// Why `family`'s 5.10 variant loads here, if it has one and this kernel needs it.
pub(super) fn variant_510(family: Family) -> Option<String> {
    if !super::objects::has(&variant_object(family)) {
        return None;
    }
    super::kernel::Kernel::get().variant_510()
}

/// The verifier's log for `program` as `RINGWARDEN_VERIFIER_LOG` asks (a developer's
/// knob: the start is mostly verification): `stats` gives every program's time and
/// instructions walked (level 4), a program's name its whole walk (levels 2 and 4).
/// libbpf prints it at trace level (`RUST_LOG=libbpf=trace`).
fn verifier_log_level(program: &str) -> Option<u32> {
    match std::env::var("RINGWARDEN_VERIFIER_LOG").ok()?.as_str() {
        "stats" => Some(4),
        name if name == program => Some(2 | 4),
        _ => None,
    }
}

/// Opens and loads the object with only the programs `keep` accepts.
fn open_load(
    family: Family,
    opts: &LoadOptions,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Object, Error> {
    let mut obj = open(family)?;
    for mut p in obj.progs_mut() {
        let name = p.name().to_string_lossy().into_owned();
        if !keep(&name)
            || opts.skip.iter().any(|(n, _)| *n == name)
            || not_applicable(&p.section().to_string_lossy()).is_some()
        {
            p.set_autoload(false);
        }
        if let Some(level) = verifier_log_level(&name) {
            p.set_log_level(level);
        }
    }
    let ring_size = opts.ring_size;
    let (ring_name, stats_name, fill_name, outer_name) = (
        format!("{family}_ring"),
        format!("{family}_stats"),
        format!("{family}_fill"),
        format!("{family}_rings"),
    );
    let prealloc = super::kernel::prealloc_hashes(variant_510(family).is_some());
    for mut m in obj.maps_mut() {
        let name = m.name().to_string_lossy().into_owned();
        if prealloc {
            preallocate(&mut m)?;
        }
        if name == ring_name {
            let size = u32::try_from(ring_size)
                .map_err(|_| Error::Load(format!("{family} ring size {ring_size} is too large")))?;
            m.set_max_entries(size)
                .map_err(|e| Error::Load(format!("setting the {family} ring size: {e}")))?;
        }
        // A slot per shard. Counter maps handed over keep theirs (the shards are fixed
        // for their life), and the outer array follows them.
        if [&stats_name, &fill_name, &outer_name].contains(&&name) {
            let slots = match &opts.reuse {
                Some(shared) => shared.stats.max_entries(),
                None => effective_shards(opts.shards),
            };
            m.set_max_entries(slots)
                .map_err(|e| Error::Load(format!("setting the {family} shards: {e}")))?;
        }
        if let Some(shared) = &opts.reuse {
            let reuse = if name == stats_name {
                Some(&shared.stats)
            } else if name == fill_name {
                Some(&shared.fill)
            } else {
                shared.kept.iter().find(|(n, _)| *n == name).map(|(_, m)| m)
            };
            if let Some(h) = reuse {
                m.reuse_fd(h.as_fd()).map_err(|e| {
                    Error::Load(format!("handing {name} to the new {family} object: {e}"))
                })?;
            }
        }
        if let Some((_, h)) = opts.filter_maps.iter().find(|(n, _)| *n == name) {
            m.reuse_fd(h.as_fd()).map_err(|e| {
                Error::Load(format!(
                    "handing the filter map {name} to the {family} object: {e}"
                ))
            })?;
        }
    }
    obj.load().map_err(Error::Bpf)
}

pub(super) fn load(family: Family, opts: &LoadOptions) -> Result<Loaded, Error> {
    // A program that fails makes the object be opened again: from one decoded copy.
    let _objects = super::objects::hold();
    let mut programs = Vec::new();
    // First try: everything at once (the common case, one verifier pass per program).
    let obj = match open_load(family, opts, &|_| true) {
        Ok(s) => s,
        Err(all_err) => {
            // Find which programs do not load, alone, and load the rest without them.
            let names = program_names(family)?;
            let mut failed = Vec::new();
            for n in &names {
                if let Err(e) = open_load(family, opts, &|p| p == n) {
                    failed.push(n.clone());
                    programs.push(ProgramStatus {
                        name: n.clone(),
                        section: String::new(),
                        error: Some(format!("load failed: {}", first_line(&e.to_string()))),
                        not_applicable: None,
                    });
                }
            }
            if failed.len() == names.len() {
                return Err(Error::Load(format!(
                    "no {family} program loads: {}",
                    first_line(&all_err.to_string())
                )));
            }
            open_load(family, opts, &|p| !failed.iter().any(|f| f == p)).map_err(|e| {
                Error::Load(format!("loading {family} without the failed programs: {e}"))
            })?
        }
    };
    let handle = |name: &str| -> Result<MapHandle, Error> {
        let m = obj
            .maps()
            .find(|m| m.name().to_string_lossy() == name)
            .ok_or_else(|| Error::Map(format!("{family}: the BPF object has no map {name}")))?;
        MapHandle::try_from(&m)
            .map_err(|e| Error::Map(format!("{family}: duplicating map {name}: {e}")))
    };
    let ring = handle(&format!("{family}_ring"))?;
    let outer = handle(&format!("{family}_rings"))?;
    let fill = handle(&format!("{family}_fill"))?;
    let stats = handle(&format!("{family}_stats"))?;
    let config = handle("rw_config")?;
    let shards = add_shards(family, ring, &outer, stats.max_entries(), opts.ring_size)?;
    let mut expected = initial_config(family);
    if opts.context {
        expected.flags |= RW_CONFIG_CONTEXT;
    }
    expected.shards = shards.len() as u32;
    expected.cpus = possible_cpus();
    write_config(&config, &expected)
        .map_err(|e| Error::Map(format!("{family}: writing rw_config: {e}")))?;
    let mut maps = Vec::new();
    let plumbing = [
        format!("{family}_ring"),
        format!("{family}_rings"),
        format!("{family}_stats"),
        format!("{family}_fill"),
    ];
    for m in obj.maps() {
        let name = m.name().to_string_lossy().into_owned();
        // rw_*: the common maps (config, filters), not the family's own.
        if plumbing.contains(&name) || name.starts_with('.') || name.starts_with("rw_") {
            continue;
        }
        maps.push((
            name.clone(),
            MapHandle::try_from(&m)
                .map_err(|e| Error::Map(format!("{family}: map {name}: {e}")))?,
        ));
    }
    init(&maps, opts).map_err(|e| Error::Map(format!("{family}: {e}")))?;
    let syscalls = if maps.iter().any(|(n, _)| n == SYSCALL_FILTER) {
        opts.syscalls.clone()
    } else {
        Vec::new()
    };
    let mut links = Vec::new();
    let mut prog_fds = Vec::new();
    let mut attach = |p: &mut libbpf_rs::ProgramMut<'_>| {
        let name = p.name().to_string_lossy().into_owned();
        let section = p.section().to_string_lossy().into_owned();
        if programs.iter().any(|s: &ProgramStatus| s.name == name) {
            if let Some(s) = programs.iter_mut().find(|s| s.name == name) {
                s.section = section;
            }
            return;
        }
        let off = opts
            .skip
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, w)| w.clone());
        if let Some(why) = off.or_else(|| not_applicable(&section)) {
            programs.push(ProgramStatus {
                name,
                section,
                error: None,
                not_applicable: Some(why),
            });
            return;
        }
        // A flow counted on the packet hooks is closed by sock_release: without it, the
        // counts could never be reported (sock_release attaches first, below).
        let release_missing = section.starts_with("cgroup_skb/")
            && !programs
                .iter()
                .any(|s| s.section == "cgroup/sock_release" && s.error.is_none());
        let attached = if release_missing {
            Err("cgroup/sock_release, which closes its flows, did not attach".to_string())
        } else if section.starts_with("cgroup") {
            attach_cgroup(p)
        } else if let Some(u) = uprobe_target(&section) {
            match attach_uprobes(p, &u) {
                Ok(mut l) => {
                    let last = l.pop();
                    links.append(&mut l);
                    last.ok_or_else(|| format!("no {} to attach to", u.lib))
                }
                Err(Missing::Symbol(why)) => {
                    programs.push(ProgramStatus {
                        name,
                        section,
                        error: None,
                        not_applicable: Some(why),
                    });
                    return;
                }
                Err(Missing::Attach(e)) => Err(e),
            }
        } else {
            p.attach()
                .map_err(|e| first_line(&format!("{e:#}")).to_string())
        };
        let error = match attached {
            Ok(link) => {
                links.push(link);
                // A fd of its own (the object is dropped after attaching) to ask the
                // kernel for the program's run statistics; without one, none are shown.
                if let Ok(fd) = p.as_fd().try_clone_to_owned() {
                    prog_fds.push((name.clone(), fd));
                }
                None
            }
            Err(e) => Some(format!("attach failed: {e}")),
        };
        programs.push(ProgramStatus {
            name,
            section,
            error,
            not_applicable: None,
        });
    };
    // Syscall exits first: every syscall entry a program sees then has its exit seen, so
    // no entry is left waiting for an exit that never comes (which a later exit of the
    // same thread would be paired with); thread exits with them, so a thread that ends
    // inside a call leaves nothing in a 5.10 variant's per-thread hash. Then the socket hooks (cgroup/sock_*) before the
    // packet hooks: every flow a packet hook starts has its socket's release seen.
    for pass in 0..3 {
        for mut p in obj.progs_mut() {
            if attach_pass(&p.section().to_string_lossy()) == pass {
                attach(&mut p);
            }
        }
    }
    // Programs failed and none attached (the rest not applicable): the family does not
    // run, rather than a ring that nothing writes to (tls on 5.10).
    let failed: Vec<String> = programs
        .iter()
        .filter_map(|p| Some(format!("{}: {}", p.name, p.error.as_deref()?)))
        .collect();
    if !failed.is_empty() && !programs.iter().any(ProgramStatus::attached) {
        return Err(Error::Load(format!(
            "no {family} program runs ({})",
            failed.join("; ")
        )));
    }
    Ok(Loaded {
        family,
        shards,
        stats,
        config,
        expected: Cell::new(expected),
        unreported: RefCell::new(Vec::new()),
        outer,
        fill,
        maps,
        syscalls,
        programs,
        variant_510: variant_510(family),
        links,
        prog_fds,
    })
}

/// The shards' rings: the object's own in slot 0, and one created for every further
/// slot of the counter maps (`slots`: how many the loaded, or handed-on, maps have).
fn add_shards(
    family: Family,
    ring: MapHandle,
    outer: &MapHandle,
    slots: u32,
    size: u64,
) -> Result<Vec<Shard>, Error> {
    let mut shards = vec![Shard::new(ring)];
    for slot in 1..slots.clamp(1, MAX_SHARDS) {
        let r = create_ring(&format!("{family}_ring"), size)?;
        let fd = r.as_fd().as_raw_fd() as u32;
        outer
            .update(&slot.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| Error::Ring(format!("{family}: ring shard {slot}: {e}")))?;
        shards.push(Shard::new(r));
    }
    Ok(shards)
}

/// CPU ids run from 0 to this (exclusive); `rw_slot` divides them among the shards.
pub fn possible_cpus() -> u32 {
    libbpf_rs::num_possible_cpus().map_or(1, |n| n.max(1) as u32)
}

/// The shards a family gets for `wanted`: at most one per CPU (a shard no CPU writes
/// would only cost memory), at most [`MAX_SHARDS`].
pub fn effective_shards(wanted: u32) -> u32 {
    wanted.clamp(1, MAX_SHARDS).min(possible_cpus())
}

/// Attaches a cgroup program (`cgroup_skb/...`, `cgroup/sock_...`) to the root of the
/// cgroup v2 hierarchy: every socket of the host is in it or below it.
fn attach_cgroup(p: &mut libbpf_rs::ProgramMut<'_>) -> Result<Link, String> {
    let root = crate::context::cgroups::find_mount()
        .ok_or_else(|| "no cgroup v2 hierarchy is mounted".to_string())?;
    let dir = std::fs::File::open(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    p.attach_cgroup(dir.as_raw_fd())
        .map_err(|e| first_line(&format!("{e:#}")).to_string())
}

/// A uprobe section as the programs name their targets, `uprobe/LIB:F1,F2,...` (or
/// `uretprobe/`, `uprobe.multi/`, `uretprobe.multi/`). Function N of the list gets cookie
/// N + 1, which the program reads to know which function it is in.
struct Uprobes<'a> {
    lib: &'a str,
    funcs: Vec<&'a str>,
    retprobe: bool,
    /// One uprobe_multi link for every function (kernel 6.6 on), else a link per function.
    multi: bool,
}

fn uprobe_target(section: &str) -> Option<Uprobes<'_>> {
    let (kind, rest) = section.split_once('/')?;
    let (retprobe, multi) = match kind {
        "uprobe" => (false, false),
        "uretprobe" => (true, false),
        "uprobe.multi" => (false, true),
        "uretprobe.multi" => (true, true),
        _ => return None,
    };
    let (lib, funcs) = rest.split_once(':')?;
    Some(Uprobes {
        lib,
        funcs: funcs.split(',').collect(),
        retprobe,
        multi,
    })
}

/// Whether the kernel attaches many uprobes with one link (BPF_TRACE_UPROBE_MULTI, 6.6):
/// its BTF has the link's type.
fn has_uprobe_multi() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::fs::read("/sys/kernel/btf/vmlinux").is_ok_and(|b| {
            let name = b"\0bpf_uprobe_multi_link\0";
            b.windows(name.len()).any(|w| w == name)
        })
    })
}

/// Why a uprobe program has nothing to attach to, or failed to.
enum Missing {
    /// Not applicable: no such library on the host, or its files lack a function.
    Symbol(String),
    Attach(String),
}

/// Why a uprobe program does not run here: the kernel's other variant runs, or there is
/// no such library.
fn uprobe_not_applicable(u: &Uprobes<'_>) -> Option<String> {
    if u.multi != has_uprobe_multi() {
        return Some(if u.multi {
            "this kernel has no uprobe_multi links (6.6): one uprobe per function runs instead"
                .to_string()
        } else {
            "the kernel's uprobe_multi link attaches these functions at once".to_string()
        });
    }
    uprobe_files(u.lib).err()
}

/// The files of `lib` the linker cache names, or why there are none.
fn uprobe_files(lib: &str) -> Result<Vec<std::path::PathBuf>, String> {
    let files = sys::ldcache::find(std::path::Path::new(sys::ldcache::CACHE), lib);
    if files.is_empty() {
        return Err(format!(
            "no {lib} on this host (none in the linker cache, {})",
            sys::ldcache::CACHE
        ));
    }
    Ok(files)
}

/// Attaches a uprobe program to its functions in every file of its library (a host may
/// have two OpenSSL versions): the links, or why none attached. A file that lacks one
/// of the functions is skipped; if every file does, the program is not applicable.
fn attach_uprobes(
    p: &mut libbpf_rs::ProgramMut<'_>,
    u: &Uprobes<'_>,
) -> Result<Vec<Link>, Missing> {
    let files = uprobe_files(u.lib).map_err(Missing::Symbol)?;
    let mut links = Vec::new();
    let mut failures = Vec::new();
    let mut lacking = Vec::new();
    for f in &files {
        let attach = || -> Result<Vec<Link>, libbpf_rs::Error> {
            if u.multi {
                // Offsets, not names: libbpf's name lookup for uprobe_multi fails here.
                let b = std::fs::read(f).map_err(|e| {
                    libbpf_rs::Error::from(std::io::Error::new(
                        e.kind(),
                        format!("{}: {e}", f.display()),
                    ))
                })?;
                let offsets = sys::elf::function_offsets(&b, &u.funcs);
                let Some(offsets) = offsets
                    .into_iter()
                    .map(|o| o.and_then(|o| usize::try_from(o).ok()))
                    .collect::<Option<Vec<usize>>>()
                else {
                    return Err(libbpf_rs::Error::from(std::io::Error::from(
                        std::io::ErrorKind::NotFound,
                    )));
                };
                let opts = libbpf_rs::UprobeMultiOpts {
                    offsets,
                    cookies: (1..=u.funcs.len() as u64).collect(),
                    retprobe: u.retprobe,
                    ..Default::default()
                };
                return Ok(vec![p.attach_uprobe_multi_with_opts(-1, f, "", opts)?]);
            }
            let mut one = Vec::new();
            for (i, func) in u.funcs.iter().enumerate() {
                let opts = libbpf_rs::UprobeOpts {
                    retprobe: u.retprobe,
                    func_name: Some(func.to_string()),
                    cookie: i as u64 + 1,
                    ..Default::default()
                };
                one.push(p.attach_uprobe_with_opts(-1, f, 0, opts)?);
            }
            Ok(one)
        };
        match attach() {
            Ok(mut l) => links.append(&mut l),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => {
                log::debug!("{}: {e:#}", f.display());
                lacking.push(f.display().to_string())
            }
            Err(e) => failures.push(format!(
                "{}: {}",
                f.display(),
                first_line(&format!("{e:#}"))
            )),
        }
    }
    if !links.is_empty() {
        return Ok(links);
    }
    if lacking.len() == files.len() {
        return Err(Missing::Symbol(format!(
            "{} lacks one of {}",
            lacking.join(", "),
            u.funcs.join(", ")
        )));
    }
    Err(Missing::Attach(failures.join("; ")))
}

/// When a program of this section attaches: 0 syscall, thread and function exits, 1
/// socket hooks, 2 the rest.
fn attach_pass(section: &str) -> u8 {
    if syscall_exit(section)
        || section.starts_with("uretprobe")
        || section == "tp_btf/sched_process_exit"
    {
        0
    } else if section.starts_with("cgroup/") {
        1
    } else {
        2
    }
}

/// Whether a program's section is a syscall's exit (`tracepoint/syscalls/sys_exit_open`,
/// `tp_btf/sys_exit`).
fn syscall_exit(section: &str) -> bool {
    section
        .rsplit('/')
        .next()
        .is_some_and(|t| t.starts_with("sys_exit"))
}

/// The map a family declares to take the configured syscall set (see
/// [`set_syscall_filter`]); a family without one ignores the set.
const SYSCALL_FILTER: &str = "syscall_filter";

/// Settings written into the family's own maps, before anything is attached.
fn init(maps: &[(String, MapHandle)], opts: &LoadOptions) -> Result<(), Error> {
    write_values(maps, &opts.map_values)?;
    match maps.iter().find(|(n, _)| n == SYSCALL_FILTER) {
        Some((_, m)) => set_syscall_filter(m, &opts.syscalls).map_err(|(_, e)| e),
        None => Ok(()),
    }
}

/// Writes each (map name, value) into key 0 of that map of the family's.
fn write_values(
    maps: &[(String, MapHandle)],
    values: &[(&'static str, Vec<u8>)],
) -> Result<(), Error> {
    for (name, value) in values {
        let (_, m) = maps
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| Error::Map(format!("the BPF object has no map {name}")))?;
        m.update(&0u32.to_ne_bytes(), value, MapFlags::ANY)
            .map_err(|e| Error::Map(format!("writing {name}: {e}")))?;
    }
    Ok(())
}

/// Makes the syscall family report exactly `nrs` (numbers >= `syscalls::MAX_NR` are
/// ignored), and count the compat syscalls of `syscall::COMPAT_WATCHED`. The filter is a map: a loaded family takes a new set without a reload
/// (`loaded.map("syscall_filter")`).
/// The set a filter holds after writing `new` over `old` up to (not including) entry `upto`.
fn partly_written(old: &[u32], new: &[u32], upto: u32) -> Vec<u32> {
    let mut set: Vec<u32> = new.iter().copied().filter(|&nr| nr < upto).collect();
    set.extend(old.iter().copied().filter(|&nr| nr >= upto));
    set
}

/// Entries are written in ascending order; a failure names the first entry not written.
fn set_syscall_filter(filter: &MapHandle, nrs: &[u32]) -> Result<(), (u32, Error)> {
    for nr in 0..super::syscalls::MAX_NR {
        let on = super::syscall::filter_entry(nr, nrs.contains(&nr));
        filter
            .update(&nr.to_ne_bytes(), &[on], MapFlags::ANY)
            .map_err(|e| {
                (
                    nr,
                    Error::Map(format!("writing {SYSCALL_FILTER}[{nr}]: {e}")),
                )
            })?;
    }
    Ok(())
}

/// A program on the tracepoint of a syscall this kernel does not implement (no
/// `events/syscalls/sys_enter_NAME` in a mounted tracefs: e.g. init_module on a kernel
/// without module support, open on arm64) has nothing to watch: nobody can make that
/// call. It is left out and reported as not applicable rather than failed.
fn not_applicable(section: &str) -> Option<String> {
    if let Some(u) = uprobe_target(section) {
        return uprobe_not_applicable(&u);
    }
    if let Some(tp) = section.strip_prefix("tracepoint/io_uring/") {
        return io_uring_not_applicable(tp);
    }
    let event = section.strip_prefix("tracepoint/syscalls/")?;
    let dir = sys::tracefs_dir()?.join("events/syscalls");
    if !dir.is_dir() || dir.join(event).is_dir() {
        return None;
    }
    let call = event
        .strip_prefix("sys_enter_")
        .or_else(|| event.strip_prefix("sys_exit_"))
        .unwrap_or(event);
    Some(format!(
        "this kernel has no {call} syscall (no tracepoint {event})"
    ))
}

/// The io_uring submission tracepoint is io_uring_submit_req from 6.3 on and
/// io_uring_submit_sqe before: the syscall family has a program for each, and the one
/// this kernel lacks is not applicable. Without tracefs both are tried.
fn io_uring_not_applicable(tp: &str) -> Option<String> {
    const TPS: [&str; 2] = ["io_uring_submit_req", "io_uring_submit_sqe"];
    let dir = sys::tracefs_dir()?.join("events/io_uring");
    if dir.join(tp).is_dir() {
        return None;
    }
    if let Some(other) = TPS.iter().find(|&&o| o != tp && dir.join(o).is_dir()) {
        return Some(format!(
            "this kernel's io_uring submissions are counted on tracepoint {other} (no {tp})"
        ));
    }
    if !dir.is_dir() {
        return Some("this kernel has no io_uring (no io_uring tracepoints)".to_string());
    }
    Some(format!(
        "this kernel has no tracepoint for io_uring submissions ({}): not counted",
        TPS.join(", ")
    ))
}

fn program_names(family: Family) -> Result<Vec<String>, Error> {
    Ok(open(family)?
        .progs()
        .map(|p| p.name().to_string_lossy().into_owned())
        .collect())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Size and member offsets (bytes) of a struct in a family's BPF object, read from
/// the object's BTF: what the C compiler laid out, for the layout tests of the mirrors.
#[cfg(test)]
pub(super) fn c_layout(family: Family, name: &str) -> Option<(usize, Vec<(String, usize)>)> {
    use libbpf_rs::btf::HasSize;
    use libbpf_rs::btf::types::{MemberAttr, Struct};
    with_btf(family, |btf| {
        let s: Struct = btf.type_by_name(name)?;
        let members = s
            .iter()
            .map(|m| {
                let off = match m.attr {
                    MemberAttr::Normal { offset } | MemberAttr::BitField { offset, .. } => offset,
                };
                (
                    m.name
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    off as usize / 8,
                )
            })
            .collect();
        Some((s.size(), members))
    })
}

/// The members of a C enum in a family's BPF object, read from its BTF: for the tests
/// that keep the Rust constants equal to the C ones.
#[cfg(test)]
pub(super) fn c_enum(family: Family, name: &str) -> Option<Vec<(String, i64)>> {
    use libbpf_rs::btf::types::Enum;
    with_btf(family, |btf| {
        let e: Enum = btf.type_by_name(name)?;
        Some(
            e.iter()
                .map(|m| {
                    (
                        m.name
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        m.value,
                    )
                })
                .collect(),
        )
    })
}

/// The BTF of the family's object as build.rs compiled it for these tests (with
/// RW_LAYOUT_BTF: record layouts and enums included).
#[cfg(test)]
fn with_btf<T>(family: Family, f: impl FnOnce(&libbpf_rs::btf::Btf<'_>) -> Option<T>) -> Option<T> {
    let path = std::path::Path::new(env!("OUT_DIR")).join(format!("{family}.layout.o"));
    let btf = libbpf_rs::btf::Btf::from_path(path).ok()?;
    f(&btf)
}

/// Asserts that a Rust mirror has the C struct's size and every member at the C offset.
#[cfg(test)]
#[macro_export]
macro_rules! assert_layout {
    ($family:expr, $cname:literal, $ty:ty, [$($field:ident),* $(,)?]) => {{
        let (size, members) = $family.c_layout($cname)
            .unwrap_or_else(|| panic!("struct {} not in the {} BPF object", $cname, $family));
        assert_eq!(std::mem::size_of::<$ty>(), size, "size of {}", $cname);
        let rust: Vec<(String, usize)> = vec![
            $((stringify!($field).to_string(), std::mem::offset_of!($ty, $field))),*
        ];
        let rust: Vec<(String, usize)> = rust
            .into_iter()
            .map(|(n, o)| (if n == "kind" { "type".to_string() } else { n }, o))
            .collect();
        assert_eq!(rust, members, "members of {}", $cname);
    }};
}

/// Asserts that a C enum of a family's BPF object has exactly these members and values
/// (`RW_EXEC = kind::EXEC`, ...): a constant shared by C and Rust cannot drift.
#[cfg(test)]
#[macro_export]
macro_rules! assert_enum {
    ($family:expr, $cname:literal, [$($member:ident = $value:expr),* $(,)?]) => {{
        let c = $family.c_enum($cname)
            .unwrap_or_else(|| panic!("enum {} not in the {} BPF object", $cname, $family));
        let rust: Vec<(String, i64)> = vec![$((stringify!($member).to_string(), i64::from($value))),*];
        assert_eq!(rust, c, "enum {}", $cname);
    }};
}

/// Turns on the kernel's BPF run-time statistics (run counts and time per program) for
/// as long as the returned fd is open (BPF_ENABLE_STATS); they cost every program run
/// two clock reads, so only `[metrics] program_stats` asks for them.
pub fn enable_run_stats() -> Result<OwnedFd, String> {
    // SAFETY: a plain syscall wrapper; it returns a new fd or -errno.
    let fd = unsafe {
        libbpf_rs::libbpf_sys::bpf_enable_stats(libbpf_rs::libbpf_sys::BPF_STATS_RUN_TIME)
    };
    if fd < 0 {
        return Err(std::io::Error::from_raw_os_error(-fd).to_string());
    }
    // SAFETY: the fd was just made for us and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// (run_cnt, run_time_ns) of the program `fd`, from BPF_OBJ_GET_INFO_BY_FD without any
/// of the arrays (instructions, maps), so one cheap syscall.
fn prog_run_stats(fd: BorrowedFd<'_>) -> Option<(u64, u64)> {
    let mut info = libbpf_rs::libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of_val(&info) as u32;
    // SAFETY: `info` is a zeroed bpf_prog_info of `len` bytes: its array pointers are
    // null, so the kernel fills only the scalar fields.
    let r = unsafe {
        libbpf_rs::libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len)
    };
    (r == 0).then_some((info.run_cnt, info.run_time_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entry 5 is fstat for the report bit but ia32 open for the compat bit: each
    /// changed bit is its own finding, named after the syscall it concerns.
    /// A write that failed at entry 100: below it the new set, from it on the old one.
    #[test]
    fn partly_written_filter_is_what_the_kernel_holds() {
        assert_eq!(
            partly_written(&[1, 150, 200], &[2, 120], 100),
            vec![2, 150, 200]
        );
        assert_eq!(partly_written(&[1, 150], &[2, 120], u32::MAX), vec![2, 120]);
        assert_eq!(partly_written(&[1, 150], &[2, 120], 0), vec![1, 150]);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn filter_findings_name_the_changed_bit() {
        let got = |want, on| filter_bit_changes(5, want, on).collect::<Vec<_>>();
        assert_eq!(got(3, 3), vec![]);
        assert_eq!(got(3, 2), vec![("fstat".to_string(), 1, 0)]);
        assert_eq!(got(2, 0), vec![("compat:open".to_string(), 1, 0)]);
        assert_eq!(
            got(2, 1),
            vec![
                ("fstat".to_string(), 0, 1),
                ("compat:open".to_string(), 1, 0)
            ]
        );
        assert_eq!(got(3, 0x83), vec![("fstat:other".to_string(), 0, 0x80)]);
    }

    #[test]
    fn counters_mirror_c() {
        for &f in Family::ALL {
            crate::assert_layout!(
                f,
                "rw_counters",
                Counters,
                [produced, dropped, untracked, filtered, rate_limited]
            );
            crate::assert_layout!(
                f,
                "rw_config",
                Config,
                [
                    self_tgid,
                    flags,
                    ns_tgid,
                    family,
                    pidns_dev,
                    pidns_ino,
                    wakeup_bytes,
                    shards,
                    cpus
                ]
            );
        }
    }

    #[test]
    fn common_constants_match_c() {
        for &f in Family::ALL {
            crate::assert_enum!(
                f,
                "rw_config_flags",
                [
                    RW_CONFIG_STOPPED = RW_CONFIG_STOPPED,
                    RW_CONFIG_CONTEXT = RW_CONFIG_CONTEXT
                ]
            );
            crate::assert_enum!(
                f,
                "rw_slots",
                [RW_SLOT = RW_SLOT, RW_RING_SLOTS = RW_RING_SLOTS]
            );
        }
    }
}
