//! The event loop: one thread, one mio::Poll over every ring fd, a signalfd and a
//! timerfd. Data path: ring -> libbpf callback -> events::render -> output buffer -> sink.
use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use libbpf_rs::{MapHandle, RingBuffer, RingBufferBuilder};
use log::{error, info, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use crate::cli::{RunOptions, human};
use crate::clock::WallClock;
use crate::config::WakeupMode;
use crate::families::{self, Counters, Family, LoadOptions, Loaded, Shared};
use crate::latency::Histogram;
use crate::metrics::LE_NS;
use crate::notify::{self, Notifier};
use crate::obs::Obs;
use crate::policy::{Observation, RingPolicy};
use crate::sink::Sink;
use crate::sizing::fmt_size;
use crate::stats::{Program, ProgramState, RingStats, Snapshot};
use crate::sys;

const SIGNAL: Token = Token(usize::MAX - 1);
const TIMER: Token = Token(usize::MAX - 2);
const SINK: Token = Token(usize::MAX - 3);
const FLUSH: Token = Token(usize::MAX - 4);
const WATCHDOG: Token = Token(usize::MAX - 9);
/// The loop's timer: safety-net drain, clock refresh and sizing decisions.
const TICK: Duration = Duration::from_secs(1);
/// The shortest period a sizing decision is based on.
const MIN_OBSERVATION: Duration = Duration::from_millis(500);
/// Records consumed from one ring before the loop looks at the others again.
const BUDGET: usize = 4096;
/// Output is written out once this much is buffered, and after every loop pass.
const FLUSH_AT: usize = 64 << 10;
/// Bound on the shutdown drain (normally a few ms: the programs are stopped and synced
/// first); detaching afterwards takes ~1.5 s more, and the whole must stay under 5 s.
const DRAIN_DEADLINE: Duration = Duration::from_secs(2);

/// Why the daemon could not run: `code` is the exit status (78: a bad configuration
/// value such as an unwritable --output; 1: anything else).
#[derive(Debug)]
pub struct RunError {
    pub code: u8,
    pub msg: String,
}

impl RunError {
    fn config(msg: String) -> Self {
        RunError { code: 78, msg }
    }
}

impl From<String> for RunError {
    fn from(msg: String) -> Self {
        RunError { code: 1, msg }
    }
}

/// `--stats-json PATH` is written via a temporary file beside it: check now, not at
/// the first tick, that this works.
fn check_writable_dir(path: &Path) -> Result<(), String> {
    let tmp = tmp_path(path);
    sys::can_create(&tmp).map_err(|e| {
        format!(
            "cannot write --stats-json {path:?} ({tmp:?}: {e}); give a path in a writable directory"
        )
    })
}

/// Shared by every ring's callback and the loop (single-threaded, so Rc<RefCell>).
struct Pipeline {
    sink: Sink,
    clock: WallClock,
}

/// One family's ring with its consumer and userspace counts.
struct Ring {
    loaded: Loaded,
    consumer: RingBuffer<'static>,
    received: Rc<Cell<u64>>,
    decode_errors: Rc<Cell<u64>>,
    pipe: Rc<RefCell<Pipeline>>,
    policy: RingPolicy,
    /// [min, max] from the configuration, for the stats.
    limits: (u64, u64),
    /// Counters at the last tick, to give the policy deltas.
    last: Counters,
    last_at: Duration,
    high_water: u64,
    rate: f64,
    resizes_up: u64,
    resizes_down: u64,
    /// Kernel timestamp → consume, since start.
    latency: Rc<RefCell<Histogram>>,
    /// Whether commits to this ring skip the wake-up (see `Daemon::update_wakeups`).
    batched: bool,
    wakeup_bytes: u64,
    /// `received` at the last observation, and whether `batch_above` events have come
    /// since: a burst switches to batching at once, not at the next tick.
    received_at_obs: u64,
    burst: bool,
}

enum Drained {
    Empty,
    BudgetUsed,
}

impl Ring {
    /// Consumes up to `budget` records. A pass that ends empty is followed by a full
    /// fence and a second pass: libbpf 1.7 publishes the consumer position without a
    /// StoreLoad barrier, so a record committed meanwhile may have sent no wake-up
    /// (measured here: a plain loop stalled within ~75 ms). Only an empty second pass
    /// means the ring is really empty.
    fn drain(&self, budget: usize) -> Drained {
        self.latency.borrow_mut().new_pass();
        let mut left = budget;
        loop {
            let n = self.consumer.consume_raw_n(left).max(0) as usize;
            left = left.saturating_sub(n);
            if left == 0 {
                return Drained::BudgetUsed;
            }
            if n > 0 {
                continue;
            }
            fence(Ordering::SeqCst);
            let m = self.consumer.consume_raw_n(left).max(0) as usize;
            left = left.saturating_sub(m);
            if m == 0 {
                return Drained::Empty;
            }
            if left == 0 {
                return Drained::BudgetUsed;
            }
        }
    }

    /// Replaces the ring with one of `size` bytes, losing and duplicating nothing:
    /// the new ring is created and watched first, then swapped into the programs' slot
    /// (the kernel returns only once no program can still write the old one), then the
    /// old ring is drained to the last record and dropped. Counters and sequence numbers
    /// live in maps that do not change. Returns how long the swap took.
    fn resize(&mut self, size: u64, registry: &Registry, token: Token) -> Result<Duration, String> {
        let t = Instant::now();
        let map = self.loaded.new_ring(size)?;
        let consumer = consumer(
            &self.loaded,
            &map,
            &self.pipe,
            &self.received,
            &self.decode_errors,
            &self.latency,
        )?;
        let new_fd = map.as_fd().as_raw_fd();
        registry
            .register(&mut SourceFd(&new_fd), token, Interest::READABLE)
            .map_err(|e| format!("watching the new {} ring: {e}", self.loaded.family))?;
        let old_map = match self.loaded.swap_ring(map) {
            Ok(old) => old,
            Err(e) => {
                let _ = registry.deregister(&mut SourceFd(&new_fd));
                return Err(e);
            }
        };
        let old_consumer = std::mem::replace(&mut self.consumer, consumer);
        // Final drain of the old ring: nothing can be added to it any more.
        self.latency.borrow_mut().new_pass();
        loop {
            let n = old_consumer.consume_raw_n(usize::MAX >> 1);
            if n <= 0 {
                break;
            }
            self.pipe.borrow_mut().sink.flush();
        }
        let _ = registry.deregister(&mut SourceFd(&old_map.as_fd().as_raw_fd()));
        drop(old_consumer);
        drop(old_map);
        Ok(t.elapsed())
    }

    /// `resize`, then what every resize is followed by: the policy's cooldown starts,
    /// the direction is counted, and the decision is logged with its reason.
    fn resize_logged(
        &mut self,
        size: u64,
        why: &str,
        registry: &Registry,
        started: Instant,
    ) -> Result<(), String> {
        let (old, family) = (self.loaded.ring_size, self.loaded.family);
        let took = self.resize(size, registry, Token(index(family)))?;
        let new = self.loaded.ring_size;
        // The last mark was the old ring's: judged against the new size it could read
        // over 100 % until the next tick.
        self.high_water = 0;
        self.policy.resized(started.elapsed(), new);
        if new > old {
            self.resizes_up += 1;
        } else {
            self.resizes_down += 1;
        }
        info!(
            "ring {family}: {} -> {} ({why}), swap took {} ms",
            fmt_size(old),
            fmt_size(new),
            took.as_millis()
        );
        Ok(())
    }

    fn stats(&self) -> RingStats {
        let Counters {
            produced,
            dropped,
            untracked,
        } = self.loaded.counters();
        let lat = self.latency.borrow();
        let mut latency_le = [0; LE_NS.len()];
        lat.cumulative(&LE_NS, &mut latency_le);
        RingStats {
            name: self.loaded.family.name(),
            size: self.loaded.ring_size,
            min: self.limits.0,
            max: self.limits.1,
            high_water: self.high_water,
            utilization: self.high_water as f64 / self.loaded.ring_size.max(1) as f64,
            rate: self.rate,
            resizes_up: self.resizes_up,
            resizes_down: self.resizes_down,
            latency_p50_ns: lat.quantile(0.5),
            latency_p99_ns: lat.quantile(0.99),
            latency_max_ns: lat.max(),
            latency_le,
            latency_sum_ns: lat.sum(),
            latency_count: lat.count(),
            produced,
            received: self.received.get(),
            dropped,
            untracked,
            decode_errors: self.decode_errors.get(),
        }
    }
}

pub fn run(opts: RunOptions) -> Result<(), RunError> {
    let started = Instant::now();
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

    let sink = Sink::open(opts.output.as_deref()).map_err(RunError::config)?;
    if let Some(p) = &opts.stats_json {
        check_writable_dir(p).map_err(RunError::config)?;
    }
    let pipe = Rc::new(RefCell::new(Pipeline {
        sink,
        clock: WallClock::now(),
    }));

    // Signals first, so a SIGTERM during the (slow) load is not lost.
    let mut mask = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        mask.add(s);
    }
    mask.thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("creating signalfd: {e}"))?;
    let poll = Poll::new().map_err(|e| format!("creating poll: {e}"))?;
    // The batching timer (see `update_wakeups`): armed only while a ring batches.
    let flush = TimerFd::new(
        ClockId::CLOCK_MONOTONIC,
        TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
    )
    .map_err(|e| format!("creating timerfd: {e}"))?;
    poll.registry()
        .register(
            &mut SourceFd(&flush.as_fd().as_raw_fd()),
            FLUSH,
            Interest::READABLE,
        )
        .map_err(|e| format!("registering timerfd: {e}"))?;
    // Before anything is loaded: a metrics port that cannot be had stops the start.
    let mut o11y = Obs::start(&opts.settings, poll.registry())?;

    let mut d = Daemon {
        flush,
        flush_armed: false,
        opts,
        rings: Vec::new(),
        retired: Vec::new(),
        pipe,
        poll,
        pending: [false; 6],
        started,
    };
    for family in d.opts.families.clone() {
        if let Err(e) = d.enable(family) {
            error!("family {family} disabled: {e}");
        }
    }
    d.update_wakeups();
    if d.rings.iter().all(|r| r.loaded.attached() == 0) {
        return Err(
            "no BPF program could be attached; run `ringwarden check` to see why"
                .to_string()
                .into(),
        );
    }
    // A stream output that fills up is written again when it becomes writable.
    if let Some(fd) = d.pipe.borrow().sink.pollable() {
        d.poll
            .registry()
            .register(&mut SourceFd(&fd.as_raw_fd()), SINK, Interest::WRITABLE)
            .map_err(|e| format!("registering the output: {e}"))?;
    }
    // systemd's notify socket and watchdog (no-ops without $NOTIFY_SOCKET).
    let mut notifier = Notifier::from_env();
    if let Some(fd) = notifier.watchdog_fd() {
        d.poll
            .registry()
            .register(&mut SourceFd(&fd.as_raw_fd()), WATCHDOG, Interest::READABLE)
            .map_err(|e| format!("registering the watchdog timer: {e}"))?;
    }
    let sig_raw = sigfd.as_fd().as_raw_fd();
    d.poll
        .registry()
        .register(&mut SourceFd(&sig_raw), SIGNAL, Interest::READABLE)
        .map_err(|e| format!("registering signalfd: {e}"))?;
    // A 1 s tick: safety-net drain of every ring, clock refresh, sizing decisions;
    // stats every interval.
    let timer = TimerFd::new(
        ClockId::CLOCK_MONOTONIC,
        TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
    )
    .map_err(|e| format!("creating timerfd: {e}"))?;
    timer
        .set(
            Expiration::Interval(TimeSpec::from_duration(TICK)),
            TimerSetTimeFlags::empty(),
        )
        .map_err(|e| format!("arming timerfd: {e}"))?;
    let timer_raw = timer.as_fd().as_raw_fd();
    d.poll
        .registry()
        .register(&mut SourceFd(&timer_raw), TIMER, Interest::READABLE)
        .map_err(|e| format!("registering timerfd: {e}"))?;

    let attached: usize = d.rings.iter().map(|r| r.loaded.attached()).sum();
    let failed: usize = d
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
    let names: Vec<String> = d
        .rings
        .iter()
        .map(|r| format!("{} {}", r.loaded.family, human(r.loaded.ring_size)))
        .collect();
    info!(
        "ready: {attached} programs attached, {failed} skipped, {} rings ({}) in {} ms",
        d.rings.len(),
        names.join(", "),
        started.elapsed().as_millis()
    );
    notifier.ready(&d.status());

    let mut events = Events::with_capacity(64);
    let mut last_stats = Instant::now();
    let mut stop = false;
    while !stop {
        let timeout = d.pending.iter().any(|&p| p).then_some(Duration::ZERO);
        if let Err(e) = d.poll.poll(&mut events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll failed: {e}").into());
        }
        for ev in events.iter() {
            // STOPPING=1 is the last word to systemd: no STATUS or WATCHDOG after it.
            if stop {
                break;
            }
            match ev.token() {
                SIGNAL => {
                    while let Ok(Some(si)) = sigfd.read_signal() {
                        match Signal::try_from(si.ssi_signo as i32) {
                            Ok(Signal::SIGHUP) => {
                                notifier.reloading();
                                d.reload();
                                o11y.reload(&d.opts.settings, d.poll.registry());
                                notifier.ready(&d.status());
                            }
                            Ok(s) => {
                                info!("{s} received: stopping and draining");
                                notifier.stopping();
                                stop = true;
                            }
                            Err(_) => {}
                        }
                    }
                }
                TIMER => {
                    let _ = timer.wait(); // non-blocking fd: just consumes the expirations
                    // Safety net: a missed wake-up can delay events by at most a tick.
                    for r in &d.rings {
                        d.pending[index(r.loaded.family)] = true;
                    }
                    d.pipe.borrow_mut().clock = WallClock::now();
                    let observed = d.adapt();
                    d.update_wakeups();
                    notifier.status(|| d.status());
                    let snap = std::cell::LazyCell::new(|| d.snapshot());
                    o11y.tick(d.poll.registry(), &observed, &snap);
                    if last_stats.elapsed() >= Duration::from_secs(d.opts.stats_interval_s) {
                        last_stats = Instant::now();
                        report(&d, false, &snap);
                    }
                }
                SINK => {
                    d.pipe.borrow_mut().sink.flush();
                }
                WATCHDOG => notifier.watchdog_tick(),
                FLUSH => {
                    let _ = d.flush.wait(); // consumes the expirations
                    for r in &d.rings {
                        if r.batched {
                            d.pending[index(r.loaded.family)] = true;
                        }
                    }
                }
                Token(i) if d.rings.iter().any(|r| index(r.loaded.family) == i) => {
                    d.pending[i] = true
                }
                t if o11y.owns(t) => o11y.ready(t, d.poll.registry(), &|| d.snapshot()),
                Token(_) => {}
            }
        }
        d.drain_pending();
        d.pipe.borrow_mut().sink.flush();
    }

    shutdown(&mut d.rings, &d.pipe);
    // A stalled reader gets one second to take the rest; then it is counted as lost.
    d.pipe
        .borrow_mut()
        .sink
        .flush_until(Instant::now() + Duration::from_secs(1));
    report(&d, true, &d.snapshot());
    o11y.finish(d.poll.registry());
    let t = Instant::now();
    for r in d.rings.iter_mut() {
        r.loaded.detach();
    }
    log::debug!("detached in {} ms", t.elapsed().as_millis());
    Ok(())
}

/// The loop's state: the options in force, one Ring per running family, and the books
/// of families switched off by a reload (kept so that switching one on again continues
/// its numbers).
struct Daemon {
    /// Drains batching rings every `wakeup.latency`.
    flush: TimerFd,
    flush_armed: bool,
    opts: RunOptions,
    rings: Vec<Ring>,
    retired: Vec<Retired>,
    pipe: Rc<RefCell<Pipeline>>,
    poll: Poll,
    /// Rings with records to consume, by family index (the ring's mio token).
    pending: [bool; 6],
    started: Instant,
}

/// A family switched off at run time: its counter maps and userspace counts.
struct Retired {
    family: Family,
    shared: Shared,
    books: Books,
}

/// The userspace half of a ring's books: like the counter maps in the kernel, it
/// continues when a family is switched off and on again, so that every counter the
/// metrics export stays monotonic.
#[derive(Clone, Default)]
struct Books {
    received: Rc<Cell<u64>>,
    decode_errors: Rc<Cell<u64>>,
    latency: Rc<RefCell<Histogram>>,
    resizes_up: u64,
    resizes_down: u64,
}

fn index(f: Family) -> usize {
    Family::ALL.iter().position(|&g| g == f).unwrap_or(0)
}

impl Daemon {
    /// Loads, attaches and starts consuming one family (taking over its books if it ran
    /// before in this process).
    fn enable(&mut self, family: Family) -> Result<(), String> {
        let earlier = self.retired.iter().position(|r| r.family == family);
        let reuse = match earlier {
            Some(i) => Some(self.retired[i].shared.dup()?),
            None => None,
        };
        let lo = LoadOptions {
            ring_size: self.opts.ring_size(family),
            syscalls: self.opts.syscalls.clone(),
            reuse,
        };
        let loaded = families::load(family, &lo)?;
        for p in &loaded.programs {
            if let Some(err) = &p.error {
                warn!("program {family}/{} ({}) skipped: {err}", p.name, p.section);
            } else if let Some(why) = &p.not_applicable {
                info!("program {family}/{} not needed here: {why}", p.name);
            }
        }
        // The userspace half of the books continues with the kernel half.
        let books = earlier.map_or_else(Books::default, |i| self.retired[i].books.clone());
        let ring = make_ring(loaded, &self.pipe, books, &self.opts, self.started)?;
        let fd = ring.loaded.ring.as_fd().as_raw_fd();
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), Token(index(family)), Interest::READABLE)
            .map_err(|e| format!("watching the {family} ring: {e}"))?;
        // Only now is the retired entry used up: a failure above keeps it for a retry.
        if let Some(i) = earlier {
            self.retired.swap_remove(i);
        }
        self.rings.push(ring);
        self.rings.sort_by_key(|r| index(r.loaded.family));
        Ok(())
    }

    /// Stops a family's programs, drains its ring to the last record, logs its books
    /// and detaches it; its counter maps are kept for a later `enable`.
    fn retire(&mut self, family: Family) {
        let Some(i) = self.rings.iter().position(|r| r.loaded.family == family) else {
            return;
        };
        let mut ring = self.rings.remove(i);
        self.pending[index(family)] = false;
        shutdown(std::slice::from_mut(&mut ring), &self.pipe);
        let s = ring.stats();
        info!("{}", stats_line("retired ", &s));
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&ring.loaded.ring.as_fd().as_raw_fd()));
        ring.loaded.detach();
        match ring.loaded.shared() {
            Ok(shared) => self.retired.push(Retired {
                family,
                shared,
                books: Books {
                    received: ring.received.clone(),
                    decode_errors: ring.decode_errors.clone(),
                    latency: ring.latency.clone(),
                    resizes_up: ring.resizes_up,
                    resizes_down: ring.resizes_down,
                },
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
                WakeupMode::Auto => r.rate >= w.batch_above || r.burst,
            };
            let bytes = if batch {
                ((r.loaded.ring_size as f64 * w.threshold) as u64).max(1)
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
                    self.pending[index(r.loaded.family)] = true;
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
            let i = index(r.loaded.family);
            if self.pending[i] {
                self.pending[i] = matches!(r.drain(BUDGET), Drained::BudgetUsed);
                if early
                    && !r.batched
                    && !r.burst
                    && r.received.get().saturating_sub(r.received_at_obs) >= per_tick
                {
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
    /// produced and dropped counts, and may resize the ring.
    fn adapt(&mut self) -> Vec<(&'static str, Observation)> {
        let mut observed = Vec::with_capacity(self.rings.len());
        let now = self.started.elapsed();
        let registry = self.poll.registry();
        for r in self.rings.iter_mut() {
            // A tick right after a (re)start or a swap measures almost nothing: a rate over
            // a few milliseconds would mislead the predictive average.
            if now.saturating_sub(r.last_at) < MIN_OBSERVATION {
                continue;
            }
            let Some(c) = r.loaded.try_counters() else {
                continue;
            };
            let obs = Observation {
                now,
                size: r.loaded.ring_size,
                high_water: r.loaded.take_high_water(),
                produced: c.produced.saturating_sub(r.last.produced),
                dropped: c.dropped.saturating_sub(r.last.dropped),
                elapsed: now.saturating_sub(r.last_at),
            };
            r.last = c;
            observed.push((r.loaded.family.name(), obs));
            r.received_at_obs = r.received.get();
            r.burst = false;
            r.last_at = now;
            r.high_water = obs.high_water;
            let secs = obs.elapsed.as_secs_f64();
            r.rate = if secs > 0.0 {
                obs.produced as f64 / secs
            } else {
                0.0
            };
            let Some(decision) = r.policy.observe(&obs) else {
                continue;
            };
            if let Err(e) =
                r.resize_logged(decision.new_size, &decision.reason, registry, self.started)
            {
                // Not again every second: the failure starts a cooldown too.
                r.policy.resized(self.started.elapsed(), r.loaded.ring_size);
                warn!(
                    "ring {}: resize to {} failed: {e}",
                    r.loaded.family,
                    fmt_size(decision.new_size)
                );
            }
        }
        observed
    }

    /// SIGHUP: re-read the configuration. A bad file is reported and changes nothing.
    /// New sizes go through the ring swap; switched families through load/retire; the
    /// syscall set is a map write.
    fn reload(&mut self) {
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
        if new.output != self.opts.output {
            warn!("SIGHUP: a new output takes effect at the next start");
        }
        let before = std::mem::replace(&mut self.opts, new);
        for f in Family::ALL {
            let (was, is) = (
                before.families.contains(&f),
                self.opts.families.contains(&f),
            );
            if was && !is {
                self.retire(f);
            }
        }
        for f in Family::ALL {
            let (running, wanted) = (
                self.rings.iter().any(|r| r.loaded.family == f),
                self.opts.families.contains(&f),
            );
            if wanted && !running {
                match self.enable(f) {
                    Ok(()) => info!("SIGHUP: family {f} switched on"),
                    Err(e) => error!("SIGHUP: family {f} could not be switched on: {e}"),
                }
            }
        }
        let registry = self.poll.registry();
        let now = self.started.elapsed();
        for r in self.rings.iter_mut() {
            let f = r.loaded.family;
            let rs = *self.opts.settings.ring(f);
            let policy_changed = before.settings.ring(f) != &rs
                || before.settings.adaptive != self.opts.settings.adaptive
                || before.settings.sizing != self.opts.settings.sizing;
            // An unchanged ring keeps its policy state (cooldown, smoothed rate) and the
            // size it has grown to.
            if !policy_changed {
                continue;
            }
            r.policy = RingPolicy::new(
                &rs,
                &self.opts.settings.adaptive,
                &self.opts.settings.sizing,
            );
            r.policy.resized(now, r.loaded.ring_size);
            r.limits = (rs.min, rs.max);
            // A new start size is applied; otherwise the current size is only brought
            // into new bounds.
            let old = r.loaded.ring_size;
            let want = if before.ring_size(f) != rs.size {
                rs.size
            } else {
                old.clamp(rs.min, rs.max)
            };
            if old != want
                && let Err(e) =
                    r.resize_logged(want, "configuration reloaded", registry, self.started)
            {
                error!("SIGHUP: ring {f}: {e}");
            }
        }
        // New wake-up settings (a new latency, say) apply from a fresh start of the timer.
        if self.flush_armed {
            let _ = self.flush.unset();
            self.flush_armed = false;
        }
        for r in self.rings.iter_mut() {
            r.wakeup_bytes = u64::MAX; // forces a rewrite below
        }
        self.update_wakeups();
        // The syscall set is compared with what the kernel filter holds, so a write that
        // failed half-way is retried by the next SIGHUP.
        if let Some(r) = self
            .rings
            .iter_mut()
            .find(|r| r.loaded.family == Family::Syscall)
            && r.loaded.syscalls() != self.opts.syscalls.as_slice()
            && let Err(e) = r.loaded.set_syscalls(&self.opts.syscalls)
        {
            error!("SIGHUP: {e}");
        }
    }

    /// One line for systemd's STATUS=: rings, last tick's rate, drops, programs.
    fn status(&self) -> String {
        notify::status_text(
            self.rings.len(),
            self.rings.iter().map(|r| r.rate).sum(),
            self.rings.iter().map(|r| r.last.dropped).sum(),
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
                    }
                })
            })
            .collect();
        Snapshot {
            rings: self.rings.iter().map(Ring::stats).collect(),
            programs,
            sink_errors: self.pipe.borrow().sink.errors(),
            uptime: self.started.elapsed(),
            pid: std::process::id(),
            rss_bytes: crate::stats::rss_bytes(),
        }
    }
}

fn make_ring(
    loaded: Loaded,
    pipe: &Rc<RefCell<Pipeline>>,
    books: Books,
    opts: &RunOptions,
    started: Instant,
) -> Result<Ring, String> {
    let Books {
        received,
        decode_errors,
        latency,
        resizes_up,
        resizes_down,
    } = books;
    let consumer = consumer(
        &loaded,
        &loaded.ring,
        pipe,
        &received,
        &decode_errors,
        &latency,
    )?;
    let rs = *opts.settings.ring(loaded.family);
    let mut policy = RingPolicy::new(&rs, &opts.settings.adaptive, &opts.settings.sizing);
    let now = started.elapsed();
    policy.resized(now, loaded.ring_size);
    let last = loaded.counters();
    let received_at_obs = received.get();
    // A handed-over mark belongs to the ring of an earlier load.
    loaded.take_high_water();
    Ok(Ring {
        loaded,
        consumer,
        received,
        decode_errors,
        pipe: pipe.clone(),
        policy,
        limits: (rs.min, rs.max),
        last,
        last_at: now,
        high_water: 0,
        rate: 0.0,
        resizes_up,
        resizes_down,
        latency,
        batched: false,
        wakeup_bytes: 0,
        received_at_obs,
        burst: false,
    })
}

/// A libbpf consumer for `map`, rendering into the shared pipeline and counting into
/// the family's counters (which survive ring swaps).
fn consumer(
    loaded: &Loaded,
    map: &MapHandle,
    pipe: &Rc<RefCell<Pipeline>>,
    received: &Rc<Cell<u64>>,
    decode_errors: &Rc<Cell<u64>>,
    latency: &Rc<RefCell<Histogram>>,
) -> Result<RingBuffer<'static>, String> {
    let name = loaded.family.name();
    let (rx, de, p) = (received.clone(), decode_errors.clone(), pipe.clone());
    let lt = latency.clone();
    let mut builder = RingBufferBuilder::new();
    builder
        .add(map, move |data: &[u8]| {
            rx.set(rx.get() + 1);
            let pl = &mut *p.borrow_mut();
            // Latency from the program's timestamp (header bytes 8..16) to now.
            if let Some(ts) = data.get(8..16).and_then(|b| b.try_into().ok()) {
                lt.borrow_mut()
                    .record_since(u64::from_ne_bytes(ts), crate::clock::boot_ns);
            }
            if !pl.sink.renders() {
                return 0;
            }
            if !pl.sink.has_room() {
                // The output is stalled and the buffer full: counted, not rendered.
                pl.sink.count_lost(1);
                return 0;
            }
            if let Err(e) = pl.sink.render(name, &pl.clock, data) {
                if de.get() == 0 {
                    warn!("ring {name}: {e} (further decode errors are only counted)");
                }
                de.set(de.get() + 1);
            }
            if pl.sink.buffered() >= FLUSH_AT {
                pl.sink.flush();
            }
            0
        })
        .map_err(|e| format!("ring {name}: {e}"))?;
    builder
        .build()
        .map_err(|e| format!("ring {name}: creating the consumer: {e}"))
}

/// Stop every program, then drain until every ring's books balance (a program may still
/// be between reserve and submit right after the stop) or the deadline passes. Detaching
/// comes after the final report: it is slow and adds nothing to the books.
fn shutdown(rings: &mut [Ring], pipe: &Rc<RefCell<Pipeline>>) {
    for r in rings.iter_mut() {
        let stopped = r.loaded.stop().and_then(|()| r.loaded.sync());
        if let Err(e) = stopped {
            // Fall back to detaching now: slower, but nothing runs after it either.
            warn!(
                "stopping the {} programs: {e}; detaching them instead",
                r.loaded.family
            );
            r.loaded.detach();
        }
    }
    let deadline = Instant::now() + DRAIN_DEADLINE;
    loop {
        for r in rings.iter() {
            while matches!(r.drain(BUDGET), Drained::BudgetUsed) && Instant::now() < deadline {
                pipe.borrow_mut().sink.flush();
            }
        }
        pipe.borrow_mut().sink.flush();
        if rings.iter().all(|r| r.stats().exact()) || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn stats_line(prefix: &str, s: &RingStats) -> String {
    format!(
        "{prefix}ring {} size={} produced={} received={} dropped={} untracked={} decode_errors={} exact={}",
        s.name,
        s.size,
        s.produced,
        s.received,
        s.dropped,
        s.untracked,
        s.decode_errors,
        if s.exact() { "yes" } else { "NO" }
    )
}

fn report(d: &Daemon, last: bool, snap: &Snapshot) {
    let sink_errors = snap.sink_errors;
    for s in &snap.rings {
        if last {
            info!("{}", stats_line("final ", s));
        } else {
            // Mid-run the books are in motion: no verdict, but the high-water mark.
            info!(
                "ring {} size={} produced={} received={} dropped={} untracked={} high_water={}%",
                s.name,
                s.size,
                s.produced,
                s.received,
                s.dropped,
                s.untracked,
                (s.utilization * 100.0).round()
            );
        }
    }
    if last && sink_errors > 0 {
        warn!("final sink_errors={sink_errors}");
    }
    if let Some(path) = &d.opts.stats_json
        && let Err(e) = write_atomic(path, &snap.json())
    {
        warn!("writing stats to {}: {e}", path.display());
    }
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
