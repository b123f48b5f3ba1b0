//! The command line applied over the configuration: what `run` was told, kept so that a
//! SIGHUP re-reads the file and applies the same command line again.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{Error, Settings, WakeupMode};
use crate::config;
use crate::family::Family;
use crate::sizing::policy::PolicyKind;
use crate::sys::{Exit, exit};
use crate::units::human;

/// What the command line said for `run`, kept so that a reload applies it again over the
/// re-read file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    /// Where to look without --config (tests point it at a file that does not exist).
    pub default_path: PathBuf,
    pub output: Option<Option<PathBuf>>,
    pub families: Option<Vec<Family>>,
    pub ring_sizes: Vec<(Family, u64)>,
    pub syscalls: Option<Vec<u32>>,
    pub stats_interval_s: Option<u64>,
    pub stats_json: Option<PathBuf>,
    /// `Some(None)`: adaptive sizing off; `Some(Some(p))`: on with policy p.
    pub adaptive: Option<Option<PolicyKind>>,
    pub wakeup: Option<WakeupMode>,
    /// `Some(None)`: --metrics-listen off.
    pub metrics_listen: Option<Option<SocketAddr>>,
    pub metrics_allow_remote: bool,
    /// `--program-stats`: `[metrics] program_stats = true`.
    pub program_stats: bool,
    pub control_socket: Option<Option<PathBuf>>,
    pub filter: super::filter::FilterOverrides,
    /// `--no-context`: `[context] enabled = false` whatever the file says.
    pub no_context: bool,
    /// `--rotate-size` and the rest: each replaces its `[output.file]` key.
    pub archive: ArchiveOverrides,
    /// `--memory-budget`: `[sizing] memory_budget`.
    pub memory_budget: Option<u64>,
    /// `--record-rates`: a trace for `sizing simulate`.
    pub record_rates: Option<PathBuf>,
}

/// The archive's options given on the command line.
#[derive(Clone, Debug, Default)]
pub struct ArchiveOverrides {
    pub rotate_size: Option<u64>,
    pub rotate_interval: Option<Duration>,
    pub keep_files: Option<u32>,
    pub keep_age: Option<Duration>,
    pub max_total: Option<u64>,
    pub compress: Option<bool>,
}

impl ArchiveOverrides {
    fn apply(&self, a: &mut super::archive::ArchiveSettings) {
        a.rotate_size = self.rotate_size.or(a.rotate_size);
        a.rotate_interval = self.rotate_interval.or(a.rotate_interval);
        a.keep_files = self.keep_files.or(a.keep_files);
        a.keep_age = self.keep_age.or(a.keep_age);
        a.max_total = self.max_total.or(a.max_total);
        a.compress = self.compress.unwrap_or(a.compress);
    }
}

/// The daemon's input: the configuration (file or built-in default) with the command line
/// applied. The plain fields mirror `settings` for the daemon's convenience.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub output: Option<PathBuf>,
    pub families: Vec<Family>,
    /// As given with --ring-size (already applied to `settings`).
    #[allow(dead_code)] // kept for the daemon's callers; ring_size() is the resolved view
    pub ring_sizes: Vec<(Family, u64)>,
    pub syscalls: Vec<u32>,
    pub stats_interval_s: u64,
    pub stats_json: Option<PathBuf>,
    /// Start sizes lowered to fit `[sizing] memory_budget`: (family, configured, fitted).
    pub fitted: Vec<(Family, u64, u64)>,
    /// `--record-rates`: where each tick's ring observations go (command line only).
    pub record_rates: Option<PathBuf>,
    /// The file the settings came from; `None` for the built-in default.
    pub config_path: Option<PathBuf>,
    pub settings: Settings,
    overrides: Overrides,
}

impl RunOptions {
    /// The family's resolved start size (--ring-size, else the file, else the default,
    /// fitted into the memory budget).
    pub fn ring_size(&self, f: Family) -> u64 {
        self.settings.ring(f).size
    }

    /// Re-reads the configuration (for SIGHUP) and applies the same command line over it.
    /// The error is the same one line as at start.
    pub fn reload(&self) -> Result<RunOptions, Error> {
        resolve(self.overrides.clone())
    }
}

/// Loads the file (or the built-in default) and applies the command line.
pub fn resolve(ov: Overrides) -> Result<RunOptions, Error> {
    let path = match &ov.config {
        Some(p) => Some(p.clone()),
        // Only a missing default file means "built-in default"; an unreadable one is an error.
        None => match std::fs::metadata(&ov.default_path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            _ => Some(ov.default_path.clone()),
        },
    };
    let (mut s, bounds) = match &path {
        Some(p) => Settings::load_with_bounds(p)?,
        None => (Settings::default(), vec![(false, false); Family::ALL.len()]),
    };
    if let Some(o) = &ov.output {
        // Another output: the file's [output.file] was about its own path.
        s.output = o.clone();
        s.archive = Default::default();
    }
    if let Some(f) = &ov.families {
        s.families = f.clone();
    }
    if let Some(n) = &ov.syscalls {
        s.syscalls = n.clone();
    }
    if let Some(i) = ov.stats_interval_s {
        s.stats_interval = Duration::from_secs(i);
    }
    if let Some(p) = &ov.stats_json {
        s.stats_json = Some(p.clone());
    }
    if let Some(m) = ov.wakeup {
        s.wakeup.mode = m;
    }
    if let Some(a) = ov.adaptive {
        s.adaptive.enabled = a.is_some();
        if let Some(p) = a {
            s.adaptive.policy = p;
        }
    }
    if let Some(m) = ov.metrics_listen {
        s.metrics.listen = m;
    }
    s.metrics.allow_remote |= ov.metrics_allow_remote;
    s.metrics.program_stats |= ov.program_stats;
    if let Some(c) = &ov.control_socket {
        s.control.socket = c.clone();
    }
    if ov.no_context {
        s.context.enabled = false;
    }
    ov.filter.apply(&mut s.filter);
    ov.archive.apply(&mut s.archive);
    s.archive
        .check()
        .map_err(|e| Error::Invalid(config::one_line(&format!("output file: {e}"))))?;
    config::check_metrics(&s.metrics)?;
    for &(f, size) in &ov.ring_sizes {
        let (min_set, max_set) = bounds[f as usize];
        let r = s.ring_mut(f);
        // The command line may move a built-in bound (a one-page ring for a test, a big
        // ring on a big host), not one the file sets.
        if (size < r.min && min_set) || (size > r.max && max_set) {
            let from = path
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string());
            return Err(Error::Invalid(config::one_line(&format!(
                "--ring-size {f}={}: outside rings.{f} min {} and max {} set in {from}; pick a size in that range or change min/max there",
                human(size),
                human(r.min),
                human(r.max)
            ))));
        }
        r.min = r.min.min(size);
        r.max = r.max.max(size);
        r.size = size;
        r.rate = None;
    }
    if let Some(b) = ov.memory_budget {
        s.sizing.memory_budget = Some(b);
    }
    let fitted = s.fit_budget()?;
    Ok(RunOptions {
        fitted,
        output: s.output.clone(),
        families: s.families.clone(),
        ring_sizes: ov.ring_sizes.clone(),
        syscalls: s.syscalls.clone(),
        stats_interval_s: s.stats_interval.as_secs(),
        stats_json: s.stats_json.clone(),
        record_rates: ov.record_rates.clone(),
        config_path: path,
        settings: s,
        overrides: ov,
    })
}

/// A bad command line: the message is one line, printed after "ringwarden: ".
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// Not a command line ringwarden understands: exit 64.
    #[error("{0}")]
    Usage(String),
    /// A value that is wrong, on the command line or in the file it names: exit 78.
    #[error(transparent)]
    Config(#[from] Error),
}

impl Exit for CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => exit::USAGE,
            CliError::Config(e) => e.exit_code(),
        }
    }
}

pub fn usage(msg: String) -> CliError {
    CliError::Usage(msg)
}

pub fn config(msg: String) -> CliError {
    CliError::Config(Error::Invalid(msg))
}
