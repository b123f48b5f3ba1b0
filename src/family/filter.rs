//! In-kernel filters (bpf/filter.h): the rules a user sets, how they are written into the
//! maps the programs judge events by, and the filter object that owns those maps and
//! follows pid trees through fork (bpf/filter.bpf.c). Every family's object is handed
//! the same maps at load ([`Filters::maps`]); a filtered event takes no ring space and no
//! seq, and is counted (`rw_counters.filtered`, and per uid: [`Filters::losses`]).
//!
//! Rules come in two generations: a new set is written into the one not in use and made
//! current by one map write, so that no event is judged by half of each.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, Object, ObjectBuilder};

use super::Family;
use super::loader::Error;

/// Entries per list (the floor: 64 path prefixes and 64 CIDRs per family).
pub const MAX_LIST: usize = 64;
/// Bytes of a path compared (RW_FILTER_PATH_LEN in bpf/filter.h: an LPM trie's key data
/// is at most 256 bytes).
pub const PATH_LEN: usize = 250;
/// Bytes of a comm the kernel keeps, without its NUL (TASK_COMM_LEN - 1).
pub const COMM_LEN: usize = 15;

/// `enum rw_filter_bits`.
pub mod bits {
    pub const INCLUDE_COMM: u32 = 1 << 0;
    pub const EXCLUDE_COMM: u32 = 1 << 1;
    pub const INCLUDE_UID: u32 = 1 << 2;
    pub const EXCLUDE_UID: u32 = 1 << 3;
    pub const INCLUDE_CGROUP: u32 = 1 << 4;
    pub const EXCLUDE_CGROUP: u32 = 1 << 5;
    pub const INCLUDE_TREE: u32 = 1 << 6;
    pub const INCLUDE_PATH: u32 = 1 << 7;
    pub const EXCLUDE_PATH: u32 = 1 << 8;
    pub const ONLY_WRITES: u32 = 1 << 9;
    pub const INCLUDE_PORT: u32 = 1 << 10;
    pub const EXCLUDE_PORT: u32 = 1 << 11;
    pub const INCLUDE_CIDR: u32 = 1 << 12;
    pub const EXCLUDE_CIDR: u32 = 1 << 13;
    pub const TASK: u32 = (1 << 7) - 1;
}

/// `enum rw_filter_list`.
const INCLUDE: u8 = 0;
const EXCLUDE: u8 = 1;

/// RW_LOSS_SLOTS: each family's slots in rw_uid_loss_slots.
const LOSS_SLOTS: usize = 256;

/// RW_LOSS_OTHER: the uid that takes the counts no room was left for.
pub const LOSS_OTHER: u32 = u32::MAX;

/// A comm to match: the whole name, or a prefix (written with a trailing `*`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommPattern {
    pub text: String,
    pub prefix: bool,
}

impl CommPattern {
    /// `"name"` or `"prefix*"`; the kernel keeps 15 bytes of a name, so a longer one
    /// would never match.
    pub fn parse(s: &str) -> Result<CommPattern, String> {
        let (text, prefix) = match s.strip_suffix('*') {
            Some(t) => (t, true),
            None => (s, false),
        };
        if text.is_empty() {
            return Err(format!(
                "{s:?} matches every process; remove it (or the list)"
            ));
        }
        if text.contains('*') {
            return Err(format!(
                "{s:?}: only a trailing * is understood (a prefix), like \"prometheus*\""
            ));
        }
        if text.contains('\0') {
            return Err(format!("{s:?} contains a NUL byte"));
        }
        if text.len() > COMM_LEN {
            return Err(format!(
                "{s:?} is longer than the {COMM_LEN} bytes the kernel keeps of a process name; write its first {COMM_LEN} bytes (as `ps -o comm` shows it)"
            ));
        }
        Ok(CommPattern {
            text: text.to_string(),
            prefix,
        })
    }
}

impl std::fmt::Display for CommPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.text, if self.prefix { "*" } else { "" })
    }
}

/// An address range: `addr` (IPv6, or IPv4 as ::ffff:a.b.c.d) and its prefix length in
/// those 128 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cidr {
    pub addr: [u8; 16],
    pub len: u8,
    /// Written as IPv4 (for display).
    pub v4: bool,
}

impl Cidr {
    /// `10.0.0.0/8`, `fd00::/8`, or an address alone (a single host). Host bits must be
    /// zero: `10.0.0.1/8` is refused (it would look narrower than it is).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = a.parse().map_err(|_| {
            format!("{s:?} is not an address range; write it like \"10.0.0.0/8\" or \"fd00::/8\"")
        })?;
        let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        let (addr, full) = match ip {
            IpAddr::V4(v4) => (v4.to_ipv6_mapped().octets(), len + 96),
            IpAddr::V6(v6) => (v6.octets(), len),
        };
        let host =
            u128::from_be_bytes(addr) & (u128::MAX.checked_shr(u32::from(full)).unwrap_or(0));
        if host != 0 {
            return Err(format!(
                "{s:?} has bits set past its /{len}; write the range's first address (like \"10.0.0.0/8\")"
            ));
        }
        Ok(Cidr {
            addr,
            len: full,
            v4: ip.is_ipv4(),
        })
    }
}

/// A uid or an inclusive range of uids.
pub type UidRange = (u32, u32);

/// A rate limit: `count` events per `period_ns`, in a bucket that holds one period's
/// worth (a burst of `count` passes at once, then `count` per period).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u64,
    pub period_ns: u64,
}

impl Rate {
    /// `"20000/s"`, `"600/m"`, `"100/h"`.
    pub fn parse(s: &str) -> Result<Rate, String> {
        let bad = || {
            format!(
                "{s:?} is not a rate; write events per second, minute or hour, like \"20000/s\", \"600/m\" or \"100/h\""
            )
        };
        let (n, per) = s.split_once('/').ok_or_else(bad)?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        let period_ns = match per.trim() {
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(format!(
                "{s:?} lets nothing through; leave the family out of the ring list (--only) or remove the limit"
            ));
        }
        if count > period_ns {
            return Err(format!(
                "{s:?} is more than one event per nanosecond; remove the limit"
            ));
        }
        Ok(Rate { count, period_ns })
    }

    /// `struct rw_rate`: GCRA's interval and tolerance.
    fn gcra(&self) -> (u64, u64) {
        let interval = self.period_ns / self.count;
        (interval, interval * (self.count - 1))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per = match self.period_ns {
            1_000_000_000 => "s",
            60_000_000_000 => "m",
            _ => "h",
        };
        write!(f, "{}/{per}", self.count)
    }
}

/// `"1000-60000"`, `"1000"` or a number.
pub fn parse_uid_range(s: &str) -> Result<UidRange, String> {
    let num = |t: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| format!("{s:?} is not a uid or a range; write 1000 or \"1000-60000\""))
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(s)?, num(s)?),
    };
    if lo > hi {
        return Err(format!(
            "{s:?} has its first uid above its last; write \"{hi}-{lo}\""
        ));
    }
    Ok((lo, hi))
}

/// A path prefix (file rules) or a cgroup path (cgroup rules): absolute, and short
/// enough to be compared.
pub fn check_path(s: &str, what: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("an empty {what} matches everything; remove it"));
    }
    if s.contains('*') || s.contains('?') {
        return Err(format!(
            "{s:?}: a {what} is a plain prefix, not a pattern; write \"{}\"",
            s.split(['*', '?']).next().unwrap_or("/")
        ));
    }
    if !s.starts_with('/') {
        return Err(format!("{s:?} is not absolute; {what}s start with /"));
    }
    if s.len() > PATH_LEN - 1 {
        return Err(format!(
            "{s:?} is longer than the {} bytes compared; shorten the {what}",
            PATH_LEN - 1
        ));
    }
    if s.contains('\0') {
        return Err(format!("{s:?} contains a NUL byte"));
    }
    Ok(())
}

/// Every rule, as the configuration gives them. Empty lists are no rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// The families the task rules (comm, uid, cgroup, pid tree) apply to: every family
    /// but anomaly unless the configuration names them.
    pub families: Vec<Family>,
    pub include_comm: Vec<CommPattern>,
    pub exclude_comm: Vec<CommPattern>,
    pub include_uid: Vec<UidRange>,
    pub exclude_uid: Vec<UidRange>,
    pub include_cgroup: Vec<String>,
    pub exclude_cgroup: Vec<String>,
    pub include_pid_tree: Vec<u32>,
    pub include_path: Vec<String>,
    pub exclude_path: Vec<String>,
    pub only_writes: bool,
    pub include_port: Vec<u16>,
    pub exclude_port: Vec<u16>,
    pub include_cidr: Vec<Cidr>,
    pub exclude_cidr: Vec<Cidr>,
    /// `[rate_limit] FAMILY`: one bucket for the family.
    pub rate_family: Vec<(Family, Rate)>,
    /// `[rate_limit] per_uid`: a bucket per (family, uid), for the families the task
    /// rules apply to.
    pub rate_per_uid: Option<Rate>,
}

/// The families the task rules apply to when the configuration does not say.
pub fn default_families() -> Vec<Family> {
    Family::ALL
        .iter()
        .copied()
        .filter(|f| *f != Family::Anomaly)
        .collect()
}

impl Rules {
    /// No rule at all: what the daemon runs with unless told otherwise.
    pub fn none() -> Rules {
        Rules {
            families: default_families(),
            ..Rules::default()
        }
    }

    /// `enum rw_filter_bits` of the rules set.
    pub fn bits(&self) -> u32 {
        let mut b = 0;
        let mut set = |on: bool, bit: u32| {
            if on {
                b |= bit;
            }
        };
        set(!self.include_comm.is_empty(), bits::INCLUDE_COMM);
        set(!self.exclude_comm.is_empty(), bits::EXCLUDE_COMM);
        set(!self.include_uid.is_empty(), bits::INCLUDE_UID);
        set(!self.exclude_uid.is_empty(), bits::EXCLUDE_UID);
        set(!self.include_cgroup.is_empty(), bits::INCLUDE_CGROUP);
        set(!self.exclude_cgroup.is_empty(), bits::EXCLUDE_CGROUP);
        set(!self.include_pid_tree.is_empty(), bits::INCLUDE_TREE);
        set(!self.include_path.is_empty(), bits::INCLUDE_PATH);
        set(!self.exclude_path.is_empty(), bits::EXCLUDE_PATH);
        set(self.only_writes, bits::ONLY_WRITES);
        set(!self.include_port.is_empty(), bits::INCLUDE_PORT);
        set(!self.exclude_port.is_empty(), bits::EXCLUDE_PORT);
        set(!self.include_cidr.is_empty(), bits::INCLUDE_CIDR);
        set(!self.exclude_cidr.is_empty(), bits::EXCLUDE_CIDR);
        b
    }

    /// No filter and no rate limit.
    pub fn is_empty(&self) -> bool {
        self.bits() == 0 && !self.limits_rate()
    }

    pub fn limits_rate(&self) -> bool {
        !self.rate_family.is_empty() || self.rate_per_uid.is_some()
    }

    /// One line for the log: what is filtered.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "none".to_string();
        }
        let mut parts = Vec::new();
        let mut list = |name: &str, items: Vec<String>| {
            if !items.is_empty() {
                parts.push(format!("{name}={}", items.join(",")));
            }
        };
        let uids = |v: &[UidRange]| {
            v.iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect()
        };
        let cidrs = |v: &[Cidr]| v.iter().map(cidr_text).collect();
        list("include_comm", texts(&self.include_comm));
        list("exclude_comm", texts(&self.exclude_comm));
        list("include_uid", uids(&self.include_uid));
        list("exclude_uid", uids(&self.exclude_uid));
        list("include_cgroup", self.include_cgroup.clone());
        list("exclude_cgroup", self.exclude_cgroup.clone());
        list("include_pid_tree", texts(&self.include_pid_tree));
        list("file.include_path", self.include_path.clone());
        list("file.exclude_path", self.exclude_path.clone());
        list(
            "file.only_writes",
            texts(&[self.only_writes][..usize::from(self.only_writes)]),
        );
        list("network.include_port", texts(&self.include_port));
        list("network.exclude_port", texts(&self.exclude_port));
        list("network.include_cidr", cidrs(&self.include_cidr));
        list("network.exclude_cidr", cidrs(&self.exclude_cidr));
        list(
            "rate_limit",
            self.rate_family
                .iter()
                .map(|(f, r)| format!("{f}={r}"))
                .chain(self.rate_per_uid.map(|r| format!("per_uid={r}")))
                .collect(),
        );
        if self.bits() & bits::TASK != 0 || self.rate_per_uid.is_some() {
            list(
                "families",
                self.families.iter().map(|f| f.name().to_string()).collect(),
            );
        }
        parts.join(" ")
    }
}

fn texts<T: std::fmt::Display>(v: &[T]) -> Vec<String> {
    v.iter().map(T::to_string).collect()
}

fn cidr_text(c: &Cidr) -> String {
    if c.v4 {
        let a = &c.addr[12..];
        format!("{}.{}.{}.{}/{}", a[0], a[1], a[2], a[3], c.len - 96)
    } else {
        format!("{}/{}", std::net::Ipv6Addr::from(c.addr), c.len)
    }
}

/// The prefixes (value, bits) that cover [lo, hi] exactly: a uid range in an LPM trie.
pub fn range_prefixes(lo: u32, hi: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let (mut a, hi) = (u64::from(lo), u64::from(hi));
    while a <= hi {
        // The largest aligned block starting at a that stays within hi.
        let mut size: u64 = if a == 0 {
            1 << 32
        } else {
            1 << a.trailing_zeros().min(32)
        };
        while a + size - 1 > hi {
            size >>= 1;
        }
        out.push((a as u32, 32 - size.trailing_zeros()));
        a += size;
    }
    out
}

/// The maps' entries for one generation, by map name: (key, value) pairs.
fn entries(rules: &Rules, generation: u8) -> Vec<(&'static str, Vec<u8>)> {
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    // LPM keys: u32 prefixlen (bits after it, generation and list included), generation, list, data,
    // zero-padded to the key's size.
    let lpm = |size: usize, list: u8, data: &[u8], bits: u32| {
        let mut k = vec![0u8; size];
        k[..4].copy_from_slice(&(16 + bits).to_ne_bytes());
        k[4] = generation;
        k[5] = list;
        k[6..6 + data.len()].copy_from_slice(data);
        k
    };
    const COMM_KEY: usize = 24;
    const UID_KEY: usize = 12;
    const PATH_KEY: usize = 256;
    const ADDR_KEY: usize = 24;
    for (list, v) in [
        (INCLUDE, &rules.include_comm),
        (EXCLUDE, &rules.exclude_comm),
    ] {
        for c in v {
            let mut data = c.text.as_bytes().to_vec();
            if !c.prefix {
                data.push(0);
            }
            let bits = 8 * data.len() as u32;
            out.push(("rw_filter_comm", lpm(COMM_KEY, list, &data, bits)));
        }
    }
    for (list, v) in [(INCLUDE, &rules.include_uid), (EXCLUDE, &rules.exclude_uid)] {
        for &(lo, hi) in v {
            for (p, bits) in range_prefixes(lo, hi) {
                out.push(("rw_filter_uid", lpm(UID_KEY, list, &p.to_be_bytes(), bits)));
            }
        }
    }
    for (list, v) in [
        (INCLUDE, &rules.include_cgroup),
        (EXCLUDE, &rules.exclude_cgroup),
    ] {
        for p in v {
            let p = p.trim_end_matches('/');
            if p.is_empty() {
                // The root: every cgroup.
                out.push(("rw_filter_cgroup", lpm(PATH_KEY, list, b"/", 8)));
                continue;
            }
            // The cgroup itself (its path and the NUL) and everything below it.
            for end in [b"\0", b"/"] {
                let mut d = p.as_bytes().to_vec();
                d.extend_from_slice(end);
                let bits = 8 * d.len() as u32;
                out.push(("rw_filter_cgroup", lpm(PATH_KEY, list, &d, bits)));
            }
        }
    }
    for (list, v) in [
        (INCLUDE, &rules.include_path),
        (EXCLUDE, &rules.exclude_path),
    ] {
        for p in v {
            let bits = 8 * p.len() as u32;
            out.push(("rw_filter_path", lpm(PATH_KEY, list, p.as_bytes(), bits)));
        }
    }
    for (list, v) in [
        (INCLUDE, &rules.include_port),
        (EXCLUDE, &rules.exclude_port),
    ] {
        for port in v {
            let mut k = vec![generation, list];
            k.extend_from_slice(&port.to_ne_bytes());
            out.push(("rw_filter_port", k));
        }
    }
    for (list, v) in [
        (INCLUDE, &rules.include_cidr),
        (EXCLUDE, &rules.exclude_cidr),
    ] {
        for c in v {
            out.push((
                "rw_filter_cidr",
                lpm(ADDR_KEY, list, &c.addr, u32::from(c.len)),
            ));
        }
    }
    out
}

/// Where the generation is in each list map's keys.
fn gen_of(map: &str, key: &[u8]) -> Option<u8> {
    match map {
        "rw_filter_port" => key.first().copied(),
        "rw_filter_tree" => key.first().copied(),
        _ => key.get(4).copied(),
    }
}

/// The maps that hold lists, keyed by generation.
const LISTS: &[&str] = &[
    "rw_filter_comm",
    "rw_filter_uid",
    "rw_filter_cgroup",
    "rw_filter_path",
    "rw_filter_port",
    "rw_filter_cidr",
    "rw_filter_tree",
];

/// `enum rw_set_flags`: the fork program follows the set's trees though it is not current.
const SET_SEEDING: u32 = 1;
/// RW_GEN_ACTIVE: the generation in force has rules.
const GEN_ACTIVE: u32 = 2;
/// RW_TREE_TICKS: a tree entry's start time is in clock ticks (from /proc).
const TREE_TICKS: u64 = 1 << 63;

/// `struct rw_filter_set`: the rules' bits, the families the task rules apply to, the
/// epoch, its flags, and the rate limits by family index.
fn set_bytes(rules: &Rules, epoch: u32, flags: u32) -> Vec<u8> {
    const FAMILIES: usize = 8;
    let mut set = Vec::with_capacity(16 + 2 * FAMILIES * 16);
    set.extend_from_slice(&rules.bits().to_ne_bytes());
    let fams = rules
        .families
        .iter()
        .fold(0u32, |m, f| m | (1 << f.index()));
    set.extend_from_slice(&fams.to_ne_bytes());
    set.extend_from_slice(&epoch.to_ne_bytes());
    set.extend_from_slice(&flags.to_ne_bytes());
    let rate = |r: Option<Rate>| {
        let (i, t) = r.map_or((0, 0), |r| r.gcra());
        [i.to_ne_bytes(), t.to_ne_bytes()].concat()
    };
    for i in 0..FAMILIES {
        let r = rules
            .rate_family
            .iter()
            .find(|(f, _)| f.index() == i)
            .map(|(_, r)| *r);
        set.extend_from_slice(&rate(r));
    }
    for i in 0..FAMILIES {
        // per_uid: the families the task rules apply to (anomaly only when named).
        let r = rules
            .rate_per_uid
            .filter(|_| rules.families.iter().any(|f| f.index() == i));
        set.extend_from_slice(&rate(r));
    }
    set
}

/// The 32-bit words of `struct rw_filter_set` by offset and name, for tamper findings.
fn set_fields() -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = ["bits", "families", "epoch", "flags"]
        .iter()
        .enumerate()
        .map(|(i, n)| (4 * i, n.to_string()))
        .collect();
    for (base, what) in [(16, "family_rate"), (16 + 8 * 16, "uid_rate")] {
        for i in 0..8 {
            for (o, part) in [
                (0, "interval_ns"),
                (4, "interval_ns_hi"),
                (8, "tau_ns"),
                (12, "tau_ns_hi"),
            ] {
                out.push((base + 16 * i + o, format!("{what}{i}.{part}")));
            }
        }
    }
    out
}

/// A rate-limit bucket that has refused events: its family, its uid (`None`: the
/// family's own bucket), how many it refused ever, and since when it is refusing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub family: Family,
    pub uid: Option<u32>,
    pub suppressed: u64,
    pub since_ns: u64,
}

/// The filtered and dropped counts of one uid in one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loss {
    pub family: Family,
    /// [`LOSS_OTHER`]: every uid that found no room of its own.
    pub uid: u32,
    pub filtered: u64,
    pub dropped: u64,
    pub rate_limited: u64,
}

/// The loaded filter object: its maps, which every family shares, and its programs.
pub struct Filters {
    _obj: Object,
    maps: Vec<(String, MapHandle)>,
    _links: Vec<Link>,
    /// Programs that could not attach (the pid tree is then not followed through fork).
    pub attach_errors: Vec<String>,
    generation: u8,
    epoch: u32,
    rules: Rules,
    /// What the daemon last wrote into rw_filter_gen and rw_filter_sets (by generation):
    /// anything else found there was written behind its back (see `check_tamper`).
    gen_word: u32,
    sets: [Vec<u8>; 2],
}

impl Filters {
    /// Loads the filter object and attaches its fork and exit programs, with no rule set.
    pub fn load() -> Result<Filters, Error> {
        let elf = super::objects::get("filter")?;
        let mut open = ObjectBuilder::default()
            .name("filter_bpf")
            .and_then(|b| b.open_memory(&elf))
            .map_err(|e| Error::Load(format!("opening the filter BPF object: {e}")))?;
        // Shared by every family: preallocated where any family's programs need it.
        if super::kernel::prealloc_hashes(super::kernel::Kernel::get().variant_510().is_some()) {
            for mut m in open.maps_mut() {
                super::loader::preallocate(&mut m)?;
            }
        }
        let obj = open
            .load()
            .map_err(|e| Error::Load(format!("loading the filter BPF object: {e}")))?;
        let mut links = Vec::new();
        let mut attach_errors = Vec::new();
        for p in obj.progs_mut() {
            match p.attach() {
                Ok(l) => links.push(l),
                Err(e) => attach_errors.push(format!("{}: {e}", p.name().to_string_lossy())),
            }
        }
        let mut maps = Vec::new();
        for m in obj.maps() {
            let name = m.name().to_string_lossy().into_owned();
            if !name.starts_with("rw_filter")
                && !name.starts_with("rw_rate")
                && !name.starts_with("rw_uid_loss")
            {
                continue;
            }
            let h = MapHandle::try_from(&m)
                .map_err(|e| Error::Map(format!("filter map {name}: {e}")))?;
            maps.push((name, h));
        }
        let f = Filters {
            _obj: obj,
            maps,
            _links: links,
            attach_errors,
            generation: 0,
            epoch: 0,
            rules: Rules::none(),
            gen_word: 0,
            sets: [Vec::new(), Vec::new()],
        };
        // Room for every family's catch-all uid, so that the per-uid counts add up even
        // when the table is full.
        let loss = f.map("rw_uid_loss")?;
        for fam in Family::ALL {
            let mut k = (fam.index() as u32).to_ne_bytes().to_vec();
            k.extend_from_slice(&LOSS_OTHER.to_ne_bytes());
            loss.update(&k, &[0u8; 24], MapFlags::ANY)
                .map_err(|e| Error::Map(format!("rw_uid_loss: {e}")))?;
        }
        Ok(f)
    }

    fn map(&self, name: &str) -> Result<&MapHandle, Error> {
        self.maps
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m)
            .ok_or_else(|| Error::Map(format!("the filter object has no map {name}")))
    }

    /// New handles on every shared map, by name, for a family's object (`reuse_fd`).
    pub fn maps(&self) -> Result<Vec<(String, MapHandle)>, Error> {
        self.maps
            .iter()
            .map(|(n, m)| {
                MapHandle::try_from(m)
                    .map(|h| (n.clone(), h))
                    .map_err(|e| Error::Map(format!("duplicating {n}: {e}")))
            })
            .collect()
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Makes `rules` the rules in force: written whole into the generation not in use,
    /// then made current by one map write. On an error the rules in force stay.
    pub fn apply(&mut self, rules: &Rules) -> Result<(), Error> {
        let new = self.generation ^ 1;
        self.epoch = self.epoch.wrapping_add(1).max(1);
        let mapped =
            |what: &'static str| move |e: libbpf_rs::Error| Error::Map(format!("{what}: {e}"));
        // First a set with no rule under a new epoch: an open judged at entry by the set
        // this generation held before is judged again at exit, and the fork program stops
        // following the trees it held (the generation is not current) before they are
        // cleared.
        self.write_set(new, set_bytes(&Rules::none(), self.epoch, 0))?;
        for name in LISTS {
            self.clear_gen(name, new)?;
        }
        for (name, key) in entries(rules, new) {
            self.map(name)?
                .update(&key, &[1], MapFlags::ANY)
                .map_err(|e| Error::Map(format!("{name}: {e}")))?;
        }
        // Then the whole set, its trees followed through fork while they are seeded.
        self.write_set(new, set_bytes(rules, self.epoch, SET_SEEDING))?;
        if !rules.include_pid_tree.is_empty() {
            if rules.include_pid_tree == self.rules.include_pid_tree {
                // The same roots: the tree the kernel followed so far, reparented
                // descendants included (a scan of /proc would lose them).
                self.copy_tree(self.generation, new)?;
            } else {
                self.seed_trees(new, &rules.include_pid_tree)?;
            }
        }
        // New limits start from full buckets; the refusal counts carry on.
        if (&rules.rate_family, rules.rate_per_uid)
            != (&self.rules.rate_family, self.rules.rate_per_uid)
        {
            self.refill()?;
        }
        // RW_GEN_ACTIVE: without a rule an event costs the programs one map read.
        let active = if rules.is_empty() { 0 } else { GEN_ACTIVE };
        self.map("rw_filter_gen")?
            .update(
                &0u32.to_ne_bytes(),
                &(u32::from(new) | active).to_ne_bytes(),
                MapFlags::ANY,
            )
            .map_err(mapped("rw_filter_gen"))?;
        // Current now: followed as such (the old generation no longer is).
        self.write_set(new, set_bytes(rules, self.epoch, 0))?;
        self.gen_word = u32::from(new) | active;
        self.generation = new;
        self.rules = rules.clone();
        Ok(())
    }

    /// Copies generation `from`'s pid tree into `to`, again until nothing new comes (the
    /// fork program adds children to both meanwhile).
    fn copy_tree(&self, from: u8, to: u8) -> Result<(), Error> {
        let tree = self.map("rw_filter_tree")?;
        loop {
            let mut added = 0;
            for k in tree.keys() {
                if gen_of("rw_filter_tree", &k) != Some(from) {
                    continue;
                }
                let Ok(Some(v)) = tree.lookup(&k, MapFlags::ANY) else {
                    continue;
                };
                let mut nk = k.clone();
                nk[..4].copy_from_slice(&u32::from(to).to_ne_bytes());
                if matches!(tree.lookup(&nk, MapFlags::ANY), Ok(Some(_))) {
                    continue;
                }
                tree.update(&nk, &v, MapFlags::ANY)
                    .map_err(|e| Error::Map(format!("rw_filter_tree: {e}")))?;
                added += 1;
            }
            if added == 0 {
                return Ok(());
            }
        }
    }

    /// Writes generation `generation`'s set, and remembers it as what the map must hold.
    fn write_set(&mut self, generation: u8, set: Vec<u8>) -> Result<(), Error> {
        self.map("rw_filter_sets")?
            .update(&u32::from(generation).to_ne_bytes(), &set, MapFlags::ANY)
            .map_err(|e| Error::Map(format!("rw_filter_sets: {e}")))?;
        self.sets[usize::from(generation)] = set;
        Ok(())
    }

    /// The generation in force and both sets against what the daemon wrote (one read
    /// each, every tick): each one changed behind its back is restored and returned as a
    /// finding per field (a rule switched on there would hide events as "filtered").
    pub fn check_tamper(&self) -> Vec<super::Tamper> {
        let mut found = Vec::new();
        let finding = |field: String, expected: u64, found: u64| super::Tamper {
            family: "filters",
            map: if field == "gen" {
                "rw_filter_gen"
            } else {
                "rw_filter_sets"
            }
            .to_string(),
            field,
            expected,
            found,
        };
        if let Ok(m) = self.map("rw_filter_gen")
            && let Ok(Some(v)) = m.lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            && let Some(cur) = read_u32(&v, 0)
            && cur != self.gen_word
        {
            if let Err(e) = m.update(
                &0u32.to_ne_bytes(),
                &self.gen_word.to_ne_bytes(),
                MapFlags::ANY,
            ) {
                log::error!("filters: restoring rw_filter_gen: {e}");
            }
            found.push(finding("gen".to_string(), self.gen_word.into(), cur.into()));
        }
        let Ok(m) = self.map("rw_filter_sets") else {
            return found;
        };
        for (g, want) in self.sets.iter().enumerate() {
            let key = (g as u32).to_ne_bytes();
            let Ok(Some(cur)) = m.lookup(&key, MapFlags::ANY) else {
                continue;
            };
            // Before the first rules: the map's zeros.
            let want = if want.is_empty() {
                vec![0u8; cur.len()]
            } else {
                want.clone()
            };
            if cur == want {
                continue;
            }
            for (off, name) in set_fields() {
                let (a, b) = (read_u32(&want, off), read_u32(&cur, off));
                if a != b {
                    found.push(finding(
                        format!("set{g}.{name}"),
                        a.unwrap_or(0).into(),
                        b.unwrap_or(0).into(),
                    ));
                }
            }
            if let Err(e) = m.update(&key, &want, MapFlags::ANY) {
                log::error!("filters: restoring rw_filter_sets[{g}]: {e}");
            }
        }
        found
    }

    /// Every bucket full again (its arrival time 0), keeping its count of refusals.
    fn refill(&self) -> Result<(), Error> {
        for name in ["rw_rate_family", "rw_rate_uid"] {
            let m = self.map(name)?;
            for k in m.keys() {
                if let Ok(Some(mut v)) = m.lookup(&k, MapFlags::ANY) {
                    v[..8].copy_from_slice(&0u64.to_ne_bytes());
                    m.update(&k, &v, MapFlags::EXIST)
                        .map_err(|e| Error::Map(format!("{name}: {e}")))?;
                }
            }
        }
        Ok(())
    }

    /// Every bucket that has refused anything: per family, and per (family, uid).
    pub fn buckets(&self) -> Vec<Bucket> {
        let mut out = Vec::new();
        let parse = |v: &[u8]| (read_u64(v, 8).unwrap_or(0), read_u64(v, 16).unwrap_or(0));
        if let Ok(m) = self.map("rw_rate_family") {
            for (i, &family) in Family::ALL.iter().enumerate() {
                if let Ok(Some(v)) = m.lookup(&(i as u32).to_ne_bytes(), MapFlags::ANY) {
                    let (suppressed, since_ns) = parse(&v);
                    if suppressed > 0 {
                        out.push(Bucket {
                            family,
                            uid: None,
                            suppressed,
                            since_ns,
                        });
                    }
                }
            }
        }
        for (family, uid, v) in self.per_uid("rw_rate_uid") {
            let (suppressed, since_ns) = parse(&v);
            if suppressed > 0 {
                out.push(Bucket {
                    family,
                    uid: Some(uid),
                    suppressed,
                    since_ns,
                });
            }
        }
        out
    }

    /// Every entry of a map keyed by `struct rw_loss_key`, in one batch read (a lookup per
    /// key was two syscalls per uid, every tick): (family, uid, value).
    fn per_uid(&self, name: &str) -> Vec<(Family, u32, Vec<u8>)> {
        let Ok(m) = self.map(name) else {
            return Vec::new();
        };
        let Ok(entries) = m.lookup_batch(256, MapFlags::ANY, MapFlags::ANY) else {
            return Vec::new();
        };
        entries
            .filter_map(|(k, v)| {
                let family = Family::ALL.get(read_u32(&k, 0)? as usize).copied()?;
                Some((family, read_u32(&k, 4)?, v))
            })
            .collect()
    }

    /// Deletes every entry of generation `generation` from a list map.
    fn clear_gen(&self, name: &str, generation: u8) -> Result<(), Error> {
        let m = self.map(name)?;
        let old: Vec<Vec<u8>> = m
            .keys()
            .filter(|k| gen_of(name, k) == Some(generation))
            .collect();
        for k in old {
            // Gone already (a process of the tree exited meanwhile) is fine.
            let _ = m.delete(&k);
        }
        Ok(())
    }

    /// Puts the pids and every process below them into generation `generation`'s tree: the
    /// roots first, then their descendants as /proc shows them now, until no more are
    /// found (the fork program adds children of processes already in the tree, so a
    /// fork racing with the scan is caught by one or the other).
    fn seed_trees(&self, generation: u8, roots: &[u32]) -> Result<(), Error> {
        let tree = self.map("rw_filter_tree")?;
        // Keyed by pid, valued by start time (RW_TREE_TICKS): an entry for a process that
        // exits meanwhile can never be taken for another one with its pid.
        let add = |pid: u32, start_ticks: u64| {
            let mut k = u32::from(generation).to_ne_bytes().to_vec();
            k.extend_from_slice(&pid.to_ne_bytes());
            tree.update(&k, &(TREE_TICKS | start_ticks).to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| Error::Map(format!("rw_filter_tree: {e}")))
        };
        let mut inside: BTreeSet<u32> = BTreeSet::new();
        let procs = proc_parents();
        for &p in roots {
            match procs.get(&p) {
                Some(&(_, start)) => add(p, start)?,
                None => log::warn!("include_pid_tree: no process {p} (yet): it is not followed"),
            }
            inside.insert(p);
        }
        loop {
            let parents = proc_parents();
            let mut more = Vec::new();
            for (pid, &(ppid, start)) in &parents {
                if inside.contains(&ppid) && !inside.contains(pid) {
                    more.push((*pid, start));
                }
            }
            if more.is_empty() {
                return Ok(());
            }
            for (p, start) in more {
                add(p, start)?;
                inside.insert(p);
            }
        }
    }

    /// Per family and uid: events filtered, dropped and rate limited (uids with none are
    /// absent). A uid's counts are in its slot of rw_uid_loss_slots or in rw_uid_loss,
    /// never both: their sum is exact.
    pub fn losses(&self) -> Vec<Loss> {
        let mut all: BTreeMap<(Family, u32), [u64; 3]> = BTreeMap::new();
        let mut add = |family, uid, v: &[u8], at: usize| {
            let c = all.entry((family, uid)).or_default();
            for (i, n) in c.iter_mut().enumerate() {
                *n += read_u64(v, at + 8 * i).unwrap_or(0);
            }
        };
        for (family, uid, v) in self.per_uid("rw_uid_loss") {
            add(family, uid, &v, 0);
        }
        if let Ok(m) = self.map("rw_uid_loss_slots")
            && let Ok(slots) = m.lookup_batch(256, MapFlags::ANY, MapFlags::ANY)
        {
            for (k, v) in slots {
                let (Some(i), Some(tag)) = (read_u32(&k, 0), read_u64(&v, 0)) else {
                    continue;
                };
                let Some(&family) = Family::ALL.get(i as usize / LOSS_SLOTS) else {
                    continue;
                };
                if let Ok(uid) = u32::try_from(tag.wrapping_sub(1))
                    && tag != 0
                {
                    add(family, uid, &v, 8);
                }
            }
        }
        all.into_iter()
            .filter(|(_, c)| c.iter().any(|&n| n > 0))
            .map(|((family, uid), [filtered, dropped, rate_limited])| Loss {
                family,
                uid,
                filtered,
                dropped,
                rate_limited,
            })
            .collect()
    }
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_ne_bytes)
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_ne_bytes)
}

/// Every process's parent and start time (clock ticks since boot), from /proc/PID/stat
/// (fields 4 and 22: counted after the parenthesised comm, which may itself hold spaces
/// and parentheses).
fn proc_parents() -> HashMap<u32, (u32, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(ppid), Some(start)) = (
            f.get(1).and_then(|s| s.parse().ok()),
            f.get(19).and_then(|s| s.parse().ok()),
        ) {
            out.insert(pid, (ppid, start));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_ranges_are_exact_prefix_covers() {
        assert_eq!(range_prefixes(0, u32::MAX), vec![(0, 0)]);
        assert_eq!(range_prefixes(1000, 1000), vec![(1000, 32)]);
        assert_eq!(range_prefixes(u32::MAX, u32::MAX), vec![(u32::MAX, 32)]);
        for (lo, hi) in [(1000, 60000), (1, 2), (65534, 65535), (7, 4_000_000_000)] {
            let p = range_prefixes(lo, hi);
            let covered: u64 = p.iter().map(|(_, b)| 1u64 << (32 - b)).sum();
            assert_eq!(covered, u64::from(hi - lo) + 1, "{lo}-{hi}");
            for (v, b) in &p {
                let size = 1u64 << (32 - b);
                assert!(
                    u64::from(*v) >= u64::from(lo) && u64::from(*v) + size - 1 <= u64::from(hi)
                );
                assert_eq!(u64::from(*v) % size, 0);
            }
            assert!(p.len() <= 62);
        }
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_uid_range("1000-60000"), Ok((1000, 60000)));
        assert_eq!(parse_uid_range("65534"), Ok((65534, 65534)));
        assert!(
            parse_uid_range("60000-1000")
                .unwrap_err()
                .contains("\"1000-60000\"")
        );
        assert!(parse_uid_range("x").is_err());
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            (c.len, c.addr[10], c.addr[11], c.addr[12]),
            (104, 0xff, 0xff, 10)
        );
        assert_eq!(cidr_text(&c), "10.0.0.0/8");
        assert_eq!(Cidr::parse("fd00::/8").unwrap().len, 8);
        assert_eq!(Cidr::parse("127.0.0.1").unwrap().len, 128);
        assert!(
            Cidr::parse("10.0.0.1/8")
                .unwrap_err()
                .contains("past its /8")
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("ten").is_err());
        assert_eq!(
            CommPattern::parse("prometheus*").unwrap(),
            CommPattern {
                text: "prometheus".into(),
                prefix: true
            }
        );
        assert!(
            CommPattern::parse("systemd-journald")
                .unwrap_err()
                .contains("15 bytes")
        );
        assert!(CommPattern::parse("*").is_err());
        assert!(CommPattern::parse("a*b").is_err());
        assert!(check_path("etc/", "path prefix").is_err());
        assert!(check_path("", "path prefix").is_err());
        assert!(check_path(&format!("/{}", "a".repeat(249)), "path prefix").is_err());
        assert!(check_path(&format!("/{}", "a".repeat(248)), "path prefix").is_ok());
        assert!(check_path("/etc/", "path prefix").is_ok());
    }

    #[test]
    fn keys_carry_generation_list_and_bit_lengths() {
        let r = Rules {
            include_comm: vec![CommPattern::parse("sshd").unwrap()],
            exclude_comm: vec![CommPattern::parse("prom*").unwrap()],
            include_cgroup: vec!["/system.slice/x.service".into()],
            exclude_port: vec![53],
            ..Rules::none()
        };
        let e = entries(&r, 1);
        let comm: Vec<_> = e.iter().filter(|(m, _)| *m == "rw_filter_comm").collect();
        assert_eq!(comm.len(), 2);
        // "sshd\0": 5 bytes after generation and list.
        assert_eq!(
            u32::from_ne_bytes(comm[0].1[..4].try_into().unwrap()),
            16 + 40
        );
        assert_eq!(&comm[0].1[4..11], &[1, 0, b's', b's', b'h', b'd', 0]);
        assert_eq!(
            u32::from_ne_bytes(comm[1].1[..4].try_into().unwrap()),
            16 + 32
        );
        assert_eq!(comm[1].1[5], 1);
        assert_eq!(
            e.iter().filter(|(m, _)| *m == "rw_filter_cgroup").count(),
            2,
            "the cgroup and its descendants"
        );
        let port = e.iter().find(|(m, _)| *m == "rw_filter_port").unwrap();
        assert_eq!(port.1, [&[1u8, 1][..], &53u16.to_ne_bytes()].concat());
        for (m, k) in &e {
            assert_eq!(gen_of(m, k), Some(1));
        }
        assert_eq!(
            r.bits(),
            bits::INCLUDE_COMM | bits::EXCLUDE_COMM | bits::INCLUDE_CGROUP | bits::EXCLUDE_PORT
        );
        assert!(Rules::none().is_empty());
        assert!(!Rules::none().families.contains(&Family::Anomaly));
    }

    /// The key sizes written here are the C structs' (read from a family object's BTF:
    /// every family declares the shared maps).
    #[test]
    fn key_sizes_match_the_c() {
        for (name, size) in [
            ("rw_fkey_comm", 24),
            ("rw_fkey_uid", 12),
            ("rw_fkey_path", 256),
            ("rw_fkey_addr", 24),
            ("rw_fkey_port", 4),
            ("rw_fkey_tree", 8),
            ("rw_filter_set", 16 + 2 * 8 * 16),
            ("rw_loss_key", 8),
            ("rw_loss", 24),
            ("rw_loss_slot", 32),
            ("rw_bucket", 32),
        ] {
            let (c, _) = Family::File
                .c_layout(name)
                .unwrap_or_else(|| panic!("{name} not in the file object"));
            assert_eq!(c, size, "{name}");
        }
        let slots = Family::File.c_enum("rw_loss_slots").expect("rw_loss_slots");
        assert_eq!(
            slots,
            vec![("RW_LOSS_SLOTS".to_string(), LOSS_SLOTS as i64)]
        );
    }
}
