//! The configuration file (TOML, `/etc/ringwarden/ringwarden.toml` by default), its
//! built-in default and its validation. Every problem is one line naming the key (and its
//! line in the file) and the fix; the caller exits 78.
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod archive;
mod budget;
pub mod cli;
pub mod filter;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use crate::context::ContextSettings;
use crate::family::Family;
use crate::family::syscalls;
use crate::sizing;
use crate::sizing::policy::PolicyKind;
pub use crate::sizing::{AdaptiveSettings, RingSettings, SizingSettings};
use crate::sys::page_size;
use crate::units::{fmt_approx, fmt_duration, fmt_num, fmt_size, human, parse_duration};

pub const DEFAULT_PATH: &str = "/etc/ringwarden/ringwarden.toml";
/// The control socket `ringwarden status` asks.
pub const DEFAULT_SOCKET: &str = "/run/ringwarden/control.sock";

/// Everything the daemon runs with: the file (or the built-in default) with the command
/// line applied over it.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Indexed like `Family::ALL` (see [`Settings::ring`]).
    pub rings: Vec<RingSettings>,
    pub adaptive: AdaptiveSettings,
    pub sizing: SizingSettings,
    pub wakeup: WakeupSettings,
    /// `None`: stdout.
    pub output: Option<PathBuf>,
    /// `[output.file]`: rotation, retention and compression of a file output.
    pub archive: archive::ArchiveSettings,
    /// Families to load, sorted, without duplicates.
    pub families: Vec<Family>,
    /// Syscall numbers the syscall family reports.
    pub syscalls: Vec<u32>,
    /// Whole seconds, 1 s to 1 day.
    pub stats_interval: Duration,
    pub stats_json: Option<PathBuf>,
    pub metrics: MetricsSettings,
    pub control: ControlSettings,
    /// `[filter]`: the in-kernel filters.
    pub filter: crate::family::filter::Rules,
    /// `[context]`: what events are told about their process (`--no-context`: off).
    pub context: ContextSettings,
    /// `[tls]`: what the tls family probes.
    pub tls: crate::family::tls::TlsSettings,
}

/// `[context] max_processes`: fewer would evict processes that still run on any host.
/// `shards = "auto"`: one ring per this many CPUs (the 16-64-core model in
/// docs/design.md), and at most this many rings.
pub const CPUS_PER_SHARD: u32 = 8;
pub const AUTO_SHARDS_MAX: u32 = 8;

/// The shard count "auto" gives on this host: by the CPUs online (a VM may have many
/// more possible, for hotplug, that never run).
pub fn auto_shards() -> u32 {
    // SAFETY: sysconf only reads.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let cpus = u32::try_from(online).unwrap_or(1).max(1);
    cpus.div_ceil(CPUS_PER_SHARD).clamp(1, AUTO_SHARDS_MAX)
}

const CONTEXT_MIN_PROCESSES: usize = 64;
/// `[context] max_processes`: the kernel's `pid_max` limit (`PID_MAX_LIMIT` on 64-bit),
/// so no host can have more processes.
const CONTEXT_MAX_PROCESSES: usize = 4_194_304;
/// `[context] max_cgroups`: fewer would evict the slices every service sits in.
const CONTEXT_MIN_CGROUPS: usize = 16;
/// `[context] max_cgroups`: a million cgroups is beyond any host's layout.
const CONTEXT_MAX_CGROUPS: usize = 1_048_576;

/// `[metrics]`: the Prometheus endpoint and the node_exporter textfile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsSettings {
    /// `None`: no listening socket (the built-in default).
    pub listen: Option<SocketAddr>,
    /// A non-loopback `listen` is refused unless this is set.
    pub allow_remote: bool,
    /// Names a request's `Host` may give besides an IP literal and `localhost`
    /// (lowercase). Non-empty: `Host` is checked on any listener, not only on loopback.
    pub allow_hosts: Vec<String>,
    pub textfile: Option<PathBuf>,
    /// Turn on the kernel's BPF run-time statistics and export each program's runs and
    /// time (they cost every program run two clock reads).
    pub program_stats: bool,
}

/// `[control]`: the socket `ringwarden status` asks.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlSettings {
    /// `None`: off.
    pub socket: Option<PathBuf>,
}

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            socket: Some(PathBuf::from(DEFAULT_SOCKET)),
        }
    }
}

/// A configuration that cannot be used (exit 78): one line naming the file (when there
/// is one), the key and its line, and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The file cannot be read.
    #[error("{0}")]
    Unreadable(String),
    /// A value is wrong, in the file or on the command line.
    #[error("{0}")]
    Invalid(String),
    /// A file someone other than root could change, read by a daemon running as root.
    #[error("{0}")]
    Untrusted(String),
    /// Metrics on a non-loopback address without allow_remote.
    #[error(
        "metrics listen address {0} is not loopback, so anyone who can reach this host could read the metrics; set [metrics] allow_remote = true (or --metrics-allow-remote) to mean it, or listen on 127.0.0.1"
    )]
    RemoteMetrics(SocketAddr),
}

impl Error {
    /// The same problem said of the file at `path`: one line starting with the path.
    fn in_file(self, path: &Path) -> Error {
        Error::Invalid(one_line(&format!("{}: {self}", path.display())))
    }
}

impl crate::sys::Exit for Error {
    fn exit_code(&self) -> u8 {
        crate::sys::exit::CONFIG
    }
}

/// A listen address that does not parse; the message reads on its own.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an address; write IP:PORT like \"127.0.0.1:9731\" or \"[::1]:9731\", or \"off\""
)]
pub struct ListenError(String);

/// `"127.0.0.1:9731"`, `"[::1]:9731"` or `"off"`.
pub fn parse_listen(s: &str) -> Result<Option<SocketAddr>, ListenError> {
    let t = s.trim();
    if t == "off" {
        return Ok(None);
    }
    t.parse().map(Some).map_err(|_| ListenError(s.to_string()))
}

/// A DNS name as a `Host` header carries it: dot-separated labels of letters, digits and
/// inner hyphens, 1-63 bytes each, 253 in all (no port, no trailing dot).
pub fn is_host_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// A control socket path or `"off"`.
pub fn parse_socket(s: &str) -> Option<PathBuf> {
    (s.trim() != "off").then(|| PathBuf::from(s))
}

/// Metrics listen only on loopback unless the operator says otherwise: the numbers tell
/// an attacker what is watched and how close the rings are to losing events.
pub fn check_metrics(m: &MetricsSettings) -> Result<(), Error> {
    match m.listen {
        Some(a) if !m.allow_remote && !a.ip().to_canonical().is_loopback() => {
            Err(Error::RemoteMetrics(a))
        }
        _ => Ok(()),
    }
}

/// When the kernel wakes the reader. A wake-up (a cross-CPU interrupt in a VM) costs the
/// producer ~3 µs per event here; batching drains on a short timer instead and wakes
/// the reader only when a ring is filling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WakeupSettings {
    pub mode: WakeupMode,
    /// `auto`: batch while a ring produces at least this many events/s.
    pub batch_above: f64,
    /// While batching, a commit that finds the ring this full (share of its size) wakes
    /// the reader at once.
    pub threshold: f64,
    /// While batching, rings are drained at least this often.
    pub latency: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeupMode {
    /// Batch a ring while it is busy (`batch_above`), plain wake-ups otherwise.
    Auto,
    /// Always batch.
    Batch,
    /// The kernel's default: a commit wakes the reader when it had caught up.
    Every,
}

impl WakeupMode {
    pub fn name(self) -> &'static str {
        match self {
            WakeupMode::Auto => "auto",
            WakeupMode::Batch => "batch",
            WakeupMode::Every => "every",
        }
    }

    pub fn parse(s: &str) -> Option<WakeupMode> {
        [WakeupMode::Auto, WakeupMode::Batch, WakeupMode::Every]
            .into_iter()
            .find(|m| m.name() == s)
    }
}

impl Default for WakeupSettings {
    fn default() -> Self {
        WakeupSettings {
            mode: WakeupMode::Auto,
            batch_above: 1000.0,
            threshold: 0.25,
            // p99 kernel → userspace latency < 1 ms (the benchmark target) with margin.
            latency: Duration::from_micros(500),
        }
    }
}

impl Default for Settings {
    /// The built-in default. Start sizes are the small-host ones (3.4 MiB in all), not the
    /// spec's (~26 MiB): rings grow on demand up to their max.
    fn default() -> Self {
        Settings {
            rings: Family::ALL
                .iter()
                .map(|&family| {
                    let spec = family.spec();
                    RingSettings {
                        family,
                        size: spec.ring_size.clamp(spec.ring_min, spec.ring_max),
                        min: spec.ring_min,
                        max: spec.ring_max,
                        rate: None,
                        event_size: sizing::record_size(family),
                        shards: 1,
                        priority: spec.priority,
                        loss_weight: 1.0,
                    }
                })
                .collect(),
            adaptive: AdaptiveSettings::default(),
            sizing: SizingSettings::default(),
            wakeup: WakeupSettings::default(),
            output: None,
            archive: Default::default(),
            families: Family::ALL.to_vec(),
            syscalls: syscalls::default_set(),
            stats_interval: Duration::from_secs(10),
            stats_json: None,
            metrics: MetricsSettings::default(),
            control: ControlSettings::default(),
            filter: crate::family::filter::Rules::none(),
            context: ContextSettings::default(),
            tls: crate::family::tls::TlsSettings::default(),
        }
    }
}

impl Settings {
    pub fn ring(&self, f: Family) -> &RingSettings {
        &self.rings[f as usize]
    }

    pub fn ring_mut(&mut self, f: Family) -> &mut RingSettings {
        &mut self.rings[f as usize]
    }

    /// Reads and validates a file; the error is one line starting with the path.
    pub fn load(path: &Path) -> Result<Settings, Error> {
        Settings::load_with_bounds(path).map(|(s, _)| s)
    }

    /// `load`, also telling which ring bounds the file sets itself.
    pub fn load_with_bounds(path: &Path) -> Result<(Settings, FileBounds), Error> {
        use std::io::Read;
        let unreadable = |e: std::io::Error| {
            Error::Unreadable(one_line(&format!(
                "{}: cannot read the configuration: {e}; fix the path or the permissions",
                path.display()
            )))
        };
        // Checked and read through one descriptor: what was checked is what is read.
        let mut f = std::fs::File::open(path).map_err(unreadable)?;
        check_trusted(&f, path)?;
        let mut src = String::new();
        f.read_to_string(&mut src).map_err(unreadable)?;
        parse(&src, page_size()).map_err(|e| e.in_file(path))
    }

    /// Validates a configuration's text; `page` is the smallest ring size.
    pub fn from_toml(src: &str, page: u64) -> Result<Settings, Error> {
        parse(src, page).map(|(s, _)| s)
    }

    /// The families whose rings load: the configured ones, and the process and cgroup
    /// families when `context` is on (their records keep the context tables).
    pub fn loaded_families(&self, context: bool) -> Vec<Family> {
        let mut f = self.families.clone();
        if context {
            for need in [Family::Process, Family::Cgroup] {
                if !f.contains(&need) {
                    f.push(need);
                }
            }
            f.sort();
        }
        f
    }

    /// Bytes of ring at start for the families that load.
    pub fn start_total(&self) -> u64 {
        self.families
            .iter()
            .map(|&f| self.ring(f).size * u64::from(self.ring(f).shards.max(1)))
            .sum()
    }

    /// `config check`: what the daemon would run with.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "ring      start     min       max       from");
        for r in &self.rings {
            let from = match r.rate {
                Some(rate) => {
                    let per_shard = rate / f64::from(r.shards.max(1));
                    let bytes = sizing::formula(
                        r.event_size,
                        per_shard,
                        self.sizing.buffer_time.as_secs_f64(),
                        self.sizing.safety_factor,
                    );
                    let rounded = sizing::round_size(bytes, r.min);
                    let clamp = if rounded != r.size {
                        format!(", clamped from {}", fmt_size(rounded))
                    } else {
                        String::new()
                    };
                    format!(
                        "rate: {}/s × {} B × {} s × {} = {}{clamp}",
                        fmt_num(per_shard),
                        r.event_size,
                        fmt_num(self.sizing.buffer_time.as_secs_f64()),
                        fmt_num(self.sizing.safety_factor),
                        fmt_approx(bytes)
                    )
                }
                None => "size".to_string(),
            };
            let off = if self.families.contains(&r.family) {
                ""
            } else {
                " (family not loaded)"
            };
            let here = crate::family::loader::effective_shards(r.shards);
            let from = match (r.shards, here) {
                (0 | 1, _) => from,
                (n, h) if h == n => format!("{from}; {n} shards of this size"),
                (n, h) => format!(
                    "{from}; {n} shards of this size ({h} on this host: one per CPU at most)"
                ),
            };
            let _ = writeln!(
                out,
                "{:<9} {:<9} {:<9} {:<9} {from}{off}",
                r.family.name(),
                fmt_size(r.size),
                fmt_size(r.min),
                fmt_size(r.max),
            );
        }
        let total = self.start_total();
        let _ = writeln!(
            out,
            "start: {} of rings (about {} of memory: the kernel maps each ring twice)",
            fmt_approx(total as f64),
            fmt_approx(2.0 * total as f64)
        );
        let a = &self.adaptive;
        if a.enabled {
            let _ = writeln!(
                out,
                "adaptive: {}, grow above {}%, shrink below {}% (target {}%), factor {}, cooldown {}",
                a.policy.name(),
                fmt_num(a.grow_above * 100.0),
                fmt_num(a.shrink_below * 100.0),
                fmt_num(a.target_utilization * 100.0),
                fmt_num(a.adjustment_factor),
                fmt_duration(a.cooldown)
            );
        } else {
            let _ = writeln!(out, "adaptive: off (rings keep their start size)");
        }
        let fams: Vec<&str> = self.families.iter().map(|f| f.name()).collect();
        let _ = writeln!(
            out,
            "families: {}; syscalls: {}; output: {}; stats every {}{}",
            fams.join(","),
            self.syscalls.len(),
            match &self.output {
                None => "stdout".to_string(),
                Some(p) if self.archive.is_set() =>
                    format!("{} ({})", p.display(), self.archive.summary()),
                Some(p) => p.display().to_string(),
            },
            fmt_duration(self.stats_interval),
            self.stats_json
                .as_ref()
                .map_or(String::new(), |p| format!(", stats json {}", p.display()))
        );
        let m = &self.metrics;
        let _ = writeln!(
            out,
            "metrics: {}{}{}{}; control socket: {}",
            m.listen
                .map_or("off".to_string(), |a| format!("http://{a}/metrics")),
            if m.allow_remote {
                " (remote allowed)"
            } else {
                ""
            },
            if m.allow_hosts.is_empty() {
                String::new()
            } else {
                format!(", Host also {}", m.allow_hosts.join(", "))
            },
            m.textfile
                .as_ref()
                .map_or(String::new(), |p| format!(", textfile {}", p.display())),
            self.control
                .socket
                .as_ref()
                .map_or("off".to_string(), |p| p.display().to_string())
        );
        let _ = writeln!(out, "filters: {}", self.filter.summary());
        let c = &self.context;
        if c.enabled {
            let _ = writeln!(
                out,
                "context: on, {} ancestors, up to {} processes and {} cgroups",
                c.ancestors, c.max_processes, c.max_cgroups
            );
        } else {
            let _ = writeln!(
                out,
                "context: off (events carry only their records' fields)"
            );
        }
        out
    }
}

/// A daemon running as root takes its configuration only from a file that root alone can
/// change: owned by root and not writable by group or others (whoever could edit it could
/// point `output` at any file or switch families off). A character device of root's
/// (`/dev/null`: the built-in defaults) is fine. Not root: any file the user can read.
fn check_trusted(f: &std::fs::File, path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let m = f.metadata().map_err(|e| {
        Error::Unreadable(one_line(&format!(
            "{}: cannot read the configuration: {e}; fix the path or the permissions",
            path.display()
        )))
    })?;
    let p = path.display();
    let why = if m.file_type().is_char_device() && m.uid() == 0 {
        return Ok(());
    } else if !m.is_file() {
        format!("{p}: not a regular file; give the path of a configuration file")
    } else if m.uid() != 0 {
        format!(
            "{p}: owned by uid {}, who could change what the daemon does as root; make it root's (chown root {p}) or use another file",
            m.uid()
        )
    } else if m.mode() & 0o022 != 0 {
        format!(
            "{p}: writable by group or others (mode {:04o}), who could change what the daemon does as root; chmod go-w {p}",
            m.mode() & 0o7777
        )
    } else {
        return Ok(());
    };
    Err(Error::Untrusted(one_line(&why)))
}

/// Which ring bounds (min, max) a file sets itself, indexed like `Family::ALL`: a
/// `--ring-size` may move a built-in bound, not one the operator wrote down.
pub type FileBounds = Vec<(bool, bool)>;

fn parse(src: &str, page: u64) -> Result<(Settings, FileBounds), Error> {
    let root = DeTable::parse(src).map_err(|e| Error::Invalid(one_line(&parse_error(src, &e))))?;
    let d = Doc { src };
    let raw = RawFile::from_table(&d, root.get_ref(), "")?;
    let mut s = Settings::default();
    let mut bounds: FileBounds = vec![(false, false); Family::ALL.len()];
    if let Some(v) = &raw.output {
        match v.get_ref() {
            // `[output.file]`: output is a table then.
            Value::Table(t) => {
                let o = RawOutput::from_table(&d, t, "output")?;
                if let Some(f) = &o.file {
                    d.output_file(&RawOutputFile::read(&d, f, "output.file")?, &mut s)?;
                }
            }
            _ => {
                let p = d.string(v, "output")?;
                s.output = (p != "-").then(|| PathBuf::from(p));
            }
        }
    }
    if let Some(v) = &raw.families {
        s.families = d.families(v)?;
    }
    if let Some(v) = &raw.syscalls {
        s.syscalls = d.syscalls(v)?;
    }
    if let Some(v) = &raw.stats_interval {
        s.stats_interval = d.stats_interval(v)?;
    }
    if let Some(v) = &raw.stats_json {
        s.stats_json = Some(PathBuf::from(d.string(v, "stats_json")?));
    }
    if let Some(v) = &raw.sizing {
        d.sizing(&RawSizing::read(&d, v, "sizing")?, &mut s.sizing)?;
    }
    if let Some(v) = &raw.adaptive {
        d.adaptive(&RawAdaptive::read(&d, v, "adaptive")?, &mut s.adaptive)?;
    }
    if let Some(v) = &raw.wakeup {
        d.wakeup(&RawWakeup::read(&d, v, "wakeup")?, &mut s.wakeup)?;
    }
    if let Some(v) = &raw.metrics {
        d.metrics(&RawMetrics::read(&d, v, "metrics")?, &mut s.metrics)?;
    }
    if let Some(v) = &raw.control {
        d.control(&RawControl::read(&d, v, "control")?, &mut s.control)?;
    }
    if let Some(v) = &raw.filter {
        d.filter(&filter::RawFilter::read(&d, v, "filter")?, &mut s.filter)?;
    }
    if let Some(v) = &raw.rate_limit {
        d.rate_limit(
            &filter::RawRateLimit::read(&d, v, "rate_limit")?,
            &mut s.filter,
        )?;
    }
    if let Some(v) = &raw.context {
        d.context(&RawContext::read(&d, v, "context")?, &mut s.context)?;
    }
    if let Some(v) = &raw.tls {
        let t = RawTls::read(&d, v, "tls")?;
        if let Some(v) = &t.count_bytes {
            s.tls.count_bytes = d.boolean(v, "tls.count_bytes")?;
        }
        if let Some(v) = &t.capture_bytes {
            let max = crate::family::tls::CAPTURE_MAX;
            s.tls.capture_bytes = d.count(
                v,
                "tls.capture_bytes",
                0,
                max,
                &format!("use 0 (off) to {max} bytes of each direction, e.g. 64"),
            )? as u32;
        }
    }
    let rings = match &raw.rings {
        Some(v) => Some(d.map(v, "rings")?),
        None => None,
    };
    for (name, v) in rings.into_iter().flatten() {
        let Some(f) = Family::parse(name.get_ref()) else {
            return Err(d.at(
                name.span(),
                &format!("rings.{}", name.get_ref()),
                "unknown family; the tables are [rings.process], [rings.file], [rings.network], [rings.syscall], [rings.cgroup] and [rings.anomaly]",
            ));
        };
        let key = format!("rings.{}", name.get_ref());
        let r = RawRing::read(&d, &Spanned::new(v.span(), d.value(v, &key)?), &key)?;
        bounds[f as usize] = (r.min.is_some(), r.max.is_some());
        let sizing = s.sizing;
        d.ring(f, name.span(), &r, &sizing, page, s.ring_mut(f))?;
    }
    Ok((s, bounds))
}

/// `ringwarden config default`: the built-in default as a commented file. Generated from
/// `Settings::default()` so the two cannot drift (a test parses it back).
pub fn default_toml() -> String {
    let d = Settings::default();
    let a = &d.adaptive;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"# ringwarden configuration: {DEFAULT_PATH}
#
# This is the built-in default (`ringwarden config default`): without this file the
# daemon runs exactly like this. Command-line options override the file; SIGHUP
# re-reads it. `ringwarden config check FILE` validates a file.
#
# Sizes: a power of two of at least one page, as "64KiB", "8MiB", "1GiB" or a number
# of bytes. Durations: "500ms", "2s", "1m" or a number of seconds.

# Where events go: a file (appended), "-" for stdout, or "journal" for one systemd
# journal entry per event (like --output).
output = "-"
# Or an archive of files that rotates and expires (instead of the line above; like
# --output with --rotate-size, --rotate-interval, --keep-files, --keep-age,
# --max-total and --compress). Rotated files sit beside the active one, named by the
# time they were rotated (events-20261201T213000Z.jsonl[.gz]); retention deletes the
# oldest and counts their events as expired. SIGUSR1 reopens the path (logrotate's
# postrotate). docs/operations.md, "The event archive".
# [output.file]
# path = "/var/log/ringwarden/events.jsonl"
# rotate_size = "64MiB"       # rotate before the active file passes this
# rotate_interval = "1h"      # and at least this often
# keep_files = 48             # rotated files kept
# keep_age = "7d"             # and none older than this
# max_total = "1GiB"          # rotated + active files together, at most
# compress = true             # gzip rotated files, in the loop's spare time

# Families to load (like --only).
families = [{families}]

# Syscalls the syscall family reports, by name or number (like --syscalls). Without
# this key: a security-relevant set ({nsys} syscalls: ptrace, set*uid, bpf, mount, ...).
# syscalls = ["ptrace", "setuid", "bpf", "init_module", "finit_module"]

# Seconds between stats lines in the log, whole seconds (like --stats-interval).
stats_interval = "{stats}"

# Per-ring stats as one JSON object, rewritten atomically every interval and at
# exit (like --stats-json). Off without this key.
# stats_json = "/run/ringwarden/stats.json"

# One table per family: process, file, network, syscall, cgroup, anomaly.
#   size  the ring's size at start, or instead
#   rate  the expected events/s: the size is then the formula
#         record size × rate × buffer_time × safety_factor, rounded up to a power of two
#   min, max  the adaptive policy keeps the ring between these.
#   shards  rings for the family, one per group of CPUs, so that producers on
#         different CPUs do not wait on one ring's lock: a number from 1 (the
#         default) to 64, or "auto" (one per 8 CPUs, at most 8). size, min and max
#         are then each shard's, rate is split evenly, and seq counts per shard.
#         The process ring stays one.
#   priority  under a memory budget ([sizing] memory_budget), 1 to 9: a lost event
#         of the family costs ten times one of a family a step lower, and memory goes
#         where the expected cost of lost events falls most.
#   loss_weight  scales that cost within a priority (default 1; 0.001 to 1000).
# Start sizes total {total} (a ring costs about twice its size in memory: the kernel
# maps it twice); rings grow on demand up to max.
"#,
        families = d
            .families
            .iter()
            .map(|f| format!("{:?}", f.name()))
            .collect::<Vec<_>>()
            .join(", "),
        nsys = syscalls::DEFAULT.len(),
        stats = fmt_duration(d.stats_interval),
        total = fmt_approx(d.start_total() as f64),
    );
    for r in &d.rings {
        let _ = write!(
            s,
            "\n[rings.{}]  # one record: {} bytes\nsize = \"{}\"\nmin = \"{}\"\nmax = \"{}\"\npriority = {}\n",
            r.family.name(),
            r.event_size,
            human(r.size),
            human(r.min),
            human(r.max),
            r.priority
        );
    }
    let _ = write!(
        s,
        r#"
[sizing]
# How long a ring must hold events when the reader falls behind: 1s low latency,
# 2-3s standard, 5s bursty, 10s forensic. 100ms to 60s.
buffer_time = "{bt}"
# Headroom for bursts: 2 stable, 3 moderate, 4 high variability, 5 under attack. 1 to 10.
safety_factor = {sf:.1}
# The most bytes all rings may hold at once, every shard and both rings of a resize
# included (like --memory-budget). Start sizes are lowered to fit, the costliest
# families (priority, loss_weight) keeping theirs first; at run time memory moves
# where the expected cost of lost events falls most, never below a ring's min and
# never from a ring that is dropping to one that is not. Off without this key.
# memory_budget = "8MiB"

[adaptive]
# Resize rings at run time (with nothing lost or duplicated). false: keep start sizes.
enabled = {en}
# dynamic: grow by adjustment_factor (to the next power of two) when the ring's
#   high-water mark passes grow_above or any event is dropped, at once; shrink one
#   power of two after a whole cooldown under shrink_below.
# predictive: size by the formula from the smoothed event rate, at most once a cooldown.
# hybrid: the larger of the two; shrink only when both agree.
policy = "{policy}"
# Utilization (high-water mark / size) a resize aims for. 0 < shrink_below <
# target_utilization < grow_above <= 1.
target_utilization = {tu}
grow_above = {ga}
shrink_below = {sb}
# Growth step, 1.2 to 2.0 (sizes stay powers of two: a step is at least a doubling).
adjustment_factor = {af}
# Least time between a resize and a shrink or a predictive change, 1s to 1h. Growth
# on drops or a high-water mark never waits for it.
cooldown = "{cd}"

[wakeup]
# When the kernel wakes the reader. A wake-up costs the traced program ~3 µs per event
# on a VM; batching drains the ring on a short timer instead.
# auto: batch a ring while it produces at least batch_above events/s, plain wake-ups
#   otherwise (an idle host then has no timer running); batch: always; every: the
#   kernel's default (a commit wakes the reader when it had caught up).
mode = "{wm}"
batch_above = {ba}
# While batching, a commit that finds the ring this full wakes the reader at once.
threshold = {th}
# While batching, rings are drained at least this often (bounds the delay). 100us to 1s.
latency = "{lat}"

[metrics]
# Prometheus metrics at http://LISTEN/metrics, served by the daemon itself (like
# --metrics-listen). Off without this key; the packaged configuration turns it on.
# listen = "127.0.0.1:9731"
# An address other than loopback ("0.0.0.0:9731") is refused unless this is true
# (like --metrics-allow-remote): the metrics show what is watched and how close the
# rings are to losing events.
allow_remote = {ar}
# Names a scrape's Host header may give besides an IP address and localhost (each
# other name is answered 421, against DNS rebinding); with names set, Host is checked
# on any listen address, not only on loopback.
# allow_hosts = ["metrics.example.lan"]
# The same metrics for node_exporter's textfile collector, rewritten atomically every
# second (a *.prom file; removed when the daemon stops). Off without this key.
# textfile = "/var/lib/prometheus/node-exporter/ringwarden.prom"
# Each BPF program's runs and time (ebpf_program_runs_total,
# ebpf_program_run_seconds_total; `ringwarden status` lists them by cost), from the
# kernel's run-time statistics, which this turns on while the daemon runs: they add two
# clock reads (~20-40 ns) to every run of every BPF program on the host.
program_stats = false

[control]
# Unix socket `ringwarden status` asks (mode 0600, its directory created 0755 if
# missing); "off" disables it (like --control-socket).
socket = "{sock}"

[context]
# What every event is told about its process besides its numbers: exe, parents, login
# uid and session, user name, systemd unit, cgroup and container (docs/events.md).
# false (like --no-context): no table is kept and events carry only their records'
# own fields. A change needs a restart.
enabled = {cen}
# Parents listed in `ancestors`, nearest first, 0 to {cmaxa}; 0 leaves the field out.
# SIGHUP applies a new value.
ancestors = {canc}
# The tables' bounds: past them the least recently used entry is evicted. They grow
# with what runs; these fit a host with tens of thousands of processes. A change
# needs a restart. Processes: {cminp} to {cmaxp} (the kernel's pid_max limit).
max_processes = {cmp}
# Cgroups (id -> path, for unit and container): {cminc} to {cmaxc}.
max_cgroups = {cmc}

[tls]
# Count each TLS session's bytes (tls_close's bytes_read, bytes_written): probes
# SSL_read, SSL_write and their _ex variants, so every such call of every process on
# the host traps into the kernel (~2 us each on a small VM). A change needs a restart.
count_bytes = {tcb}
# SENSITIVE: keep the first N bytes (0 to {tcm}) of plaintext each way of every session
# in tls_close (captured_sent, captured_received): passwords, cookies and tokens
# included. 0 is off. Probes reads and writes as count_bytes does. SIGHUP applies a
# new size (0 stops it); turning the probes on or off needs a restart.
capture_bytes = {tcap}

# In-kernel filters (docs/filters.md): an event a rule rejects takes no ring space and
# is counted (filtered, per ring and per uid). No rule by default. include_* lists
# narrow, exclude_* lists remove; at most 64 entries each. The task rules apply to
# every family but anomaly unless `families` names it.
# [filter]
# exclude_comm = ["systemd-journal", "prometheus*"]   # exact, or a prefix*
# include_uid = ["1000-60000"]                        # uids or ranges
# exclude_uid = [65534]
# include_cgroup = ["/system.slice/nginx.service"]    # cgroup v2 paths and below
# include_pid_tree = [1234]                           # and their descendants
# [filter.file]
# exclude_path = ["/proc/", "/sys/", "/dev/"]         # prefixes of the resolved path
# only_writes = false
# [filter.network]
# exclude_port = [53]
# include_cidr = ["10.0.0.0/8", "fd00::/8"]

# Rate limits, token buckets in the kernel ("N/s", "N/m" or "N/h"; a burst of N passes
# at once): one per family, and one per (family, uid) for the families the task rules
# apply to. A refused event is counted (rate_limited) and `throttle` records in the
# stream say when a limit starts and stops refusing. No limit by default.
# [rate_limit]
# file = "20000/s"
# per_uid = "2000/s"
"#,
        bt = fmt_duration(d.sizing.buffer_time),
        sf = d.sizing.safety_factor,
        en = a.enabled,
        policy = a.policy.name(),
        tu = a.target_utilization,
        ga = a.grow_above,
        sb = a.shrink_below,
        af = a.adjustment_factor,
        cd = fmt_duration(a.cooldown),
        wm = d.wakeup.mode.name(),
        ba = d.wakeup.batch_above,
        th = d.wakeup.threshold,
        lat = fmt_duration(d.wakeup.latency),
        ar = d.metrics.allow_remote,
        sock = d
            .control
            .socket
            .as_ref()
            .map_or("off".to_string(), |p| p.display().to_string()),
        cen = d.context.enabled,
        canc = d.context.ancestors,
        cmaxa = ContextSettings::MAX_ANCESTORS,
        cmp = d.context.max_processes,
        cminp = CONTEXT_MIN_PROCESSES,
        cmaxp = CONTEXT_MAX_PROCESSES,
        cmc = d.context.max_cgroups,
        cminc = CONTEXT_MIN_CGROUPS,
        cmaxc = CONTEXT_MAX_CGROUPS,
        tcb = d.tls.count_bytes,
        tcm = crate::family::tls::CAPTURE_MAX,
        tcap = d.tls.capture_bytes,
    );
    s
}

/// Where `ringwarden status` looks: `--control-socket`, else the configuration's
/// `[control] socket`, else the default.
pub fn resolve_socket(
    explicit: Option<PathBuf>,
    from_config: Option<Option<PathBuf>>,
) -> Option<PathBuf> {
    match (explicit, from_config) {
        (Some(p), _) => Some(p),
        (None, Some(c)) => c,
        (None, None) => Some(PathBuf::from(DEFAULT_SOCKET)),
    }
}

/// Control characters (a newline in a path, say) would break the one-line rule.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A value of the file as the checks read it. toml's own `Value` and serde's derives cost
/// the binary ~200 KB (bench/notes.md, issue 12); its parser's `DeValue` is read here.
#[derive(Debug)]
enum Value<'t> {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Datetime,
    Array(Vec<Value<'t>>),
    Table(&'t DeTable<'t>),
}

type Leaf<'t> = Option<Spanned<Value<'t>>>;

/// A table of the file as a struct of its keys, in the order messages list them; any
/// other key is an error naming the valid ones. Paths are absolute so that it expands the
/// same in `config`'s submodules; fields stay private to the module declaring the table.
macro_rules! table {
    ($(#[$m:meta])* $vis:vis struct $name:ident { $($key:ident),* $(,)? }) => {
        $(#[$m])*
        $vis struct $name<'t> {
            $($key: $crate::config::Leaf<'t>,)*
        }

        impl<'t> $name<'t> {
            $vis fn from_table(
                d: &$crate::config::Doc,
                t: &'t ::toml::de::DeTable<'t>,
                path: &str,
            ) -> Result<Self, $crate::config::Error> {
                // A keyword key is written r#type; the file says type.
                let [$($key),*] = d.keys(t, path, [$(stringify!($key).trim_start_matches("r#")),*])?;
                Ok(Self { $($key),* })
            }

            #[allow(dead_code, reason = "the root table is read with from_table")]
            $vis fn read(
                d: &$crate::config::Doc,
                v: &::toml::Spanned<$crate::config::Value<'t>>,
                path: &str,
            ) -> Result<Self, $crate::config::Error> {
                Self::from_table(d, d.map(v, path)?, path)
            }
        }
    };
}
use table;

table! {
    struct RawFile {
        output,
        families,
        syscalls,
        stats_interval,
        stats_json,
        rings,
        sizing,
        adaptive,
        wakeup,
        metrics,
        control,
        filter,
        rate_limit,
        context,
        tls,
    }
}

table! {
    struct RawOutput { file }
}

table! {
    struct RawOutputFile { path, rotate_size, rotate_interval, keep_files, keep_age, max_total, compress }
}

table! {
    struct RawContext { enabled, ancestors, max_processes, max_cgroups }
}

table! {
    struct RawTls { count_bytes, capture_bytes }
}

table! {
    struct RawMetrics { listen, allow_remote, allow_hosts, textfile, program_stats }
}

table! {
    struct RawControl { socket }
}

table! {
    struct RawWakeup { mode, batch_above, threshold, latency }
}

table! {
    struct RawRing { size, min, max, rate, shards, priority, loss_weight }
}

table! {
    struct RawSizing { buffer_time, safety_factor, memory_budget }
}

table! {
    struct RawAdaptive {
        enabled,
        policy,
        target_utilization,
        grow_above,
        shrink_below,
        adjustment_factor,
        cooldown,
    }
}

/// The source, for line numbers.
struct Doc<'a> {
    src: &'a str,
}

impl Doc<'_> {
    fn at(&self, span: Range<usize>, key: &str, msg: &str) -> Error {
        Error::Invalid(one_line(&format!(
            "line {}: {key}: {msg}",
            line_of(self.src, span.start)
        )))
    }

    fn err(&self, v: &Spanned<Value>, key: &str, msg: &str) -> Error {
        self.at(v.span(), key, msg)
    }

    /// The table `v` is, or why not.
    fn map<'t>(&self, v: &Spanned<Value<'t>>, key: &str) -> Result<&'t DeTable<'t>, Error> {
        match v.get_ref() {
            Value::Table(t) => Ok(t),
            other => Err(self.err(
                v,
                key,
                &format!("expected a table like [{key}], found {}", kind(other)),
            )),
        }
    }

    /// The values of `names` in table `t` (at `path`); a key not in `names` is an error.
    fn keys<'t, const N: usize>(
        &self,
        t: &'t DeTable<'t>,
        path: &str,
        names: [&str; N],
    ) -> Result<[Leaf<'t>; N], Error> {
        let mut out = [const { None }; N];
        let mut unknown: Option<&Spanned<DeString>> = None;
        for (k, v) in t.iter() {
            match names.iter().position(|n| *n == k.get_ref().as_ref()) {
                Some(i) => out[i] = Some(Spanned::new(v.span(), self.value(v, &dotted(path, k))?)),
                // The first in the file, not in key order.
                None if unknown.is_none_or(|u| k.span().start < u.span().start) => {
                    unknown = Some(k)
                }
                None => {}
            }
        }
        match unknown {
            Some(k) => Err(self.at(
                k.span(),
                &dotted(path, k),
                &format!("unknown key; valid keys are {}", names.join(", ")),
            )),
            None => Ok(out),
        }
    }

    fn value<'t>(&self, v: &'t Spanned<DeValue<'t>>, key: &str) -> Result<Value<'t>, Error> {
        Ok(match v.get_ref() {
            DeValue::String(s) => Value::String(s.to_string()),
            DeValue::Integer(i) => Value::Integer(
                i64::from_str_radix(i.as_str(), i.radix())
                    .map_err(|_| self.at(v.span(), key, &format!("{i} is too large a number")))?,
            ),
            DeValue::Float(f) => Value::Float(
                f.as_str()
                    .parse()
                    .ok()
                    // As toml reads floats: an infinity only where the file says inf.
                    .filter(|x: &f64| x.is_finite() || f.as_str().contains("inf"))
                    .ok_or_else(|| self.at(v.span(), key, &format!("{f} is too large a number")))?,
            ),
            DeValue::Boolean(b) => Value::Boolean(*b),
            DeValue::Datetime(_) => Value::Datetime,
            DeValue::Array(a) => Value::Array(
                a.iter()
                    .map(|x| self.value(x, key))
                    .collect::<Result<_, _>>()?,
            ),
            DeValue::Table(t) => Value::Table(t),
        })
    }

    fn string<'v>(&self, v: &'v Spanned<Value>, key: &str) -> Result<&'v str, Error> {
        match v.get_ref() {
            Value::String(s) if !s.is_empty() => Ok(s),
            Value::String(_) => Err(self.err(v, key, "is empty; give a path")),
            other => Err(self.err(v, key, &format!("expected a string, found {}", kind(other)))),
        }
    }

    fn boolean(&self, v: &Spanned<Value>, key: &str) -> Result<bool, Error> {
        match v.get_ref() {
            Value::Boolean(b) => Ok(*b),
            other => Err(self.err(
                v,
                key,
                &format!("expected true or false, found {}", show(other)),
            )),
        }
    }

    fn number(&self, v: &Spanned<Value>, key: &str, example: &str) -> Result<f64, Error> {
        let x = match v.get_ref() {
            Value::Integer(i) => *i as f64,
            Value::Float(f) => *f,
            other => {
                return Err(self.err(
                    v,
                    key,
                    &format!("expected a number like {example}, found {}", kind(other)),
                ));
            }
        };
        if !x.is_finite() {
            return Err(self.err(v, key, &format!("must be a finite number like {example}")));
        }
        Ok(x)
    }

    fn ranged(
        &self,
        v: &Spanned<Value>,
        key: &str,
        lo: f64,
        hi: f64,
        example: &str,
    ) -> Result<f64, Error> {
        let x = self.number(v, key, example)?;
        if !(lo..=hi).contains(&x) {
            return Err(self.err(
                v,
                key,
                &format!(
                    "{} is out of range; use {lo} to {hi}, e.g. {example}",
                    fmt_num(x)
                ),
            ));
        }
        Ok(x)
    }

    fn duration(
        &self,
        v: &Spanned<Value>,
        key: &str,
        lo: Duration,
        hi: Duration,
    ) -> Result<Duration, Error> {
        let d = match v.get_ref() {
            Value::String(s) => parse_duration(s).map_err(|e| self.err(v, key, &e.to_string()))?,
            Value::Integer(i) if *i >= 0 => Duration::from_secs(*i as u64),
            Value::Float(f) if *f >= 0.0 => Duration::try_from_secs_f64(*f)
                .map_err(|_| self.err(v, key, "is not a duration; write e.g. \"2s\""))?,
            other => {
                return Err(self.err(
                    v,
                    key,
                    &format!(
                        "expected a duration like \"2s\", \"500ms\" or \"1m\", found {}",
                        kind(other)
                    ),
                ));
            }
        };
        if d < lo || d > hi {
            return Err(self.err(
                v,
                key,
                &format!(
                    "{} is out of range; use {} to {}",
                    fmt_duration(d),
                    fmt_duration(lo),
                    fmt_duration(hi)
                ),
            ));
        }
        Ok(d)
    }

    fn bytes(&self, v: &Spanned<Value>, key: &str) -> Result<u64, Error> {
        match v.get_ref() {
            Value::String(s) => {
                crate::units::parse_bytes(s).map_err(|e| self.err(v, key, &e.to_string()))
            }
            Value::Integer(i) if *i >= 0 => Ok(*i as u64),
            other => Err(self.err(
                v,
                key,
                &format!(
                    "expected a size like \"8MiB\" or a number of bytes, found {}",
                    show(other)
                ),
            )),
        }
    }

    /// A ring size: a power of two, at least a page, at most 2 GiB.
    fn ring_bytes(&self, v: &Spanned<Value>, key: &str, page: u64) -> Result<u64, Error> {
        let b = self.bytes(v, key)?;
        sizing::check_ring_size(b, page)
            .map_err(|e| self.err(v, key, &format!("{} {e}", show(v.get_ref()))))?;
        Ok(b)
    }

    fn list<'v, 't>(
        &self,
        v: &'v Spanned<Value<'t>>,
        key: &str,
        example: &str,
    ) -> Result<&'v [Value<'t>], Error> {
        match v.get_ref() {
            Value::Array(a) if !a.is_empty() => Ok(a),
            Value::Array(_) => Err(self.err(v, key, &format!("is empty; e.g. {key} = {example}"))),
            other => Err(self.err(
                v,
                key,
                &format!("expected a list like {example}, found {}", kind(other)),
            )),
        }
    }

    fn host_names(&self, v: &Spanned<Value>) -> Result<Vec<String>, Error> {
        const KEY: &str = "metrics.allow_hosts";
        let mut out = Vec::new();
        for x in self.list(v, KEY, "[\"metrics.example.lan\"]")? {
            let name = match x {
                Value::String(s) if is_host_name(s) => s.to_ascii_lowercase(),
                other => {
                    return Err(self.err(
                        v,
                        KEY,
                        &format!(
                            "{} is not a host name; write names like \"metrics.example.lan\" (no port; addresses and localhost are always accepted)",
                            show(other)
                        ),
                    ));
                }
            };
            if !out.contains(&name) {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn families(&self, v: &Spanned<Value>) -> Result<Vec<Family>, Error> {
        let mut out = Vec::new();
        for x in self.list(v, "families", "[\"process\", \"file\"]")? {
            let f = match x {
                Value::String(s) => Family::parse(s).ok_or_else(|| {
                    self.err(
                        v,
                        "families",
                        &format!(
                            "unknown family {s:?}; choose from process, file, network, syscall, cgroup, anomaly"
                        ),
                    )
                })?,
                other => {
                    return Err(self.err(
                        v,
                        "families",
                        &format!("expected family names, found {}", show(other)),
                    ));
                }
            };
            if !out.contains(&f) {
                out.push(f);
            }
        }
        out.sort();
        Ok(out)
    }

    fn syscalls(&self, v: &Spanned<Value>) -> Result<Vec<u32>, Error> {
        let mut out = Vec::new();
        for x in self.list(v, "syscalls", "[\"ptrace\", \"bpf\"]")? {
            let name = match x {
                Value::String(s) => s.clone(),
                Value::Integer(i) => i.to_string(),
                other => {
                    return Err(self.err(
                        v,
                        "syscalls",
                        &format!("expected syscall names or numbers, found {}", show(other)),
                    ));
                }
            };
            let nr = syscalls::lookup(&name).ok_or_else(|| {
                self.err(
                    v,
                    "syscalls",
                    &format!(
                        "unknown syscall {name:?} on this architecture; use a name like \"openat\" or a number below {}",
                        syscalls::MAX_NR
                    ),
                )
            })?;
            if !out.contains(&nr) {
                out.push(nr);
            }
        }
        Ok(out)
    }

    fn stats_interval(&self, v: &Spanned<Value>) -> Result<Duration, Error> {
        let d = self.duration(
            v,
            "stats_interval",
            Duration::from_secs(1),
            Duration::from_secs(86_400),
        )?;
        if d.subsec_nanos() != 0 {
            return Err(self.err(
                v,
                "stats_interval",
                &format!("{} is not whole seconds; e.g. \"10s\"", fmt_duration(d)),
            ));
        }
        Ok(d)
    }

    fn sizing(&self, r: &RawSizing, s: &mut SizingSettings) -> Result<(), Error> {
        if let Some(v) = &r.buffer_time {
            s.buffer_time = self.duration(
                v,
                "sizing.buffer_time",
                Duration::from_millis(100),
                Duration::from_secs(60),
            )?;
        }
        if let Some(v) = &r.memory_budget {
            s.memory_budget = Some(self.bytes(v, "sizing.memory_budget")?);
        }
        if let Some(v) = &r.safety_factor {
            s.safety_factor = self.ranged(v, "sizing.safety_factor", 1.0, 10.0, "3.0")?;
        }
        Ok(())
    }

    fn wakeup(&self, r: &RawWakeup, w: &mut WakeupSettings) -> Result<(), Error> {
        if let Some(v) = &r.mode {
            let s = match v.get_ref() {
                Value::String(s) => s.as_str(),
                _ => "",
            };
            w.mode = WakeupMode::parse(s).ok_or_else(|| {
                self.err(
                    v,
                    "wakeup.mode",
                    &format!(
                        "unknown mode {}; use \"auto\", \"batch\" or \"every\"",
                        show(v.get_ref())
                    ),
                )
            })?;
        }
        if let Some(v) = &r.batch_above {
            w.batch_above = self.ranged(v, "wakeup.batch_above", 0.0, 1e9, "1000")?;
        }
        if let Some(v) = &r.threshold {
            w.threshold = self.fraction(v, "wakeup.threshold", false, true, "0.25")?;
        }
        if let Some(v) = &r.latency {
            w.latency = self.duration(
                v,
                "wakeup.latency",
                Duration::from_micros(100),
                Duration::from_secs(1),
            )?;
        }
        Ok(())
    }

    fn metrics(&self, r: &RawMetrics, m: &mut MetricsSettings) -> Result<(), Error> {
        if let Some(v) = &r.listen {
            let s = self.string(v, "metrics.listen")?;
            m.listen =
                parse_listen(s).map_err(|e| self.err(v, "metrics.listen", &e.to_string()))?;
        }
        if let Some(v) = &r.allow_remote {
            m.allow_remote = self.boolean(v, "metrics.allow_remote")?;
        }
        if let Some(v) = &r.allow_hosts {
            m.allow_hosts = self.host_names(v)?;
        }
        if let Some(v) = &r.textfile {
            let p = PathBuf::from(self.string(v, "metrics.textfile")?);
            // node_exporter reads *.prom only: any other name would be silently ignored.
            if p.extension().is_none_or(|e| e != "prom") || p.file_stem().is_none() {
                return Err(self.err(
                    v,
                    "metrics.textfile",
                    "node_exporter's textfile collector reads only *.prom files; name it e.g. \"/var/lib/prometheus/node-exporter/ringwarden.prom\"",
                ));
            }
            m.textfile = Some(p);
        }
        if let Some(v) = &r.program_stats {
            m.program_stats = self.boolean(v, "metrics.program_stats")?;
        }
        Ok(())
    }

    /// `[output.file]`: the archive's path and its rotation, retention and compression.
    fn output_file(&self, r: &RawOutputFile, s: &mut Settings) -> Result<(), Error> {
        let Some(v) = &r.path else {
            return Err(Error::Invalid(
                "[output.file]: path is missing; e.g. path = \"/var/log/ringwarden/events.jsonl\""
                    .into(),
            ));
        };
        let p = self.string(v, "output.file.path")?;
        if ["-", "journal", "none"].contains(&p) {
            return Err(self.err(
                v,
                "output.file.path",
                "names no file; give a file path (for stdout or the journal, use output = \"-\" or \"journal\")",
            ));
        }
        s.output = Some(PathBuf::from(p));
        let a = &mut s.archive;
        if let Some(v) = &r.rotate_size {
            a.rotate_size = Some(self.bytes(v, "output.file.rotate_size")?);
        }
        if let Some(v) = &r.rotate_interval {
            a.rotate_interval = Some(self.duration(
                v,
                "output.file.rotate_interval",
                archive::MIN_INTERVAL,
                archive::MAX_AGE,
            )?);
        }
        if let Some(v) = &r.keep_files {
            let max = archive::MAX_KEEP_FILES as usize;
            a.keep_files = Some(self.count(
                v,
                "output.file.keep_files",
                1,
                max,
                &format!("keep 1 to {max} rotated files"),
            )? as u32);
        }
        if let Some(v) = &r.keep_age {
            a.keep_age = Some(self.duration(
                v,
                "output.file.keep_age",
                archive::MIN_INTERVAL,
                archive::MAX_AGE,
            )?);
        }
        if let Some(v) = &r.max_total {
            a.max_total = Some(self.bytes(v, "output.file.max_total")?);
        }
        if let Some(v) = &r.compress {
            a.compress = self.boolean(v, "output.file.compress")?;
        }
        a.check()
            .map_err(|e| Error::Invalid(one_line(&format!("[output.file]: {e}"))))
    }

    /// A whole number from `lo` to `hi`; `fix` says the range (and why) in the message.
    fn count(
        &self,
        v: &Spanned<Value>,
        key: &str,
        lo: usize,
        hi: usize,
        fix: &str,
    ) -> Result<usize, Error> {
        let n = match v.get_ref() {
            Value::Integer(i) => *i,
            other => {
                return Err(self.err(
                    v,
                    key,
                    &format!("expected a whole number, found {}; {fix}", show(other)),
                ));
            }
        };
        match usize::try_from(n) {
            Ok(x) if (lo..=hi).contains(&x) => Ok(x),
            _ => Err(self.err(v, key, &format!("{n} is out of range; {fix}"))),
        }
    }

    /// `[rings.FAMILY] shards`: a count, or "auto" (one ring per [`CPUS_PER_SHARD`]
    /// CPUs, at most [`AUTO_SHARDS_MAX`]). The process ring stays one: the process table
    /// needs its execs, forks and exits in the order they were reserved.
    fn shards(&self, f: Family, v: &Spanned<Value>) -> Result<u32, Error> {
        let key = format!("rings.{}.shards", f.name());
        let max = crate::family::loader::MAX_SHARDS as usize;
        let fix = format!(
            "use a number of rings from 1 to {max}, or \"auto\" (one per {CPUS_PER_SHARD} CPUs)"
        );
        let n = match v.get_ref() {
            Value::String(s) if s.as_str() == "auto" => {
                if f == Family::Process {
                    return Ok(1);
                }
                return Ok(auto_shards());
            }
            Value::String(_) => {
                return Err(self.err(v, &key, &format!("not a shard count; {fix}")));
            }
            _ => self.count(v, &key, 1, max, &fix)? as u32,
        };
        if f == Family::Process && n > 1 {
            return Err(self.err(
                v,
                &key,
                "the process ring is one ring (the process table needs its records in order); remove shards",
            ));
        }
        Ok(n)
    }

    fn context(&self, r: &RawContext, c: &mut ContextSettings) -> Result<(), Error> {
        if let Some(v) = &r.enabled {
            c.enabled = self.boolean(v, "context.enabled")?;
        }
        if let Some(v) = &r.ancestors {
            c.ancestors = self.count(
                v,
                "context.ancestors",
                0,
                ContextSettings::MAX_ANCESTORS,
                &format!(
                    "use 0 (no ancestors field) to {} (deeper chains cost every event more than they tell), e.g. 4",
                    ContextSettings::MAX_ANCESTORS
                ),
            )?;
        }
        if let Some(v) = &r.max_processes {
            c.max_processes = self.count(
                v,
                "context.max_processes",
                CONTEXT_MIN_PROCESSES,
                CONTEXT_MAX_PROCESSES,
                &format!(
                    "use {CONTEXT_MIN_PROCESSES} to {CONTEXT_MAX_PROCESSES} (the kernel's pid_max limit: no host runs more), e.g. 32768"
                ),
            )?;
        }
        if let Some(v) = &r.max_cgroups {
            c.max_cgroups = self.count(
                v,
                "context.max_cgroups",
                CONTEXT_MIN_CGROUPS,
                CONTEXT_MAX_CGROUPS,
                &format!("use {CONTEXT_MIN_CGROUPS} to {CONTEXT_MAX_CGROUPS}, e.g. 4096"),
            )?;
        }
        Ok(())
    }

    fn control(&self, r: &RawControl, c: &mut ControlSettings) -> Result<(), Error> {
        if let Some(v) = &r.socket {
            c.socket = parse_socket(self.string(v, "control.socket")?);
        }
        Ok(())
    }

    fn adaptive(&self, r: &RawAdaptive, a: &mut AdaptiveSettings) -> Result<(), Error> {
        if let Some(v) = &r.enabled {
            a.enabled = self.boolean(v, "adaptive.enabled")?;
        }
        if let Some(v) = &r.policy {
            let s = match v.get_ref() {
                Value::String(s) => s.as_str(),
                _ => "",
            };
            a.policy = PolicyKind::parse(s).ok_or_else(|| {
                self.err(
                    v,
                    "adaptive.policy",
                    &format!(
                        "unknown policy {}; use \"dynamic\", \"predictive\" or \"hybrid\"",
                        show(v.get_ref())
                    ),
                )
            })?;
        }
        if let Some(v) = &r.target_utilization {
            a.target_utilization =
                self.fraction(v, "adaptive.target_utilization", false, false, "0.7")?;
        }
        if let Some(v) = &r.grow_above {
            a.grow_above = self.fraction(v, "adaptive.grow_above", false, true, "0.9")?;
        }
        if let Some(v) = &r.shrink_below {
            a.shrink_below = self.fraction(v, "adaptive.shrink_below", true, false, "0.3")?;
        }
        if let Some(v) = &r.adjustment_factor {
            a.adjustment_factor = self.ranged(v, "adaptive.adjustment_factor", 1.2, 2.0, "1.5")?;
        }
        if let Some(v) = &r.cooldown {
            // The spec's range is 30 s to 300 s; shorter is allowed for tests and
            // demonstrations, longer for very steady hosts.
            a.cooldown = self.duration(
                v,
                "adaptive.cooldown",
                Duration::from_secs(1),
                Duration::from_secs(3600),
            )?;
        }
        // Ordered thresholds: otherwise a shrink lands above grow_above and the ring flaps.
        if a.shrink_below >= a.target_utilization {
            let (v, key) = pick(
                &r.shrink_below,
                "shrink_below",
                &r.target_utilization,
                "target_utilization",
            );
            return Err(self.at(
                v,
                &format!("adaptive.{key}"),
                &format!(
                    "shrink_below ({}) must be below target_utilization ({}); e.g. 0.3 and 0.7",
                    fmt_num(a.shrink_below),
                    fmt_num(a.target_utilization)
                ),
            ));
        }
        if a.target_utilization >= a.grow_above {
            let (v, key) = pick(
                &r.target_utilization,
                "target_utilization",
                &r.grow_above,
                "grow_above",
            );
            return Err(self.at(
                v,
                &format!("adaptive.{key}"),
                &format!(
                    "target_utilization ({}) must be below grow_above ({}); e.g. 0.7 and 0.9",
                    fmt_num(a.target_utilization),
                    fmt_num(a.grow_above)
                ),
            ));
        }
        Ok(())
    }

    /// A share of the ring: strictly between 0 and 1, or with 0 or 1 allowed.
    fn fraction(
        &self,
        v: &Spanned<Value>,
        key: &str,
        zero_ok: bool,
        one_ok: bool,
        example: &str,
    ) -> Result<f64, Error> {
        let x = self.number(v, key, example)?;
        let ok = (x > 0.0 || (zero_ok && x == 0.0)) && (x < 1.0 || (one_ok && x == 1.0));
        if !ok {
            return Err(self.err(
                v,
                key,
                &format!(
                    "{} is not a share of the ring; use a number between 0 and 1 (utilization), e.g. {example}",
                    fmt_num(x)
                ),
            ));
        }
        Ok(x)
    }

    fn ring(
        &self,
        f: Family,
        table: Range<usize>,
        r: &RawRing,
        sizing_settings: &SizingSettings,
        page: u64,
        out: &mut RingSettings,
    ) -> Result<(), Error> {
        let name = f.name();
        if let Some(v) = &r.shards {
            out.shards = self.shards(f, v)?;
        }
        if let Some(v) = &r.priority {
            out.priority = self.count(
                v,
                &format!("rings.{name}.priority"),
                1,
                9,
                "use 1 (lowest) to 9",
            )? as u32;
        }
        if let Some(v) = &r.loss_weight {
            out.loss_weight = self.ranged(
                v,
                &format!("rings.{name}.loss_weight"),
                0.001,
                1000.0,
                "2.0",
            )?;
        }
        if let Some(v) = &r.min {
            out.min = self.ring_bytes(v, &format!("rings.{name}.min"), page)?;
        }
        if let Some(v) = &r.max {
            out.max = self.ring_bytes(v, &format!("rings.{name}.max"), page)?;
        }
        if out.min > out.max {
            let (span, key) = pick(&r.min, "min", &r.max, "max");
            let span = if r.min.is_none() && r.max.is_none() {
                table
            } else {
                span
            };
            return Err(self.at(
                span,
                &format!("rings.{name}.{key}"),
                &format!(
                    "min ({}) is above max ({}); lower min or raise max",
                    human(out.min),
                    human(out.max)
                ),
            ));
        }
        match (&r.size, &r.rate) {
            (Some(_), Some(v)) => {
                return Err(self.err(
                    v,
                    &format!("rings.{name}"),
                    "both size and rate are set; keep one (rate: the size comes from the formula)",
                ));
            }
            (Some(v), None) => {
                let key = format!("rings.{name}.size");
                let size = self.ring_bytes(v, &key, page)?;
                if size < out.min || size > out.max {
                    let (which, bound) = if size < out.min {
                        ("below min", out.min)
                    } else {
                        ("above max", out.max)
                    };
                    return Err(self.err(
                        v,
                        &key,
                        &format!(
                            "{} is {which} ({}); use a size from {} to {} or change min/max",
                            human(size),
                            human(bound),
                            human(out.min),
                            human(out.max)
                        ),
                    ));
                }
                out.size = size;
                out.rate = None;
            }
            (None, Some(v)) => {
                let key = format!("rings.{name}.rate");
                let rate = self.number(v, &key, "5000")?;
                if rate <= 0.0 {
                    return Err(self.err(
                        v,
                        &key,
                        &format!(
                            "{} is not a rate; give the expected events per second (> 0), e.g. 5000, or set size instead",
                            fmt_num(rate)
                        ),
                    ));
                }
                let bytes = sizing::formula(
                    out.event_size,
                    rate / f64::from(out.shards.max(1)),
                    sizing_settings.buffer_time.as_secs_f64(),
                    sizing_settings.safety_factor,
                );
                // An estimate beyond the bounds is clamped (config check shows it), not an
                // error: min and max are the operator's word on memory.
                out.size = sizing::round_size(bytes, page).clamp(out.min, out.max);
                out.rate = Some(rate);
            }
            (None, None) => {
                out.size = f.default_ring_size().clamp(out.min, out.max);
                out.rate = None;
            }
        }
        Ok(())
    }
}

/// `path.key`, or `key` at the root.
/// A key that is not a bare TOML key is shown quoted and escaped, as it would be written.
fn dotted(path: &str, key: &Spanned<DeString>) -> String {
    let k: &str = key.get_ref();
    let bare = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let k = if bare {
        k.to_string()
    } else {
        format!("{k:?}")
    };
    match path {
        "" => k,
        p => format!("{p}.{k}"),
    }
}

/// The key to blame for a conflict between two: the one the file sets (the first if both).
fn pick<'k>(a: &Leaf, a_key: &'k str, b: &Leaf, b_key: &'k str) -> (Range<usize>, &'k str) {
    match (a, b) {
        (Some(v), _) => (v.span(), a_key),
        (None, Some(v)) => (v.span(), b_key),
        (None, None) => (0..0, a_key),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

/// A value as written, for messages (strings quoted and escaped: one line).
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        other => kind(other).to_string(),
    }
}

fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes()[..offset.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The `[table]` in force at byte `offset`, by the last header line before it.
fn table_at(src: &str, offset: usize) -> Option<String> {
    let before = src.get(..offset.min(src.len()))?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    before[..line_start]
        .lines()
        .rev()
        .find_map(|l| header(l.trim_start()))
}

/// `[rings.file]  # c` -> "rings.file".
fn header(line: &str) -> Option<String> {
    let inner = line.strip_prefix('[')?;
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    let end = inner.find(']')?;
    Some(inner[..end].split_whitespace().collect())
}

/// The dotted name of the value at `span`, as far as the text shows it: the `[table]` in
/// force plus the key on the span's line. Inside an inline table: none.
fn key_path(src: &str, span: &Range<usize>) -> Option<String> {
    // `get`, not indexing: a span is trusted no further than it has to be.
    let start = span.start.min(src.len());
    let line_start = src.get(..start)?.rfind('\n').map_or(0, |i| i + 1);
    let line_end = src
        .get(start..)?
        .find('\n')
        .map_or(src.len(), |i| start + i);
    let line = src.get(line_start..line_end)?;
    let col = start - line_start;
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') {
        // A header: the path is its text up to the offending part.
        let upto = (span.end.min(line_end)).saturating_sub(line_start);
        let text = line.get(..upto)?.trim_start().trim_start_matches('[');
        return Some(text.split_whitespace().collect());
    }
    let head = line.get(..col)?;
    if head.contains('{') {
        return None;
    }
    let key: String = head.split_once('=')?.0.split_whitespace().collect();
    if key.is_empty() {
        return None;
    }
    Some(match table_at(src, start) {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key,
    })
}

/// A parse error as one line: "line 3: adaptive.enabled: duplicate key".
fn parse_error(src: &str, e: &toml::de::Error) -> String {
    let msg = one_line(e.message());
    let Some(span) = e.span() else {
        return msg;
    };
    let line = line_of(src, span.start);
    let start = span.start.min(src.len());
    let col = start
        - src.as_bytes()[..start]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
        + 1;
    match key_path(src, &span) {
        Some(k) => format!("line {line}: {k}: {msg}"),
        None => format!("line {line}, column {col}: {msg}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;

    fn parse(src: &str) -> Result<Settings, String> {
        Settings::from_toml(src, 4096).map_err(|e| e.to_string())
    }

    /// The error for `src`, checked to be one line naming `key`.
    fn error(src: &str, key: &str) -> String {
        let e = parse(src).expect_err(src);
        assert!(!e.contains('\n'), "not one line: {e}");
        assert!(e.contains(key), "{e:?} does not name {key:?}");
        e
    }

    #[test]
    fn output_file_table() {
        let s = parse(
            "[output.file]\npath = \"/var/log/rw/events.jsonl\"\nrotate_size = \"64MiB\"\nrotate_interval = \"1h\"\nkeep_files = 48\nkeep_age = \"7d\"\nmax_total = \"1GiB\"\ncompress = true\n",
        )
        .expect("parse");
        assert_eq!(s.output, Some(PathBuf::from("/var/log/rw/events.jsonl")));
        let a = &s.archive;
        assert_eq!(a.rotate_size, Some(64 << 20));
        assert_eq!(a.rotate_interval, Some(Duration::from_secs(3600)));
        assert_eq!(a.keep_files, Some(48));
        assert_eq!(a.keep_age, Some(Duration::from_secs(7 * 86400)));
        assert_eq!(a.max_total, Some(1 << 30));
        assert!(a.compress);
        assert!(
            s.summary().contains("rotate at 64MiB, rotate every 3600s"),
            "{}",
            s.summary()
        );
        error("[output.file]\nrotate_size = \"1MiB\"\n", "path is missing");
        error("[output.file]\npath = \"journal\"\n", "output.file.path");
        error(
            "[output.file]\npath = \"/x/e.jsonl\"\nkeep_files = 3\n",
            "nothing rotates",
        );
        error(
            "[output.file]\npath = \"/x/e.jsonl\"\nrotate_size = \"1MiB\"\nmax_total = \"1MiB\"\n",
            "make max_total at least 2 MiB",
        );
        error(
            "[output.file]\npath = \"/x/e.jsonl\"\nrotate_size = \"1KiB\"\n",
            "too small",
        );
        error(
            "[output.file]\npath = \"/x/e.jsonl\"\nrotate_interval = \"0s\"\n",
            "output.file.rotate_interval",
        );
        error(
            "[output.file]\npath = \"/x/e.jsonl\"\nkeep = 3\n",
            "unknown key",
        );
        error("[output]\nfiles = 1\n", "unknown key");
    }

    #[test]
    fn defaults_follow_the_spec_and_fit_a_small_host() {
        let d = Settings::default();
        for (i, &f) in Family::ALL.iter().enumerate() {
            assert_eq!(d.rings[i].family, f);
            assert_eq!(d.ring(f).family, f);
            let r = d.ring(f);
            assert!(r.min <= r.size && r.size <= r.max, "{f}");
            assert!(r.size.is_power_of_two() && r.min.is_power_of_two() && r.max.is_power_of_two());
        }
        assert_eq!(d.ring(Family::Anomaly).min, 64 * KIB);
        assert_eq!(d.ring(Family::Anomaly).max, 32 * MIB);
        assert_eq!(d.ring(Family::File).max, 256 * MIB);
        assert!(d.start_total() <= 8 * MIB, "{}", d.start_total());
        assert_eq!(d.start_total(), crate::family::START_TOTAL);
        assert_eq!(d.adaptive.cooldown, Duration::from_secs(60));
        assert_eq!(d.adaptive.policy, PolicyKind::Dynamic);
        assert_eq!(d.sizing.buffer_time, Duration::from_secs(2));
    }

    #[test]
    fn memory_budget_priority_and_loss_weight() {
        let mut s = parse(
            "[sizing]\nmemory_budget = \"3584KiB\"\n[rings.file]\npriority = 7\nloss_weight = 2.5\n",
        )
        .expect("valid");
        assert_eq!(s.sizing.memory_budget, Some(3584 << 10));
        let file = s.ring(Family::File);
        assert_eq!((file.priority, file.loss_weight), (7, 2.5));
        // Defaults: anomaly highest, then process, network, file, cgroup, syscall.
        let d = Settings::default();
        let order: Vec<u32> = [
            Family::Anomaly,
            Family::Process,
            Family::Network,
            Family::File,
            Family::Cgroup,
            Family::Syscall,
        ]
        .iter()
        .map(|&f| d.ring(f).priority)
        .collect();
        assert!(order.windows(2).all(|w| w[0] > w[1]), "{order:?}");
        assert!(d.rings.iter().all(|r| r.loss_weight == 1.0));
        // The start sizes (3.5 MiB in all) are fitted into as much, with room to halve
        // one later: the costliest keep theirs, syscall (the cheapest) gives up half.
        s.fit_budget().expect("fits");
        let before = Settings::default().start_total();
        assert_eq!(before, 3584 << 10);
        assert_eq!(s.start_total(), before - (512 << 10));
        assert_eq!(s.ring(Family::Syscall).size, 512 << 10);
        assert_eq!(s.ring(Family::Anomaly).size, 256 << 10);
        assert_eq!(s.ring(Family::File).size, 1 << 20);
        // A budget that holds every start size as it is changes nothing.
        let mut roomy = parse("[sizing]\nmemory_budget = \"64MiB\"\n").expect("valid");
        roomy.fit_budget().expect("fits");
        assert_eq!(roomy.start_total(), before);
        // Below the minimums: one line naming them and the fix.
        let mut tight = parse("[sizing]\nmemory_budget = \"2MiB\"\n").expect("valid");
        let e = tight.fit_budget().expect_err("too small").to_string();
        assert!(
            e.starts_with("sizing.memory_budget: 2MiB is less than the rings' minimums together (process 256KiB, file 1MiB,")
                && e.ends_with("raise it to at least 2240KiB or lower rings.*.min")
                && !e.contains('\n'),
            "{e}"
        );
        assert_eq!(
            tight
                .fit_budget()
                .map_err(|e| crate::sys::Exit::exit_code(&e)),
            Err(78)
        );
        for (bad, key) in [
            ("[rings.file]\npriority = 0\n", "rings.file.priority"),
            ("[rings.file]\npriority = 10\n", "rings.file.priority"),
            ("[rings.file]\nloss_weight = 0\n", "rings.file.loss_weight"),
            (
                "[sizing]\nmemory_budget = \"lots\"\n",
                "sizing.memory_budget",
            ),
        ] {
            error(bad, key);
        }
    }

    #[test]
    fn the_printed_default_parses_back_to_the_default() {
        let text = default_toml();
        assert_eq!(parse(&text), Ok(Settings::default()), "{text}");
        assert_eq!(parse(""), Ok(Settings::default()));
        for key in [
            "[rings.process]",
            "[rings.anomaly]",
            "[sizing]",
            "[adaptive]",
            "cooldown = \"60s\"",
            "[context]",
            "ancestors = 4",
            "max_processes = 32768",
        ] {
            assert!(text.contains(key), "{key}");
        }
    }

    #[test]
    fn the_issue_layout() {
        let s = parse(
            r#"
            output = "/var/log/ringwarden/events.json"
            families = ["file", "process", "file"]
            syscalls = ["ptrace", 59]
            stats_interval = "5s"
            stats_json = "/run/ringwarden/stats.json"
            [rings.file]            # one table per family
            size = "1MiB"
            min = "64KiB"
            max = "256MiB"
            [rings.network]
            rate = 20000
            [rings.cgroup]
            size = 65536
            [sizing]
            buffer_time = "1s"
            safety_factor = 4
            [adaptive]
            enabled = true
            policy = "hybrid"
            target_utilization = 0.7
            grow_above = 0.9
            shrink_below = 0.3
            adjustment_factor = 1.5
            cooldown = "60s"
            "#,
        )
        .expect("valid");
        assert_eq!(
            s.output,
            Some(PathBuf::from("/var/log/ringwarden/events.json"))
        );
        assert_eq!(s.families, vec![Family::Process, Family::File]);
        assert_eq!(s.syscalls, vec![101, 59]);
        assert_eq!(s.stats_interval, Duration::from_secs(5));
        let file = s.ring(Family::File);
        assert_eq!((file.size, file.min, file.max), (MIB, 64 * KIB, 256 * MIB));
        // rate 20000 × record × 1 s × 4, rounded up.
        let net = s.ring(Family::Network);
        let want = sizing::round_size(net.event_size as f64 * 20_000.0 * 4.0, 4096);
        assert_eq!((net.size, net.rate), (want, Some(20_000.0)));
        assert_eq!(s.ring(Family::Cgroup).size, 64 * KIB);
        assert_eq!(s.adaptive.policy, PolicyKind::Hybrid);
        assert_eq!(s.sizing.safety_factor, 4.0);
        assert!(s.summary().contains("rate: 20000/s"));
    }

    #[test]
    fn unset_size_is_the_default_clamped_into_the_bounds_and_rate_is_clamped_too() {
        let s =
            parse("[rings.process]\nmin = \"4MiB\"\n[rings.anomaly]\nrate = 1e9\n").expect("valid");
        assert_eq!(s.ring(Family::Process).size, 4 * MIB);
        assert_eq!(s.ring(Family::Anomaly).size, 32 * MIB);
        assert!(s.summary().contains("clamped from"));
        let s = parse("[rings.syscall]\nrate = 0.001\n").expect("valid");
        assert_eq!(s.ring(Family::Syscall).size, 512 * KIB, "clamped up to min");
    }

    #[test]
    fn shards_are_a_count_or_auto_and_the_process_ring_stays_one() {
        let s = parse("[rings.file]\nshards = 4\nrate = 40000\n").expect("valid");
        let file = s.ring(Family::File);
        assert_eq!(file.shards, 4);
        // Each shard is sized for its share of the rate.
        let want = sizing::round_size(file.event_size as f64 * 10_000.0 * 2.0, 4096)
            .clamp(file.min, file.max);
        assert_eq!(file.size, want);
        assert!(
            s.summary().contains("4 shards of this size"),
            "{}",
            s.summary()
        );
        assert_eq!(
            s.start_total() - Settings::default().start_total(),
            4 * file.size - Settings::default().ring(Family::File).size
        );
        let auto = parse("[rings.network]\nshards = \"auto\"\n").expect("valid");
        assert_eq!(auto.ring(Family::Network).shards, auto_shards());
        assert_eq!(Settings::default().ring(Family::Network).shards, 1);
        let p = parse("[rings.process]\nshards = \"auto\"\n").expect("valid");
        assert_eq!(p.ring(Family::Process).shards, 1);
        let e = error("[rings.process]\nshards = 2\n", "rings.process.shards");
        assert!(e.contains("process table"), "{e}");
        for bad in ["0", "65", "-1", "\"many\"", "1.5"] {
            let e = error(
                &format!("[rings.file]\nshards = {bad}\n"),
                "rings.file.shards",
            );
            assert!(e.contains("\"auto\""), "{e}");
        }
    }

    #[test]
    fn unknown_keys_name_the_key_its_table_and_the_valid_ones() {
        let e = error("[rings.file]\nsise = 1\n", "rings.file.sise");
        assert_eq!(
            e,
            "line 2: rings.file.sise: unknown key; valid keys are size, min, max, rate, shards, priority, loss_weight"
        );
        error("bogus = 1\n", "bogus");
        let e = error("[adaptive]\ncool_down = \"1s\"\n", "adaptive.cool_down");
        assert!(e.contains("cooldown"), "{e}");
        error("[adaptiv]\nenabled = true\n", "adaptiv");
        error("rings = { file = { sise = 2 } }\n", "sise");
        error("[sizing]\nbuffer = \"1s\"\n", "sizing.buffer");
        let e = error("[rings.disk]\nsize = \"1MiB\"\n", "rings.disk");
        assert!(
            e.starts_with("line 1: ") && e.contains("[rings.file]"),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_name_the_key() {
        error("output = 3\n", "output");
        error("families = \"process\"\n", "families");
        error("families = [1]\n", "families");
        error("syscalls = [true]\n", "syscalls");
        error("[adaptive]\nenabled = \"yes\"\n", "adaptive.enabled");
        error("[adaptive]\ngrow_above = \"high\"\n", "adaptive.grow_above");
        error("[rings.file]\nsize = true\n", "rings.file.size");
        error("[rings.file]\nrate = \"fast\"\n", "rings.file.rate");
        error("[sizing]\nsafety_factor = \"3\"\n", "sizing.safety_factor");
        let e = error("adaptive = 5\n", "adaptive");
        assert!(e.starts_with("line 1: adaptive: "), "{e}");
        error("[rings]\nfile = 5\n", "rings.file");
        error("x = [\n", "line 1");
        error("[adaptive]\nenabled = true\nenabled = false\n", "line 3");
    }

    #[test]
    fn numbers_in_every_toml_form() {
        let s = parse("syscalls = [0o73, 0x65]\n[rings.cgroup]\nsize = 0x1_0000\n[rings.file]\nrate = 1_000\n[wakeup]\nbatch_above = 1e3\n")
            .expect("valid");
        assert_eq!(s.syscalls, vec![59, 101]);
        assert_eq!(s.ring(Family::Cgroup).size, 64 * KIB);
        assert_eq!(s.ring(Family::File).rate, Some(1000.0));
        assert_eq!(s.wakeup.batch_above, 1000.0);
        let e = error(
            "[adaptive]\ncooldown = 99999999999999999999\n",
            "adaptive.cooldown",
        );
        assert!(e.starts_with("line 2: ") && e.contains("too large"), "{e}");
        error("[wakeup]\nbatch_above = 1e999\n", "too large");
        error(
            "control = [\"/run/x.sock\"]\n",
            "expected a table like [control]",
        );
        // Keys that are not bare are shown as written, escaped: one line, no tricks.
        let e = error(
            "[\"rings.file\"]\nsize = 1\n",
            "\"rings.file\": unknown key",
        );
        assert!(e.starts_with("line 1: "), "{e}");
        error("[sizing]\n\"a\\u202eb\" = 1\n", "sizing.\"a\\u{202e}b\"");
        error("syscalls = [1, 99999999999999999999]\n", "syscalls");
        error("output = 1979-05-27\n", "found a date");
        error("[[filter]]\nfamilies = [\"file\"]\n", "filter");
    }

    #[test]
    fn sizes() {
        let e = error("[rings.file]\nsize = \"3MiB\"\n", "rings.file.size");
        assert_eq!(
            e,
            "line 2: rings.file.size: \"3MiB\" is not a power of two; use 2MiB or 4MiB"
        );
        error("[rings.file]\nsize = 100000\n", "64KiB or 128KiB");
        error("[rings.cgroup]\nmin = \"1KiB\"\n", "smaller than a page");
        error("[rings.file]\nmax = \"4GiB\"\n", "2GiB");
        error("[rings.file]\nsize = \"8XB\"\n", "unknown unit");
        error("[rings.file]\nsize = -5\n", "rings.file.size");
        let e = error(
            "[rings.file]\nmin = \"8MiB\"\nmax = \"4MiB\"\n",
            "rings.file.min",
        );
        assert!(e.contains("lower min or raise max"), "{e}");
        // Against a default bound: the key set in the file is blamed.
        error("[rings.cgroup]\nmin = \"32MiB\"\n", "rings.cgroup.min");
        let e = error("[rings.file]\nsize = \"512KiB\"\n", "rings.file.size");
        assert!(e.contains("below min (1MiB)"), "{e}");
        error("[rings.anomaly]\nsize = \"64MiB\"\n", "above max (32MiB)");
    }

    #[test]
    fn rate() {
        let e = error("[rings.file]\nsize = \"1MiB\"\nrate = 5000\n", "rings.file");
        assert!(e.contains("both size and rate"), "{e}");
        error("[rings.file]\nrate = 0\n", "rings.file.rate");
        error("[rings.file]\nrate = -3.5\n", "rings.file.rate");
        error("[rings.file]\nrate = nan\n", "rings.file.rate");
        error("[rings.file]\nrate = inf\n", "rings.file.rate");
    }

    #[test]
    fn thresholds_and_factors() {
        error("[adaptive]\ngrow_above = 1.5\n", "adaptive.grow_above");
        error(
            "[adaptive]\ntarget_utilization = 0\n",
            "adaptive.target_utilization",
        );
        error("[adaptive]\nshrink_below = -0.1\n", "adaptive.shrink_below");
        let e = error("[adaptive]\nshrink_below = 0.95\n", "adaptive.shrink_below");
        assert!(e.contains("must be below target_utilization"), "{e}");
        let e = error("[adaptive]\ngrow_above = 0.6\n", "adaptive.grow_above");
        assert!(e.contains("must be below grow_above"), "{e}");
        // grow_above = 1 (grow on drops only) and shrink_below = 0 (never shrink) are fine.
        assert!(parse("[adaptive]\ngrow_above = 1\nshrink_below = 0\n").is_ok());
        error(
            "[adaptive]\nadjustment_factor = 3\n",
            "adaptive.adjustment_factor",
        );
        error("[adaptive]\nadjustment_factor = 1.1\n", "1.2 to 2");
        error("[adaptive]\npolicy = \"smart\"\n", "adaptive.policy");
        error("[adaptive]\npolicy = 1\n", "hybrid");
        error("[sizing]\nsafety_factor = 0.5\n", "sizing.safety_factor");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("2 fortnights").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert_eq!(fmt_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(fmt_duration(Duration::from_micros(500)), "500us");
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        let s =
            parse("[adaptive]\ncooldown = 5\n[sizing]\nbuffer_time = \"500ms\"\n").expect("valid");
        assert_eq!(s.adaptive.cooldown, Duration::from_secs(5));
        assert_eq!(s.sizing.buffer_time, Duration::from_millis(500));
        error("[adaptive]\ncooldown = \"soon\"\n", "adaptive.cooldown");
        error("[adaptive]\ncooldown = \"2h\"\n", "1s to 3600s");
        error("[adaptive]\ncooldown = \"10ms\"\n", "adaptive.cooldown");
        error("[sizing]\nbuffer_time = \"2m\"\n", "sizing.buffer_time");
        error("stats_interval = \"1500ms\"\n", "whole seconds");
        error("stats_interval = 0\n", "stats_interval");
    }

    #[test]
    fn lists() {
        let e = error("syscalls = [\"ptrace\", \"nosuchcall\"]\n", "syscalls");
        assert!(e.contains("nosuchcall"), "{e}");
        error("syscalls = []\n", "syscalls");
        let e = error("families = [\"process\", \"disk\"]\n", "families");
        assert!(e.contains("disk"), "{e}");
        error("families = []\n", "families");
        error("output = \"\"\n", "output");
        assert_eq!(parse("output = \"-\"\n").map(|s| s.output), Ok(None));
    }

    #[test]
    fn messages_stay_on_one_line() {
        error("[rings.file]\nsize = \"3\\nMiB\"\n", "rings.file.size");
        error("families = [\"a\\nb\"]\n", "families");
        assert_eq!(one_line("a\nb\tc"), "a b c");
    }

    #[test]
    fn metrics_allow_hosts() {
        let s = parse(
            "[metrics]\nlisten = \"127.0.0.1:9731\"\nallow_hosts = [\"Metrics.Example.LAN\", \"prom-1\", \"prom-1\"]\n",
        )
        .expect("valid");
        assert_eq!(s.metrics.allow_hosts, ["metrics.example.lan", "prom-1"]);
        assert!(s.summary().contains(
            "metrics: http://127.0.0.1:9731/metrics, Host also metrics.example.lan, prom-1; control socket:"
        ));
        assert!(Settings::default().metrics.allow_hosts.is_empty());
        let e = error(
            "[metrics]\nallow_hosts = [\"prom.lan:9090\"]\n",
            "metrics.allow_hosts",
        );
        assert_eq!(
            e,
            "line 2: metrics.allow_hosts: \"prom.lan:9090\" is not a host name; write names like \"metrics.example.lan\" (no port; addresses and localhost are always accepted)"
        );
        for bad in [
            "[\"*.lan\"]",
            "[\"a..b\"]",
            "[\"-a\"]",
            "[\"a b\"]",
            "[\"\"]",
            "[1]",
            "[]",
            "\"prom.lan\"",
        ] {
            error(
                &format!("[metrics]\nallow_hosts = {bad}\n"),
                "metrics.allow_hosts",
            );
        }
    }

    #[test]
    fn metrics_and_control() {
        let s = parse(
            "[metrics]\nlisten = \"[::1]:9731\"\ntextfile = \"/var/lib/x/ringwarden.prom\"\n[control]\nsocket = \"/tmp/rw.sock\"\n",
        )
        .expect("valid");
        assert_eq!(s.metrics.listen, Some("[::1]:9731".parse().expect("addr")));
        assert_eq!(
            s.metrics.textfile,
            Some(PathBuf::from("/var/lib/x/ringwarden.prom"))
        );
        assert_eq!(s.control.socket, Some(PathBuf::from("/tmp/rw.sock")));
        assert!(check_metrics(&s.metrics).is_ok());
        let s = parse("[metrics]\nlisten = \"off\"\n[control]\nsocket = \"off\"\n").expect("valid");
        assert_eq!((s.metrics.listen, s.control.socket), (None, None));
        assert_eq!(
            Settings::default().control.socket,
            Some(PathBuf::from("/run/ringwarden/control.sock"))
        );
        assert_eq!(Settings::default().metrics.listen, None, "off by default");
        let e = error("[metrics]\nlisten = \"localhost\"\n", "metrics.listen");
        assert_eq!(
            e,
            "line 2: metrics.listen: \"localhost\" is not an address; write IP:PORT like \"127.0.0.1:9731\" or \"[::1]:9731\", or \"off\""
        );
        error("[metrics]\nlisten = 9731\n", "metrics.listen");
        error(
            "[metrics]\nallow_remote = \"yes\"\n",
            "metrics.allow_remote",
        );
        error("[metrics]\ntextfile = \"/tmp/ringwarden.txt\"\n", "*.prom");
        error("[metrics]\ntextfile = \"\"\n", "metrics.textfile");
        error("[metrics]\nport = 1\n", "metrics.port");
        error("[control]\nsocket = \"\"\n", "control.socket");
        // Remote addresses need allow_remote.
        let remote = parse("[metrics]\nlisten = \"0.0.0.0:9731\"\n").expect("parses");
        let e = check_metrics(&remote.metrics)
            .expect_err("remote")
            .to_string();
        assert!(
            e.starts_with("metrics listen address 0.0.0.0:9731 is not loopback")
                && e.contains("allow_remote = true")
                && !e.contains('\n'),
            "{e}"
        );
        let ok =
            parse("[metrics]\nlisten = \"0.0.0.0:9731\"\nallow_remote = true\n").expect("parses");
        assert!(check_metrics(&ok.metrics).is_ok());
        for (addr, fine) in [
            ("127.0.0.1:1", true),
            ("127.1.2.3:1", true),
            ("[::1]:1", true),
            ("[::ffff:127.0.0.1]:1", true),
            ("[::]:1", false),
            ("10.0.0.1:1", false),
        ] {
            let m = MetricsSettings {
                listen: parse_listen(addr).expect("addr"),
                ..MetricsSettings::default()
            };
            assert_eq!(check_metrics(&m).is_ok(), fine, "{addr}");
        }
        assert!(
            Settings::default()
                .summary()
                .contains("metrics: off; control socket: /run/ringwarden/control.sock")
        );
    }

    #[test]
    fn context() {
        let d = Settings::default();
        assert_eq!(d.context, ContextSettings::default());
        assert!(
            d.summary()
                .contains("context: on, 4 ancestors, up to 32768 processes and 4096 cgroups"),
            "{}",
            d.summary()
        );
        let s = parse(
            "[context]\nenabled = false\nancestors = 16\nmax_processes = 4194304\nmax_cgroups = 16\n",
        )
        .expect("valid");
        assert_eq!(
            s.context,
            ContextSettings {
                enabled: false,
                ancestors: ContextSettings::MAX_ANCESTORS,
                max_processes: 4_194_304,
                max_cgroups: 16,
            }
        );
        assert!(s.summary().contains("context: off"), "{}", s.summary());
        // 0 turns the field off; the lowest bounds; a key left out keeps its default.
        let s = parse("[context]\nancestors = 0\nmax_processes = 64\nmax_cgroups = 1048576\n")
            .expect("valid");
        assert_eq!(
            (
                s.context.enabled,
                s.context.ancestors,
                s.context.max_processes
            ),
            (true, 0, 64)
        );
        assert_eq!(s.context.max_cgroups, 1_048_576);
        let s = parse("[context]\nancestors = 2\n").expect("valid");
        assert_eq!(
            s.context,
            ContextSettings {
                ancestors: 2,
                ..ContextSettings::default()
            }
        );
    }

    #[test]
    fn tls_settings_and_their_bad_values() {
        let s = parse("[tls]\ncount_bytes = true\ncapture_bytes = 256\n").expect("valid");
        assert_eq!(
            s.tls,
            crate::family::tls::TlsSettings {
                count_bytes: true,
                capture_bytes: 256
            }
        );
        assert_eq!(
            parse("").expect("valid").tls,
            crate::family::tls::TlsSettings::default()
        );
        let e = error("[tls]\ncapture_bytes = 257\n", "tls.capture_bytes");
        assert_eq!(
            e,
            "line 2: tls.capture_bytes: 257 is out of range; use 0 (off) to 256 bytes of each direction, e.g. 64"
        );
        error("[tls]\ncount_bytes = 1\n", "tls.count_bytes");
        error("[tls]\ncapture = 1\n", "capture");
    }

    #[test]
    fn context_bad_values_name_the_key_and_the_range() {
        let e = error("[context]\nancestors = 17\n", "context.ancestors");
        assert_eq!(
            e,
            "line 2: context.ancestors: 17 is out of range; use 0 (no ancestors field) to 16 (deeper chains cost every event more than they tell), e.g. 4"
        );
        error(
            "[context]\nancestors = -1\n",
            "0 (no ancestors field) to 16",
        );
        error("[context]\nancestors = \"4\"\n", "found \"4\"");
        error("[context]\nancestors = 2.5\n", "expected a whole number");
        let e = error(
            "# a comment\n[context]\nmax_processes = 5000000\n",
            "context.max_processes",
        );
        assert_eq!(
            e,
            "line 3: context.max_processes: 5000000 is out of range; use 64 to 4194304 (the kernel's pid_max limit: no host runs more), e.g. 32768"
        );
        error("[context]\nmax_processes = 63\n", "use 64 to 4194304");
        error("[context]\nmax_processes = 0\n", "context.max_processes");
        error(
            "[context]\nmax_processes = \"32k\"\n",
            "context.max_processes",
        );
        error(
            "[context]\nmax_processes = 9223372036854775807\n",
            "context.max_processes",
        );
        let e = error("[context]\nmax_cgroups = 15\n", "context.max_cgroups");
        assert_eq!(
            e,
            "line 2: context.max_cgroups: 15 is out of range; use 16 to 1048576, e.g. 4096"
        );
        error("[context]\nmax_cgroups = 1048577\n", "use 16 to 1048576");
        error("[context]\nmax_cgroups = true\n", "context.max_cgroups");
        let e = error("[context]\nenabled = \"no\"\n", "context.enabled");
        assert!(e.contains("expected true or false"), "{e}");
        let e = error("[context]\nancestor = 4\n", "context.ancestor");
        assert_eq!(
            e,
            "line 2: context.ancestor: unknown key; valid keys are enabled, ancestors, max_processes, max_cgroups"
        );
        error("context = 5\n", "context");
        error("context = { depth = 2 }\n", "depth");
    }

    #[test]
    fn load_names_the_file() {
        let e = Settings::load(Path::new("/nonexistent/ringwarden.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/ringwarden.toml: cannot read"),
            "{e}"
        );
    }
}
