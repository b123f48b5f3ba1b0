//! The event loop: one thread, one mio::Poll over every ring fd, a signalfd, timerfds and
//! whatever the observers (metrics, control socket) register. Data path: ring -> consumer
//! ([`consumer`]) -> [`ring::Pipeline::record`] -> the sink.
pub mod consumer;
pub mod gaps;
pub mod record;
pub mod reload;
pub mod ring;
pub mod snapshot;
pub mod throttle;

use crate::family::filter::Filters;
use crate::output::Throttle;
use std::cell::{LazyCell, RefCell};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{error, info, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use crate::config::cli::RunOptions;
use crate::config::{Settings, WakeupMode};
use crate::context::Context;
use crate::family::{self, Family, LoadOptions, Shared};
use crate::output;
use crate::sizing::budget::{self, Entry, Step};
use crate::sizing::policy::{Observation, RingPolicy};
use crate::sys::{self, Exit, clock, clock::WallClock, exit};
use crate::systemd::notify::{self, Notifier};
use crate::units::{fmt_size, human};
use reload::Action;
use ring::{
    BUDGET, Books, Drained, Pipeline, Ring, make_ring, shard_settings, shutdown, stats_line,
};
use snapshot::{Program, ProgramState, RunStats, Snapshot};

/// The loop's timer: safety-net drain, clock refresh and sizing decisions.
const TICK: Duration = Duration::from_secs(1);
/// The shortest period a sizing decision is based on.
const MIN_OBSERVATION: Duration = Duration::from_millis(500);

/// Tokens from this number up belong to the observers (see [`Observer`]); the daemon's
/// own are below it.
pub const OBSERVER_TOKENS: usize = 1 << 10;

/// What a mio token stands for. A ring's token is its family's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Ring(usize),
    Signal,
    Timer,
    Sink,
    Flush,
    Watchdog,
    Observer,
}

impl Slot {
    /// The loop's own fds come after the rings, well below the observers' tokens.
    const FIRST_OWN: usize = OBSERVER_TOKENS / 2;
    const OWN: [Slot; 5] = [
        Slot::Signal,
        Slot::Timer,
        Slot::Sink,
        Slot::Flush,
        Slot::Watchdog,
    ];

    fn token(self) -> Token {
        Token(match self {
            Slot::Ring(i) => i,
            Slot::Observer => OBSERVER_TOKENS,
            own => Slot::FIRST_OWN + Slot::OWN.iter().position(|&s| s == own).unwrap_or(0),
        })
    }

    fn of(t: Token) -> Slot {
        match t.0 {
            i if i >= OBSERVER_TOKENS => Slot::Observer,
            i if i >= Slot::FIRST_OWN => Slot::OWN
                .get(i - Slot::FIRST_OWN)
                .copied()
                .unwrap_or(Slot::Observer),
            i => Slot::Ring(i),
        }
    }
}

/// A snapshot of the books, taken at most once per tick and only if someone looks.
pub type LazySnapshot<'a> = LazyCell<Snapshot, &'a dyn Fn() -> Snapshot>;

/// What else runs on the daemon's loop (`crate::obs`: metrics, control socket, alerts).
/// It registers its fds with tokens from [`OBSERVER_TOKENS`] up and sees the books only
/// through snapshots.
pub trait Observer {
    /// A readiness event for one of its tokens.
    fn ready(&mut self, t: Token, registry: &Registry, snapshot: &dyn Fn() -> Snapshot);
    /// Every tick, with what the rings' policies observed.
    fn tick(
        &mut self,
        registry: &Registry,
        observed: &[(&'static str, Observation)],
        snapshot: &LazySnapshot<'_>,
    );
    /// After SIGHUP, with the new settings.
    fn reload(&mut self, settings: &Settings, registry: &Registry);
    /// At shutdown, after the final books.
    fn finish(&mut self, registry: &Registry);
}

/// Why the daemon could not run, or a family or ring could not be had. The exit status
/// is 78 for a bad configuration value (an unwritable --output or --stats-json), 1 for
/// anything else.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `--output` cannot be opened (78).
    #[error(transparent)]
    Output(#[from] output::Error),
    /// `--stats-json` is not in a writable directory (78).
    #[error(
        "cannot write --stats-json {path:?} ({tmp:?}: {source}); give a path in a writable directory"
    )]
    StatsJson {
        path: PathBuf,
        tmp: PathBuf,
        source: io::Error,
    },
    /// `--record-rates` cannot be created (78).
    #[error("cannot write --record-rates {path:?}: {source}; give a path in a writable directory")]
    RecordRates { path: PathBuf, source: io::Error },
    /// An observer (metrics, control socket) could not start (1).
    #[error("{0}")]
    Observer(String),
    /// A family, its maps or its ring (1).
    #[error(transparent)]
    Family(#[from] family::Error),
    /// The loop's own machinery, `what` failed: poll, registering an fd (1).
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    /// Signals and timers (1).
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: nix::Error,
    },
    /// No family attached a single program (1).
    #[error("no BPF program could be attached; run `ringwarden check` to see why")]
    NothingAttached,
    /// A family switched on by SIGHUP finds no room in the memory budget (1).
    #[error(
        "the memory budget has {free} free and the {family} ring needs at least {need}; raise [sizing] memory_budget or switch another family off"
    )]
    NoRoom {
        family: Family,
        free: String,
        need: String,
    },
}

impl Exit for RunError {
    fn exit_code(&self) -> u8 {
        match self {
            RunError::Output(e) => e.exit_code(),
            RunError::StatsJson { .. } | RunError::RecordRates { .. } => exit::CONFIG,
            RunError::Family(e) => e.exit_code(),
            RunError::Observer(_)
            | RunError::Io { .. }
            | RunError::Sys { .. }
            | RunError::NothingAttached
            | RunError::NoRoom { .. } => exit::RUNTIME,
        }
    }
}

impl RunError {
    fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> RunError {
        move |source| RunError::Io {
            what: what.into(),
            source,
        }
    }

    fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> RunError {
        move |source| RunError::Sys { what, source }
    }
}

/// A shard's observation for this tick, with its counters moved on; `None` right after a
/// (re)start or a swap, which would measure almost nothing (a rate over a few
/// milliseconds would mislead the predictive average).
fn observe_shard(r: &mut Ring, slot: usize, now: Duration) -> Option<Observation> {
    let size = r.loaded.shard_size(slot);
    let p = &mut r.shards[slot];
    if now.saturating_sub(p.last_at) < MIN_OBSERVATION {
        return None;
    }
    let c = r.loaded.try_counters(slot)?;
    // Bytes read over records read: what a record took (a swap starts a new ring's
    // position at 0: unknown for that tick).
    let (pos, received) = (p.position(), p.books.received.get());
    let records = received.saturating_sub(p.received_at_obs);
    let record = match pos.checked_sub(p.pos_at_obs) {
        Some(bytes) if records > 0 => bytes / records,
        _ => 0,
    };
    let obs = Observation {
        now,
        size,
        high_water: r.loaded.take_high_water(slot),
        produced: c.produced.saturating_sub(p.last.produced),
        dropped: c.dropped.saturating_sub(p.last.dropped),
        elapsed: now.saturating_sub(p.last_at),
        record,
    };
    p.last = c;
    // A burst is judged again from this observation's rate.
    r.burst = false;
    p.received_at_obs = received;
    p.pos_at_obs = pos;
    p.last_at = now;
    p.high_water = obs.high_water;
    let secs = obs.elapsed.as_secs_f64();
    p.rate = if secs > 0.0 {
        obs.produced as f64 / secs
    } else {
        0.0
    };
    Some(obs)
}

/// Bytes in every shard of every ring now: what the memory budget bounds.
pub fn ring_memory(rings: &[Ring]) -> u64 {
    rings.iter().map(|r| r.loaded.ring_bytes()).sum()
}

/// Runs the daemon until SIGINT or SIGTERM. `observe` starts the observer before any
/// family is loaded (a metrics port that cannot be had stops the start: exit 1).
pub fn run<O: Observer, E: std::fmt::Display>(
    opts: RunOptions,
    observe: impl FnOnce(&Settings, &Registry) -> Result<O, E>,
) -> Result<(), RunError> {
    let started = Instant::now();
    prepare_process();
    let mut d = Daemon::new(opts, started)?;
    let mut observer = observe(&d.opts.settings, d.poll.registry())
        .map_err(|e| RunError::Observer(e.to_string()))?;
    d.load_families()?;
    let mut notifier = Notifier::from_env();
    d.register_loop_fds(&notifier)?;
    d.log_ready();
    notifier.ready(&d.status());
    d.serve(&mut observer, &mut notifier)?;
    d.finish(&mut observer);
    Ok(())
}

/// What the process needs before anything is loaded.
fn prepare_process() {
    sys::raise_memlock();
    sys::route_libbpf_log();
    if let Err(e) = sys::ensure_tracefs() {
        warn!("{e}");
    }
    // SIGPIPE would kill us on a closed stdout; a write error is counted instead.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// `--stats-json PATH` is written via a temporary file beside it: check now, not at
/// the first tick, that this works.
fn check_writable_dir(path: &Path) -> Result<(), RunError> {
    let tmp = tmp_path(path);
    sys::can_create(&tmp).map_err(|source| RunError::StatsJson {
        path: path.to_path_buf(),
        tmp,
        source,
    })
}

fn timerfd() -> Result<TimerFd, RunError> {
    TimerFd::new(
        ClockId::CLOCK_MONOTONIC,
        TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
    )
    .map_err(RunError::sys("creating timerfd"))
}

/// The loop's state: the options in force, one Ring per running family, and the books
/// of families switched off by a reload (kept so that switching one on again continues
/// its numbers).
struct Daemon {
    opts: RunOptions,
    poll: Poll,
    sigfd: SignalFd,
    /// The 1 s tick.
    timer: TimerFd,
    /// Drains batching rings every `wakeup.latency`; armed only while a ring batches.
    flush: TimerFd,
    flush_armed: bool,
    rings: Vec<Ring>,
    retired: Vec<Retired>,
    pipe: Rc<RefCell<Pipeline>>,
    /// Rings with records to consume, by family index (the ring's mio token).
    pending: Vec<bool>,
    started: Instant,
    last_stats: Instant,
    /// Changes to the daemon's maps made behind its back, found so far.
    tamper_total: u64,
    /// The daemon's kernel tgid as the programs learned it in a PID namespace, once known.
    self_tgid: Option<u32>,
    /// The filter object, whose maps every family's object shares (`None`: it could not
    /// load and no rule is configured).
    filters: Option<Filters>,
    /// When rate limits start and stop refusing (`throttle` records).
    throttle: throttle::Tracker,
    /// Process context is kept (from the start: a reload changes it at the next start).
    context_on: bool,
    /// `[metrics] program_stats`: the fd that keeps the kernel's run-time statistics on,
    /// and since when.
    program_stats: Option<(OwnedFd, Instant)>,
    /// `--record-rates`: each tick's observations, for `sizing simulate`.
    recorder: Option<record::Recorder>,
}

/// A family switched off at run time: its counter maps and userspace counts.
struct Retired {
    family: Family,
    shared: Shared,
    /// Each shard's.
    books: Vec<Books>,
}

impl Daemon {
    /// The output, the signals (first, so a SIGTERM during the slow load is not lost),
    /// the poll and the timers; nothing loaded yet.
    fn new(opts: RunOptions, started: Instant) -> Result<Daemon, RunError> {
        let context_on = opts.settings.context.enabled;
        let sink = crate::output::open(opts.output.as_deref(), &opts.settings.archive)?;
        if let Some(p) = &opts.stats_json {
            check_writable_dir(p)?;
        }
        let recorder = match &opts.record_rates {
            Some(p) => {
                Some(
                    record::Recorder::create(p).map_err(|source| RunError::RecordRates {
                        path: p.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGUSR1,
        ] {
            mask.add(s);
        }
        mask.thread_block()
            .map_err(RunError::sys("blocking signals"))?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(RunError::sys("creating signalfd"))?;
        let poll = Poll::new().map_err(RunError::io("creating poll"))?;
        let flush = timerfd()?;
        register(poll.registry(), flush.as_fd().as_raw_fd(), Slot::Flush)
            .map_err(RunError::io("registering timerfd"))?;
        Ok(Daemon {
            opts,
            poll,
            sigfd,
            timer: timerfd()?,
            flush,
            flush_armed: false,
            rings: Vec::new(),
            retired: Vec::new(),
            pipe: Rc::new(RefCell::new(Pipeline::new(sink, None))),
            pending: vec![false; Family::ALL.len()],
            started,
            last_stats: Instant::now(),
            tamper_total: 0,
            self_tgid: None,
            filters: None,
            throttle: throttle::Tracker::default(),
            context_on,
            program_stats: None,
            recorder,
        })
    }

    /// Keeps the kernel's run-time statistics on while `[metrics] program_stats` says so
    /// (closing the fd turns them off, unless something else holds them on).
    fn set_program_stats(&mut self) {
        let want = self.opts.settings.metrics.program_stats;
        match (&self.program_stats, want) {
            (None, true) => match family::loader::enable_run_stats() {
                Ok(fd) => {
                    info!("program run statistics on (BPF_ENABLE_STATS)");
                    self.program_stats = Some((fd, Instant::now()));
                }
                Err(e) => warn!(
                    "program_stats: the kernel's run statistics could not be turned on: {e}; no per-program costs are shown"
                ),
            },
            (Some(_), false) => {
                self.program_stats = None;
                info!("program run statistics off");
            }
            _ => {}
        }
    }

    /// Every configured family; one that cannot load is logged and left out. Errors
    /// only when no program at all could be attached.
    fn load_families(&mut self) -> Result<(), RunError> {
        // Every object is opened from one decoded copy, freed when the start is done.
        let _objects = family::objects::hold();
        self.set_program_stats();
        self.load_filters()?;
        for family in self.loaded_families() {
            if let Err(e) = self.enable(family) {
                error!("family {family} disabled: {e}");
            }
        }
        self.set_emits();
        self.start_context();
        self.update_wakeups();
        if self.rings.iter().all(|r| r.loaded.attached() == 0) {
            return Err(RunError::NothingAttached);
        }
        Ok(())
    }

    /// The configured families, and the process and cgroup families when context is on:
    /// their records keep the process and cgroup tables whether or not they are written
    /// out (a cgroup's path from its mkdir record: one removed before its events are
    /// written could no longer be asked of the kernel).
    fn loaded_families(&self) -> Vec<Family> {
        self.opts.settings.loaded_families(self.context_on)
    }

    /// Which families' records are written out: the configured ones.
    fn set_emits(&mut self) {
        let mut p = self.pipe.borrow_mut();
        for &f in Family::ALL {
            p.emits[f.index()] = self.opts.families.contains(&f);
        }
    }

    /// The process table, seeded from /proc once the programs run: a process that
    /// starts after the seed is in the process ring, one from before is in /proc.
    fn start_context(&mut self) {
        let c = self.opts.settings.context;
        if !self.context_on {
            return;
        }
        let t = Instant::now();
        let fed = self.has_ring(Family::Process);
        let mount = crate::context::cgroups::find_mount();
        let proc_root = Path::new("/proc");
        let host_proc = crate::context::proc_shows_kernel_pids(proc_root);
        if !host_proc {
            warn!(
                "context: running in a PID namespace, so /proc is not read (its pids may not be the ones events carry): processes older than the daemon are unknown until they exec"
            );
        }
        let ctx = Context::start(
            c,
            host_proc.then_some(proc_root),
            mount.as_deref(),
            Path::new("/etc/passwd"),
        );
        info!(
            "context: {} processes known from /proc, {} cgroups from {} in {} ms{}",
            ctx.processes(),
            ctx.cgroups(),
            mount
                .as_ref()
                .map_or("no cgroup2 mount".to_string(), |m| m.display().to_string()),
            t.elapsed().as_millis(),
            if fed {
                ""
            } else {
                " (the process family did not load: they will not be kept current)"
            }
        );
        let mut p = self.pipe.borrow_mut();
        p.context = Some(ctx);
        if !fed {
            // Nothing to wait for: no record is ever held back.
            p.covered_until = u64::MAX;
        }
    }

    /// The filter object with the configured rules, before any family (their objects
    /// take its maps). Without it no event can be filtered: an error if rules are set.
    fn load_filters(&mut self) -> Result<(), RunError> {
        let rules = &self.opts.settings.filter;
        let mut f = match Filters::load() {
            Ok(f) => f,
            Err(e) if rules.is_empty() => {
                warn!("filters unavailable (none configured): {e}");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        for e in &f.attach_errors {
            warn!("filter program {e}: include_pid_tree cannot follow new processes");
        }
        f.apply(rules)?;
        info!("filters: {}", rules.summary());
        if let Some(b) = self.opts.settings.sizing.memory_budget {
            for &(f, was, now) in &self.opts.fitted {
                info!(
                    "ring {f}: starts at {} of its {} to fit the {} memory budget",
                    fmt_size(now),
                    fmt_size(was),
                    fmt_size(b)
                );
            }
        }
        self.filters = Some(f);
        Ok(())
    }

    /// The output (when it can stall), the watchdog, the signals and the tick.
    fn register_loop_fds(&mut self, notifier: &Notifier) -> Result<(), RunError> {
        let registry = self.poll.registry();
        // A stream output that fills up is written again when it becomes writable.
        if let Some(fd) = self.pipe.borrow().sink.pollable() {
            registry
                .register(
                    &mut SourceFd(&fd.as_raw_fd()),
                    Slot::Sink.token(),
                    Interest::WRITABLE,
                )
                .map_err(RunError::io("registering the output"))?;
        }
        // systemd's watchdog (no-op without $NOTIFY_SOCKET).
        if let Some(fd) = notifier.watchdog_fd() {
            register(registry, fd.as_raw_fd(), Slot::Watchdog)
                .map_err(RunError::io("registering the watchdog timer"))?;
        }
        register(registry, self.sigfd.as_fd().as_raw_fd(), Slot::Signal)
            .map_err(RunError::io("registering signalfd"))?;
        // A 1 s tick: safety-net drain of every ring, clock refresh, sizing decisions;
        // stats every interval.
        self.timer
            .set(
                Expiration::Interval(TimeSpec::from_duration(TICK)),
                TimerSetTimeFlags::empty(),
            )
            .map_err(RunError::sys("arming timerfd"))?;
        register(registry, self.timer.as_fd().as_raw_fd(), Slot::Timer)
            .map_err(RunError::io("registering timerfd"))?;
        Ok(())
    }

    fn log_ready(&self) {
        let attached: usize = self.rings.iter().map(|r| r.loaded.attached()).sum();
        let failed: usize = self
            .rings
            .iter()
            .map(|r| {
                r.loaded
                    .programs
                    .iter()
                    .filter(|p| p.error.is_some())
                    .count()
            })
            .sum();
        let names: Vec<String> = self
            .rings
            .iter()
            .map(|r| match r.loaded.shards.len() {
                1 => format!("{} {}", r.loaded.family, human(r.loaded.ring_bytes())),
                n => format!(
                    "{} {} shards of {}",
                    r.loaded.family,
                    n,
                    human(r.smallest())
                ),
            })
            .collect();
        let budget = match self.opts.settings.sizing.memory_budget {
            Some(b) => format!(
                "; {} of a {} memory budget",
                fmt_size(ring_memory(&self.rings)),
                fmt_size(b)
            ),
            None => String::new(),
        };
        info!(
            "ready: {attached} programs attached, {failed} skipped, {} rings ({}) in {} ms{budget}",
            self.rings.len(),
            names.join(", "),
            self.started.elapsed().as_millis()
        );
    }

    /// The loop, until a stop signal.
    fn serve(
        &mut self,
        observer: &mut impl Observer,
        notifier: &mut Notifier,
    ) -> Result<(), RunError> {
        let mut events = Events::with_capacity(64);
        let mut stop = false;
        self.last_stats = Instant::now();
        let mut work = false;
        while !stop {
            let busy = self.pending.iter().any(|&p| p);
            let timeout = (busy || work).then_some(Duration::ZERO);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(RunError::io("poll failed")(e));
            }
            for ev in events.iter() {
                // STOPPING=1 is the last word to systemd: no STATUS or WATCHDOG after it.
                if stop {
                    break;
                }
                match Slot::of(ev.token()) {
                    Slot::Signal => stop = self.signals(observer, notifier),
                    Slot::Timer => self.tick(observer, notifier),
                    Slot::Sink => {
                        self.pipe.borrow_mut().sink.flush();
                    }
                    Slot::Watchdog => notifier.watchdog_tick(),
                    Slot::Flush => {
                        let _ = self.flush.wait(); // consumes the expirations
                        for r in &self.rings {
                            if r.batched {
                                self.pending[r.loaded.family.index()] = true;
                            }
                        }
                    }
                    // Only a running ring: a readiness event of one a reload in this
                    // batch retired would stay pending (a busy loop) until it runs again.
                    Slot::Ring(i) if self.rings.iter().any(|r| r.loaded.family.index() == i) => {
                        self.pending[i] = true;
                    }
                    Slot::Ring(_) => {}
                    Slot::Observer => {
                        observer.ready(ev.token(), self.poll.registry(), &|| self.snapshot())
                    }
                }
            }
            self.drain_pending();
            let mut p = self.pipe.borrow_mut();
            p.sink.flush();
            // Deferred work (compressing rotated files) when no ring waits, and a slice
            // now and then when rings keep it busy.
            work = p.sink.background(!busy && events.is_empty());
        }
        Ok(())
    }

    /// Reads the pending signals: SIGHUP reloads (and reopens the output), SIGUSR1
    /// reopens the output; SIGINT and SIGTERM return true (stop).
    fn signals(&mut self, observer: &mut impl Observer, notifier: &mut Notifier) -> bool {
        let mut stop = false;
        while let Ok(Some(si)) = self.sigfd.read_signal() {
            match Signal::try_from(si.ssi_signo as i32) {
                Ok(Signal::SIGHUP) => {
                    notifier.reloading();
                    self.reload(&mut || notifier.alive());
                    observer.reload(&self.opts.settings, self.poll.registry());
                    // As SIGUSR1: a reload is also how some rotators say "reopen".
                    self.pipe.borrow_mut().sink.reopen();
                    notifier.ready(&self.status());
                }
                // logrotate's postrotate: the output file was moved away.
                Ok(Signal::SIGUSR1) => self.pipe.borrow_mut().sink.reopen(),
                Ok(s) => {
                    info!("{s} received: stopping and draining");
                    notifier.stopping();
                    stop = true;
                }
                Err(_) => {}
            }
        }
        stop
    }

    /// Every second: a safety-net drain (a missed wake-up delays events by at most a
    /// tick), the clock, sizing decisions, wake-up modes, status, observers, stats.
    fn tick(&mut self, observer: &mut impl Observer, notifier: &mut Notifier) {
        let _ = self.timer.wait(); // non-blocking fd: just consumes the expirations
        self.check_tamper();
        self.check_throttles();
        for r in &self.rings {
            self.pending[r.loaded.family.index()] = true;
            r.tick_gaps();
        }
        {
            let mut p = self.pipe.borrow_mut();
            p.clock = WallClock::now();
            if let Some(c) = &mut p.context {
                c.tick();
            }
            let p = &mut *p;
            p.sink.tick(&p.clock);
        }
        let observed = self.adapt();
        if let Some(r) = &mut self.recorder {
            r.tick(self.started.elapsed(), &observed);
        }
        self.update_wakeups();
        notifier.status(|| self.status());
        let take = || self.snapshot();
        let snap: LazySnapshot = LazyCell::new(&take);
        observer.tick(self.poll.registry(), &observed, &snap);
        // Ticks come every TICK, give or take the loop's work: half a tick of slack keeps
        // a report from slipping to the next tick when this one came a little early.
        let now = Instant::now();
        let due = now.duration_since(self.last_stats) + TICK / 2
            >= Duration::from_secs(self.opts.stats_interval_s);
        if due {
            self.report(false, &snap);
        }
        drop(snap);
        if due {
            self.last_stats = now;
        }
    }

    /// Someone changed what the programs depend on (the config, the ring slot, the
    /// syscall filter) with the bpf syscall: put back already by `Loaded::check_tamper`;
    /// here logged, counted and raised as a critical `tamper` anomaly into the output.
    fn check_tamper(&mut self) {
        self.know_self_tgid();
        let mut found: Vec<_> = self
            .rings
            .iter()
            .flat_map(|r| r.loaded.check_tamper())
            .collect();
        if let Some(f) = &self.filters {
            found.extend(f.check_tamper());
        }
        self.raise_tamper(found);
    }

    /// In a PID namespace the programs learn the daemon's kernel tgid. The first value
    /// learned by a family that sees the daemon's own activity is taken as it, and
    /// written into every family's config: the other families never learn it, so a
    /// value found there is someone else's (their own tgid, to hide), not learned.
    fn know_self_tgid(&mut self) {
        if self.self_tgid.is_none() {
            self.self_tgid = self
                .rings
                .iter()
                .filter(|r| r.loaded.sees_daemon())
                .find_map(|r| r.loaded.learned_tgid());
            if let Some(t) = self.self_tgid {
                info!("the programs learned our kernel tgid: {t}");
            }
        }
        let Some(tgid) = self.self_tgid else {
            return;
        };
        for r in &self.rings {
            if let Err(e) = r.loaded.know_self_tgid(tgid) {
                error!("{}: writing our tgid into rw_config: {e}", r.loaded.family);
            }
        }
    }

    fn raise_tamper(&mut self, found: Vec<family::Tamper>) {
        for t in found {
            error!(
                "tamper: {} {}.{} was changed behind our back: {} instead of {}; restored",
                t.family, t.map, t.field, t.found, t.expected
            );
            self.tamper_total += 1;
            self.pipe.borrow_mut().raise_tamper(&t);
        }
    }

    /// Rate limits that started or stopped refusing since the last tick: `throttle`
    /// records (and a log line each).
    fn check_throttles(&mut self) {
        let Some(f) = &self.filters else {
            return;
        };
        let found = self.throttle.tick(&f.buckets());
        self.raise_throttles(found);
    }

    fn raise_throttles(&mut self, found: Vec<Throttle>) {
        for t in found {
            let who = t
                .uid
                .map_or("the family".to_string(), |u| format!("uid {u}"));
            if t.start {
                warn!("ring {}: rate limit of {who} refusing events", t.ring);
            } else {
                info!(
                    "ring {}: rate limit of {who} stopped refusing: {} refused",
                    t.ring, t.suppressed
                );
            }
            self.pipe.borrow_mut().raise_throttle(t);
        }
    }

    /// After the stop signal: programs stopped, rings drained, final books, observers
    /// finished, then the (slow) detach.
    fn finish(&mut self, observer: &mut impl Observer) {
        shutdown(&mut self.rings, &self.pipe);
        // The programs are stopped: the last refusals are in, every episode ends.
        self.check_throttles();
        let last = self.throttle.finish();
        self.raise_throttles(last);
        // A change the stop's own config write came upon is still reported.
        self.check_tamper();
        // A stalled reader gets one second to take the rest; then it is counted as lost.
        self.pipe
            .borrow_mut()
            .sink
            .flush_until(Instant::now() + Duration::from_secs(1));
        self.report(true, &self.snapshot());
        // Failures the kernel still holds back: counted here, not lost.
        for h in self.held_suppressed() {
            info!("final {}", family::anomaly::held_line(&h));
        }
        observer.finish(self.poll.registry());
        let t = Instant::now();
        for r in self.rings.iter_mut() {
            r.loaded.detach();
        }
        log::debug!("detached in {} ms", t.elapsed().as_millis());
    }

    /// The anomaly family's suppressed failures that no record carries yet, loaded or
    /// switched off (its maps kept). Final once the programs are stopped.
    fn held_suppressed(&self) -> Vec<family::anomaly::Held> {
        use family::anomaly::{RATE_MAP, RATE_OVER_MAP, held};
        if let Some(r) = self
            .rings
            .iter()
            .find(|r| r.loaded.family == Family::Anomaly)
        {
            return held(r.loaded.map(RATE_MAP), r.loaded.map(RATE_OVER_MAP));
        }
        self.retired
            .iter()
            .find(|r| r.family == Family::Anomaly)
            .map(|r| held(r.shared.map(RATE_MAP), r.shared.map(RATE_OVER_MAP)))
            .unwrap_or_default()
    }

    /// The start size of a family switched on while others run: its configured size, or
    /// under a memory budget the largest that fits beside the running rings (each shard,
    /// with room to halve it later, as `sizing::budget::fits` keeps), never below `min`.
    fn room_for(&self, family: Family) -> Result<u64, RunError> {
        let r = self.opts.settings.ring(family);
        let Some(b) = self.opts.settings.sizing.memory_budget else {
            return Ok(self.opts.ring_size(family));
        };
        // A family switched on again keeps the shards it had (its counter maps).
        let shards = match self.retired.iter().find(|x| x.family == family) {
            Some(x) => x.books.len().max(1) as u64,
            None => u64::from(family::loader::effective_shards(r.shards)),
        };
        let held = ring_memory(&self.rings);
        let free = b.saturating_sub(held);
        // The room to halve a running ring later, as `budget::fits` keeps it.
        let halve = self
            .rings
            .iter()
            .flat_map(|x| x.loaded.shards.iter().map(move |s| (s.size, x.limits.0)))
            .filter(|&(size, min)| size > min)
            .map(|(size, _)| size / 2)
            .max()
            .unwrap_or(0);
        let mut size = self.opts.ring_size(family).max(r.min);
        loop {
            let reserve = halve.max(if size > r.min { size / 2 } else { 0 });
            if size.saturating_mul(shards).saturating_add(reserve) <= free {
                if size != self.opts.ring_size(family) {
                    info!(
                        "ring {family}: starts at {} of its {} to fit the memory budget ({} of {} held)",
                        fmt_size(size),
                        fmt_size(self.opts.ring_size(family)),
                        fmt_size(held),
                        fmt_size(b)
                    );
                }
                return Ok(size);
            }
            if size / 2 < r.min {
                return Err(RunError::NoRoom {
                    family,
                    free: human(free),
                    need: human(r.min.saturating_mul(shards)),
                });
            }
            size /= 2;
        }
    }

    /// Loads, attaches and starts consuming one family (taking over its books if it ran
    /// before in this process).
    fn enable(&mut self, family: Family) -> Result<(), RunError> {
        let earlier = self.retired.iter().position(|r| r.family == family);
        let reuse = match earlier {
            Some(i) => Some(self.retired[i].shared.dup()?),
            None => None,
        };
        let lo = LoadOptions {
            ring_size: self.room_for(family)?,
            shards: self.opts.settings.ring(family).shards,
            syscalls: self.opts.syscalls.clone(),
            reuse,
            filter_maps: match &self.filters {
                Some(f) => f.maps()?,
                None => Vec::new(),
            },
            context: self.context_on,
            skip: if family == Family::Tls {
                self.opts.settings.tls.programs_off()
            } else {
                Vec::new()
            },
            map_values: if family == Family::Tls {
                self.opts.settings.tls.map_values()
            } else {
                Vec::new()
            },
        };
        let loaded = family.load(&lo)?;
        if loaded.shards.len() as u32 != family::loader::effective_shards(lo.shards) {
            // Its counter maps, handed over from before, have a slot per shard.
            warn!(
                "rings.{family}.shards = {} takes effect at the next start; the {family} ring keeps its {} shards",
                lo.shards,
                loaded.shards.len()
            );
        }
        for p in &loaded.programs {
            if let Some(err) = &p.error {
                warn!("program {family}/{} ({}) skipped: {err}", p.name, p.section);
            } else if let Some(why) = &p.not_applicable {
                info!("program {family}/{} not needed here: {why}", p.name);
            }
        }
        // The userspace half of the books continues with the kernel half.
        let books = earlier.map_or_else(Vec::new, |i| self.retired[i].books.clone());
        let ring = make_ring(loaded, &self.pipe, books, &self.opts, self.started)?;
        // Every shard under the family's token: a readiness drains them all.
        for shard in &ring.loaded.shards {
            register(
                self.poll.registry(),
                shard.ring.as_fd().as_raw_fd(),
                Slot::Ring(family.index()),
            )
            .map_err(RunError::io(format!("watching the {family} ring")))?;
        }
        // Only now is the retired entry used up: a failure above keeps it for a retry.
        if let Some(i) = earlier {
            self.retired.swap_remove(i);
        }
        self.rings.push(ring);
        self.rings.sort_by_key(|r| r.loaded.family.index());
        Ok(())
    }

    /// Stops a family's programs, drains its ring to the last record, logs its books
    /// and detaches it; its counter maps are kept for a later `enable`.
    fn retire(&mut self, family: Family) {
        let Some(i) = self.rings.iter().position(|r| r.loaded.family == family) else {
            return;
        };
        let mut ring = self.rings.remove(i);
        self.pending[family.index()] = false;
        shutdown(std::slice::from_mut(&mut ring), &self.pipe);
        self.raise_tamper(ring.loaded.check_tamper());
        let s = ring.stats();
        info!("{}", stats_line("retired ", &s));
        for shard in &ring.loaded.shards {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&shard.ring.as_fd().as_raw_fd()));
        }
        ring.loaded.detach();
        match ring.loaded.shared() {
            Ok(shared) => self.retired.push(Retired {
                family,
                shared,
                books: ring.shards.iter().map(|p| p.books.clone()).collect(),
            }),
            Err(e) => warn!("{family}: its counters start again if it is switched on: {e}"),
        }
    }

    /// The wake-up policy: a ring batches (commits wake the reader only past a fill
    /// threshold; the `flush` timer drains it every `latency`) always, never, or while
    /// it produces at least `batch_above` events/s (`auto`). Re-applied every tick and
    /// after resizes, since the threshold is a share of the ring's size.
    fn update_wakeups(&mut self) {
        let w = self.opts.settings.wakeup;
        for r in self.rings.iter_mut() {
            let batch = match w.mode {
                WakeupMode::Every => false,
                WakeupMode::Batch => true,
                WakeupMode::Auto => r.rate() >= w.batch_above || r.burst,
            };
            let bytes = if batch {
                ((r.smallest() as f64 * w.threshold) as u64).max(1)
            } else {
                0
            };
            if bytes == r.wakeup_bytes {
                continue;
            }
            match r.loaded.set_wakeup(bytes) {
                Ok(()) => {
                    if r.batched != batch {
                        log::debug!(
                            "ring {}: {} wake-ups",
                            r.loaded.family,
                            if batch { "batched" } else { "per-event" }
                        );
                    }
                    r.batched = batch;
                    r.wakeup_bytes = bytes;
                    // Records committed without a wake-up may be waiting.
                    self.pending[r.loaded.family.index()] = true;
                }
                Err(e) => warn!("ring {}: setting wake-ups: {e}", r.loaded.family),
            }
        }
        let want = self.rings.iter().any(|r| r.batched);
        if want != self.flush_armed {
            let res = if want {
                self.flush.set(
                    Expiration::Interval(TimeSpec::from_duration(w.latency)),
                    TimerSetTimeFlags::empty(),
                )
            } else {
                self.flush.unset()
            };
            match res {
                Ok(()) => self.flush_armed = want,
                Err(e) => warn!("batching timer: {e}"),
            }
        }
    }

    fn drain_pending(&mut self) {
        // `auto` batches a ring producing batch_above events/s; as many events within a
        // tick show that rate before the tick ends. Without this early switch a burst
        // shorter than a tick would pay a wake-up per event all along (perf: ~8 % of a
        // 1 M-event getppid run in the APIC writes of those wake-ups).
        let early = self.opts.settings.wakeup.mode == WakeupMode::Auto;
        let per_tick = (self.opts.settings.wakeup.batch_above * TICK.as_secs_f64()) as u64;
        let mut burst = false;
        for r in self.rings.iter_mut() {
            let i = r.loaded.family.index();
            if self.pending[i] {
                let t = clock::boot_ns();
                let target = match r.loaded.family {
                    Family::Process => self.pipe.borrow().feed_producer(),
                    _ => None,
                };
                let drained = r.drain_settle(BUDGET);
                self.pending[i] = matches!(drained, Drained::BudgetUsed);
                if let Some(target) = target
                    && self.pipe.borrow().feed_reached(target)
                {
                    // Every exec and fork older than t is in the table now (read up to
                    // where the producer was then: an empty consumption alone does not
                    // say, a record being written stops it).
                    let mut p = self.pipe.borrow_mut();
                    p.covered_until = p.covered_until.max(t);
                }
                if early && !r.batched && !r.burst && r.received_since_obs() >= per_tick {
                    r.burst = true;
                    burst = true;
                }
            }
        }
        if burst {
            self.update_wakeups();
        }
    }

    /// Every tick: each ring's policy sees the in-kernel high-water mark and the
    /// produced and dropped counts; `sizing::budget::tick` turns what they want into the
    /// resizes, within the memory budget when there is one, and they are done in order.
    fn adapt(&mut self) -> Vec<(&'static str, Observation)> {
        let mut observed = Vec::with_capacity(self.rings.len());
        let now = self.started.elapsed();
        // Each shard is observed and sized on its own: the CPUs behind one may be busier.
        let mut obs = Vec::new();
        for r in self.rings.iter_mut() {
            for slot in 0..r.shards.len() {
                let o = observe_shard(r, slot, now);
                if let Some(o) = o {
                    observed.push((r.label(slot), o));
                }
                obs.push((r.loaded.shard_size(slot), o));
            }
        }
        let budget = self.opts.settings.sizing.memory_budget;
        let plan = {
            let mut obs = obs.into_iter();
            let mut entries: Vec<Entry> = Vec::with_capacity(obs.len());
            for r in self.rings.iter_mut() {
                for p in r.shards.iter_mut() {
                    let Some((size, o)) = obs.next() else {
                        break;
                    };
                    entries.push(Entry {
                        size,
                        policy: &mut p.policy,
                        obs: o,
                    });
                }
            }
            budget::tick(budget, &mut entries)
        };
        // Plan indexes run over every shard of every ring in order.
        let at: Vec<(usize, usize)> = self
            .rings
            .iter()
            .enumerate()
            .flat_map(|(i, r)| (0..r.shards.len()).map(move |slot| (i, slot)))
            .collect();
        let registry = self.poll.registry();
        let mut total = ring_memory(&self.rings);
        for &(index, want, granted) in &plan.held {
            let Some(&(i, slot)) = at.get(index) else {
                continue;
            };
            let r = &mut self.rings[i];
            let label = r.label(slot);
            let p = &mut r.shards[slot];
            if let Some(b) = budget
                && p.held != Some(want)
            {
                info!(
                    "ring {label}: held at {} by the memory budget ({}: {} in rings, and a resize holds old and new ring at once); its policy wants {}",
                    fmt_size(granted),
                    fmt_size(b),
                    fmt_size(total),
                    fmt_size(want)
                );
                p.held = Some(want);
            }
        }
        let labels: Vec<Vec<&'static str>> = self
            .rings
            .iter()
            .map(|r| (0..r.shards.len()).map(|slot| r.label(slot)).collect())
            .collect();
        let rings = &mut self.rings;
        let started = self.started;
        let resize = |step: &Step| {
            let Some(&(i, slot)) = at.get(step.index) else {
                return false;
            };
            // A swap holds the loop while the kernel retires the old ring (5-14 ms
            // measured), and every ring fills meanwhile: each starts it as empty as it
            // can be (a file burst overflowed its ring during a syscall ring's swap).
            for x in rings.iter_mut() {
                x.drain_settle(BUDGET);
            }
            let r = &mut rings[i];
            r.shards[slot].held = None;
            match r.resize_logged(slot, step.to, &step.reason, registry, started) {
                Ok(()) => true,
                Err(e) => {
                    // Not again every second: the failure starts a cooldown too.
                    r.shards[slot].policy.resized(started.elapsed(), step.from);
                    warn!(
                        "ring {}: resize to {} failed: {e}",
                        r.label(slot),
                        fmt_size(step.to)
                    );
                    false
                }
            }
        };
        let skipped = |step: &Step, held: u64| {
            if let Some(&(i, slot)) = at.get(step.index) {
                warn!(
                    "ring {}: resize to {} waits: {} in rings, budget {}",
                    labels[i][slot],
                    fmt_size(step.to),
                    fmt_size(held),
                    budget.map_or(String::new(), fmt_size)
                );
            }
        };
        plan.run(budget, &mut total, resize, skipped);
        observed
    }

    /// SIGHUP: re-read the configuration. A bad file is reported and changes nothing;
    /// otherwise [`reload::plan`] says what to do and this does it.
    /// `alive` tells systemd's watchdog the loop lives: loading a family can take seconds
    /// (under emulation, a family the kernel refuses took 2-10 s to be tried program by
    /// program), and a reload that switched several on outlasted the 30 s watchdog.
    fn reload(&mut self, alive: &mut dyn FnMut()) {
        let new = match self.opts.reload() {
            Ok(n) => n,
            Err(e) => {
                error!("SIGHUP: {e}; keeping the running configuration");
                return;
            }
        };
        info!(
            "SIGHUP: reloading {}",
            new.config_path
                .as_ref()
                .map_or("the built-in default".to_string(), |p| format!("{p:?}"))
        );
        let running: Vec<reload::Running> = self
            .rings
            .iter()
            .map(|r| reload::Running {
                family: r.loaded.family,
                sizes: r.loaded.shards.iter().map(|s| s.size).collect(),
                syscalls: r
                    .loaded
                    .takes_syscalls()
                    .then(|| r.loaded.syscalls().to_vec()),
            })
            .collect();
        let mut new = new;
        let (was, now) = (
            self.opts.settings.sizing.memory_budget,
            new.settings.sizing.memory_budget,
        );
        if was != now {
            // Rings sized under one budget are not refitted at once: a lower one could not
            // be reached without passing it during the swaps.
            let show = |b: Option<u64>| b.map_or("none".to_string(), human);
            warn!(
                "SIGHUP: [sizing] memory_budget {} takes effect at the next start; keeping {}",
                show(now),
                show(was)
            );
            new.settings.sizing.memory_budget = was;
        }
        let mut actions = reload::plan(&self.opts.settings, &new.settings, &running);
        if was.is_some() || now.is_some() {
            // Start sizes fitted into a budget move when the family set or a priority
            // changes: under a budget only the allocator resizes running rings (a resize
            // past it could pass the budget or rob a ring that is dropping).
            for a in &mut actions {
                if let Action::NewPolicy { family, resize_to } = a
                    && resize_to.iter().any(Option::is_some)
                {
                    info!(
                        "SIGHUP: ring {family}: under a memory budget a new size applies at the next start; the budget resizes it meanwhile"
                    );
                    resize_to.iter_mut().for_each(|r| *r = None);
                }
            }
        }
        let rules = new.settings.filter.clone();
        self.opts = new;
        // Each load holds the objects itself: one decode for several families switched on.
        let enables = actions.iter().filter(|a| matches!(a, Action::Enable(_)));
        let _objects = (enables.count() > 1).then(family::objects::hold);
        for a in actions {
            // Switching a family on loads it: the one step that takes seconds.
            if matches!(a, Action::Enable(_)) {
                alive();
            }
            self.apply(a);
        }
        self.set_filters(&rules);
        self.set_program_stats();
    }

    /// SIGHUP with other rules: written whole, then switched to at once; the rules in
    /// force stay when that fails.
    fn set_filters(&mut self, rules: &family::filter::Rules) {
        match &mut self.filters {
            Some(f) if f.rules() != rules => match f.apply(rules) {
                Ok(()) => info!("SIGHUP: filters now: {}", rules.summary()),
                Err(e) => error!(
                    "SIGHUP: the new filters could not be written ({e}); keeping: {}",
                    f.rules().summary()
                ),
            },
            Some(_) => {}
            None if !rules.is_empty() => {
                error!(
                    "SIGHUP: filters are unavailable (the filter object did not load); none applied"
                )
            }
            None => {}
        }
    }

    /// One step of a reload.
    fn apply(&mut self, action: Action) {
        let registry = self.poll.registry();
        match action {
            Action::OutputChanged => warn!("SIGHUP: a new output takes effect at the next start"),
            Action::TlsAtNextStart => warn!(
                "SIGHUP: a [tls] change takes effect at the next start (or when the tls family is next switched on)"
            ),
            // The process family stays loaded for the context: only its output stops.
            Action::Retire(f) if self.has_ring(f) && self.loaded_families().contains(&f) => {
                info!(
                    "SIGHUP: family {f} no longer written out; its records still keep the process context"
                );
                self.set_emits();
            }
            Action::Enable(f) if self.has_ring(f) => {
                info!("SIGHUP: family {f} switched on");
                self.set_emits();
            }
            Action::ContextAtNextStart(keys) => warn!(
                "SIGHUP: a new [context] {} takes effect at the next start",
                keys.join(", ")
            ),
            Action::ContextAncestors(n) => {
                if let Some(c) = &mut self.pipe.borrow_mut().context {
                    c.set_ancestors(n);
                    info!("SIGHUP: [context] ancestors = {n} from now on");
                }
            }
            Action::Retire(f) => {
                self.retire(f);
                self.set_emits();
            }
            Action::Enable(f) => match self.enable(f) {
                Ok(()) => {
                    info!("SIGHUP: family {f} switched on");
                    self.set_emits();
                }
                Err(e) => error!("SIGHUP: family {f} could not be switched on: {e}"),
            },
            Action::NewPolicy { family, resize_to } => {
                let budget = self.opts.settings.sizing.memory_budget;
                let mut total = ring_memory(&self.rings);
                let Some(r) = self.rings.iter_mut().find(|r| r.loaded.family == family) else {
                    return;
                };
                let s = &self.opts.settings;
                let rs = *s.ring(family);
                r.limits = (rs.min, rs.max);
                let per_shard = shard_settings(&rs, r.shards.len());
                for slot in 0..r.shards.len() {
                    let size = r.loaded.shard_size(slot);
                    let p = &mut r.shards[slot];
                    p.policy = RingPolicy::new(&per_shard, &s.adaptive, &s.sizing);
                    p.policy.resized(self.started.elapsed(), size);
                    let room = budget.is_none_or(|b| {
                        let want = resize_to.get(slot).copied().flatten().unwrap_or(0);
                        total.saturating_add(want) <= b
                    });
                    if !room {
                        warn!(
                            "SIGHUP: ring {}: keeps {}: the new size does not fit the memory budget",
                            r.label(slot),
                            fmt_size(size)
                        );
                        continue;
                    }
                    if let Some(&Some(want)) = resize_to.get(slot) {
                        match r.resize_logged(
                            slot,
                            want,
                            "configuration reloaded",
                            registry,
                            self.started,
                        ) {
                            Ok(()) => total = total.saturating_sub(size).saturating_add(want),
                            Err(e) => error!("SIGHUP: ring {}: {e}", r.label(slot)),
                        }
                    }
                }
                if r.shards.len() as u32 != family::loader::effective_shards(rs.shards) {
                    warn!(
                        "SIGHUP: rings.{family}.shards = {} takes effect at the next start; the ring keeps {} shards",
                        rs.shards,
                        r.shards.len()
                    );
                }
            }
            Action::RestartWakeups => {
                // New wake-up settings (a new latency, say) apply from a fresh start of
                // the timer.
                if self.flush_armed {
                    let _ = self.flush.unset();
                    self.flush_armed = false;
                }
                for r in self.rings.iter_mut() {
                    r.wakeup_bytes = u64::MAX; // forces a rewrite
                }
                self.update_wakeups();
            }
            Action::TlsCapture(n) => {
                let values = self.opts.settings.tls.map_values();
                if let Some(r) = self.rings.iter().find(|r| r.loaded.family == Family::Tls) {
                    match r.loaded.write_map_values(&values) {
                        Ok(()) => info!("SIGHUP: [tls] capture_bytes is {n} now"),
                        Err(e) => error!("SIGHUP: tls: {e}"),
                    }
                }
            }
            Action::SetSyscalls(family) => {
                let nrs = self.opts.syscalls.clone();
                if let Some(r) = self.rings.iter_mut().find(|r| r.loaded.family == family)
                    && let Err(e) = r.loaded.set_syscalls(&nrs)
                {
                    error!("SIGHUP: {e}");
                }
            }
        }
    }

    fn has_ring(&self, f: Family) -> bool {
        self.rings.iter().any(|r| r.loaded.family == f)
    }

    /// One line for systemd's STATUS=: rings, last tick's rate, drops, programs.
    fn status(&self) -> String {
        notify::status_text(
            self.rings.len(),
            self.rings.iter().map(|r| r.rate()).sum(),
            self.rings
                .iter()
                .flat_map(|r| &r.shards)
                .map(|p| p.last.dropped)
                .sum(),
            self.rings.iter().map(|r| r.loaded.attached()).sum(),
            self.pipe.borrow().sink.errors(),
        )
    }

    /// The books of every running ring, its programs and the rest: what the stats
    /// file, the status socket and the metrics show.
    fn snapshot(&self) -> Snapshot {
        let programs = self
            .rings
            .iter()
            .flat_map(|r| {
                r.loaded.programs.iter().map(|p| {
                    let (state, reason) = match (&p.error, &p.not_applicable) {
                        (Some(e), _) => (ProgramState::Failed, Some(e.clone())),
                        (None, Some(w)) => (ProgramState::NotApplicable, Some(w.clone())),
                        (None, None) => (ProgramState::Attached, None),
                    };
                    Program {
                        family: r.loaded.family.name(),
                        name: p.name.clone(),
                        section: p.section.clone(),
                        state,
                        reason,
                        runs: self
                            .program_stats
                            .as_ref()
                            .and_then(|_| r.loaded.run_stats(&p.name))
                            .map(|(runs, ns)| RunStats { runs, ns }),
                    }
                })
            })
            .collect();
        Snapshot {
            rings: self.rings.iter().map(Ring::stats).collect(),
            programs,
            sink_errors: self.pipe.borrow().sink.errors(),
            written: self.pipe.borrow().sink.books().written,
            expired_events: self.pipe.borrow().sink.books().expired,
            memory_budget: self.opts.settings.sizing.memory_budget,
            uptime: self.started.elapsed(),
            pid: std::process::id(),
            rss_bytes: snapshot::rss_bytes(),
            unseen: self.rings.iter().find_map(|r| r.loaded.unseen()),
            tamper: self.tamper_total,
            losses: self.filters.as_ref().map_or_else(Vec::new, |f| {
                snapshot::top_losses(f.losses(), snapshot::LOSSES_SHOWN)
            }),
            context: {
                let p = self.pipe.borrow();
                p.context.as_ref().map(|c| snapshot::ContextStats {
                    processes: c.processes() as u64,
                    cgroups: c.cgroups() as u64,
                    process_evictions: c.process_evictions(),
                    cgroup_evictions: c.cgroup_evictions(),
                    unknown: c.unknown,
                    proc_reads: c.proc_reads,
                    late: p.context_late,
                    forgotten: c.forgotten,
                })
            },
            program_stats_for: self.program_stats.as_ref().map(|(_, t)| t.elapsed()),
        }
    }

    /// The per-ring log lines (a verdict on the books at the end) and the stats file.
    fn report(&self, last: bool, snap: &Snapshot) {
        let sink_errors = snap.sink_errors;
        for s in &snap.rings {
            if last {
                info!("{}", stats_line("final ", s));
            } else {
                // Mid-run the books are in motion: no verdict, but the high-water mark.
                info!(
                    "ring {} size={} produced={} received={} dropped={} filtered={} rate_limited={} untracked={} high_water={}%",
                    s.name,
                    s.size,
                    s.produced,
                    s.received,
                    s.dropped,
                    s.filtered,
                    s.rate_limited,
                    s.untracked,
                    (s.utilization * 100.0).round()
                );
            }
        }
        if let Some(u) = &snap.unseen {
            info!("{}{}", if last { "final " } else { "" }, unseen_line(u));
        }
        if last {
            let expired = snap
                .expired_events
                .map_or(String::new(), |e| format!(" expired_events={e}"));
            let line = format!(
                "final output written={} sink_errors={sink_errors}{expired}",
                snap.written
            );
            if sink_errors > 0 {
                warn!("{line}");
            } else {
                info!("{line}");
            }
        }
        if let Some(path) = &self.opts.stats_json
            && let Err(e) = write_atomic(path, &snap.json())
        {
            warn!("writing stats to {}: {e}", path.display());
        }
    }
}

/// What the syscall family counted but no family reports, e.g.
/// `unseen compat=3 (open 2, getpid 1) io_uring=5 (openat 5)`.
fn unseen_line(u: &family::syscall::Unseen) -> String {
    use family::syscall::{ia32_name, io_uring_op_name};
    let list = |v: Vec<String>| {
        if v.is_empty() {
            String::new()
        } else {
            format!(" ({})", v.join(", "))
        }
    };
    format!(
        "unseen compat={}{} io_uring={}{}",
        u.compat_total(),
        list(
            u.compat
                .iter()
                .map(|&(nr, n)| format!("{} {n}", ia32_name(nr)))
                .collect()
        ),
        u.io_uring_total(),
        list(
            u.io_uring
                .iter()
                .map(|&(op, n)| format!("{} {n}", io_uring_op_name(op)))
                .collect()
        ),
    )
}

fn register(registry: &Registry, fd: RawFd, slot: Slot) -> io::Result<()> {
    registry.register(&mut SourceFd(&fd), slot.token(), Interest::READABLE)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut tmp = PathBuf::from(path);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    tmp.set_file_name(name);
    tmp
}

/// Write to a temporary file beside `path`, then rename (see `sys::replace_file`).
fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    sys::replace_file(path, &tmp_path(path), data, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_slot_and_do_not_overlap() {
        for &f in Family::ALL {
            assert_eq!(
                Slot::of(Slot::Ring(f.index()).token()),
                Slot::Ring(f.index())
            );
            assert!(f.index() < Slot::FIRST_OWN);
        }
        for s in Slot::OWN {
            assert_eq!(Slot::of(s.token()), s);
        }
        assert_eq!(Slot::of(Token(OBSERVER_TOKENS + 5)), Slot::Observer);
    }
}
