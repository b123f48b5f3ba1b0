//! One family's ring on the loop: its consumer, the userspace half of its books, its
//! sizing policy, and what is done to it (drain, resize, stop).
use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use libbpf_rs::MapHandle;

use super::consumer::{Consumed, Consumer};
use log::{info, warn};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use super::RunError;
use super::gaps::Gaps;
use super::snapshot::{LE_NS, RingStats, ShardStats};
use crate::config::cli::RunOptions;
use crate::context::Context;
use crate::family::record::{RingOf, SEQ_NONE, view};
use crate::family::{Counters, Family, Header, Loaded, Tamper};
use crate::output::{Lost, Raised, Sink, Throttle, What};
use crate::sizing::RingSettings;
use crate::sizing::latency::Histogram;
use crate::sizing::policy::RingPolicy;
use crate::sys::clock::{self, WallClock};
use crate::units::fmt_size;

/// Records consumed from one ring before the loop looks at the others again.
pub const BUDGET: usize = 4096;
/// Output is written out once this much is buffered, and after every loop pass.
const FLUSH_AT: usize = 64 << 10;
/// Bound on the shutdown drain (normally a few ms: the programs are stopped and synced
/// first); detaching afterwards takes ~1.5 s more, and the whole must stay under 5 s.
const DRAIN_DEADLINE: Duration = Duration::from_secs(2);

/// Where every ring's records go: shared by every ring's callback and the loop
/// (single-threaded, so Rc<RefCell>).
pub struct Pipeline {
    pub sink: Box<dyn Sink>,
    pub clock: WallClock,
    /// The process context every event is rendered with (`None`: `--no-context`).
    pub context: Option<Context>,
    /// Families whose records are written out, by index (the process family may run
    /// for the context alone).
    pub emits: Vec<bool>,
    /// Boot-clock time up to which the process ring is known drained: every exec, fork
    /// and exit of an event older than this is in the process table.
    pub covered_until: u64,
    /// The process ring's consumer, which [`catch_up`] drains (`None`: no process
    /// family, nothing is held).
    pub feed: Option<Rc<Consumer>>,
    /// A record held back until the process ring is caught up (see [`Pipeline::record`]).
    held: Option<Held>,
    held_buf: Vec<u8>,
    /// Records rendered before the process ring could be caught up (an exec flood):
    /// their context may be older than they are.
    pub context_late: u64,
}

/// A record waiting for the process ring to catch up.
struct Held {
    name: &'static str,
    books: Books,
}

impl Pipeline {
    pub fn new(sink: Box<dyn Sink>, context: Option<Context>) -> Pipeline {
        Pipeline {
            sink,
            clock: WallClock::now(),
            context,
            emits: vec![true; Family::ALL.len()],
            covered_until: 0,
            feed: None,
            held: None,
            held_buf: Vec::new(),
            context_late: 0,
        }
    }

    /// The process ring's producer position now (see [`Consumer::producer`]).
    pub fn feed_producer(&self) -> Option<u64> {
        self.feed.as_deref().map(Consumer::producer)
    }

    /// Whether the process ring was read up to `target` (a producer position).
    pub fn feed_reached(&self, target: u64) -> bool {
        self.feed.as_deref().is_some_and(|f| f.reached(target))
    }

    /// Whether a record was held back and waits for [`Pipeline::render_held`].
    pub fn holds(&self) -> bool {
        self.held.is_some()
    }

    /// One record from ring `name` of `family`: counted, its seq noted, its latency
    /// recorded, told to the context tables, rendered into the sink (or counted as lost
    /// when the sink is full), the sink flushed when it holds enough. Returns what the
    /// ring callback returns: -1 stops the ring's consumption when the record is held
    /// back, because its process's exec or fork may still be in the process ring (rings
    /// are drained one after the other): the loop drains the process ring, then renders
    /// it ([`Pipeline::render_held`]).
    fn record(&mut self, name: &'static str, family: Family, books: &Books, data: &[u8]) -> i32 {
        books.received.set(books.received.get() + 1);
        // Before the renders() check: the books' `lost` must not depend on the output.
        if let Some(seq) = data.get(0..8).and_then(|b| b.try_into().ok())
            && let seq = u64::from_ne_bytes(seq)
            && seq != SEQ_NONE
            && let Some((first, last)) = books.gaps.borrow_mut().record(seq)
        {
            self.lost(books, Lost::seqs(name, first, last));
            if family == Family::Process
                && let Some(ctx) = &mut self.context
            {
                ctx.forget_processes();
            }
        }
        // Latency from the program's timestamp (header bytes 8..16) to now.
        if let Some(ts) = data.get(8..16).and_then(|b| b.try_into().ok()) {
            books
                .latency
                .borrow_mut()
                .record_since(u64::from_ne_bytes(ts), clock::boot_ns);
        }
        let mut context_only = false;
        if let Some(ctx) = &mut self.context
            && let Some(observe) = family.spec().observe
            && let Ok(h) = view::<Header>(data, 0)
            && let Some(o) = observe(h, data)
        {
            ctx.apply(o.change);
            context_only = o.context_only;
        }
        if context_only || !self.emits[family.index()] {
            books.context_only.set(books.context_only.get() + 1);
            return 0;
        }
        if !self.sink.renders() {
            return 0;
        }
        if let Some(feed) = &self.feed
            && self.context.is_some()
            && family != Family::Process
            && let Ok(h) = view::<Header>(data, 0)
            && h.ts_ns > self.covered_until
        {
            if feed.pending() {
                self.held_buf.clear();
                self.held_buf.extend_from_slice(data);
                self.held = Some(Held {
                    name,
                    books: books.clone(),
                });
                return -1;
            }
            // Nothing reserved in the process ring is unread (in-flight reservations
            // count): every exec and fork before this record is in the table. A load of
            // two positions, not a stop and a catch-up per record when the drain keeps up
            // with a producer.
            self.covered_until = h.ts_ns;
        }
        self.render(name, books, data);
        0
    }

    /// Renders the record held back by [`Pipeline::record`], if any.
    pub fn render_held(&mut self) {
        if let Some(h) = self.held.take() {
            let data = std::mem::take(&mut self.held_buf);
            self.render(h.name, &h.books, &data);
            self.held_buf = data;
        }
    }

    fn render(&mut self, name: &'static str, books: &Books, data: &[u8]) {
        if !self.sink.has_room() {
            // The output is stalled and the buffer full: counted, not rendered.
            self.sink.count_lost(1);
            return;
        }
        let ring = RingOf {
            name,
            shard: books.shard,
        };
        if let Err(e) = self
            .sink
            .render(ring, &self.clock, data, self.context.as_mut())
        {
            let de = &books.decode_errors;
            if de.get() == 0 {
                warn!("ring {name}: {e} (further decode errors are only counted)");
            }
            de.set(de.get() + 1);
        }
        if self.sink.buffered() >= FLUSH_AT {
            self.sink.flush();
        }
    }

    /// A `tamper` anomaly, raised into the output.
    pub fn raise_tamper(&mut self, tamper: &Tamper) {
        self.raise(What::Tamper(tamper));
    }

    /// A `throttle` record, raised into the output.
    pub fn raise_throttle(&mut self, t: Throttle) {
        self.raise(What::Throttle(t));
    }

    /// Seqs `first..=last` of ring `name` will never arrive: counted in the ring's books
    /// (`lost`, `lost_records`) and raised as a `lost` record.
    fn lost(&mut self, books: &Books, l: Lost) {
        books.lost.set(books.lost.get() + l.count);
        books.lost_records.set(books.lost_records.get() + 1);
        let l = Lost {
            shard: books.shard,
            ..l
        };
        self.raise(What::Lost(l));
    }

    /// An event the daemon raised itself: rendered like a record but from no ring, so
    /// no ring's received or dropped count it (it has no seq). Like a record, it is
    /// counted as a sink error when the output is full (a held file keeps it instead).
    fn raise(&mut self, what: What<'_>) {
        if !self.sink.renders() {
            return;
        }
        let ev = Raised::now(what);
        if !self.sink.has_room() {
            // A held output keeps it for when it resumes; else it is lost, counted.
            if !self.sink.keep(&self.clock, &ev) {
                self.sink.count_lost(1);
            }
            return;
        }
        self.sink.raise(&self.clock, &ev);
        if self.sink.buffered() >= FLUSH_AT {
            self.sink.flush();
        }
    }
}

/// Rounds of [`BUDGET`] records a catch-up drains from the process ring at most.
const CATCH_UP_ROUNDS: usize = 8;

/// A record was held back because its process's exec or fork may still be in the
/// process ring (rings are drained one after another): drain that ring, so the table is
/// current up to now, then render the record. A process ring that cannot be read that far
/// in a few rounds (a flood of execs) still lets the record through, with the table as
/// far as it got (counted as `context_late`). Called outside any ring callback.
pub fn catch_up(pipe: &Rc<RefCell<Pipeline>>) {
    let t = clock::boot_ns();
    let feed = pipe.borrow().feed.clone();
    let emptied = match feed {
        // Read up to where the producer was at `t`: every record reserved before then,
        // including one another CPU reserved but has not committed (an exec older than
        // the held record, perhaps), which stops a consumption as if the ring were
        // empty. Records reserved since do not matter, so a stream of execs cannot keep
        // it from getting there.
        Some(f) => {
            let target = f.producer();
            (0..CATCH_UP_ROUNDS).any(|_| {
                f.consume_n(BUDGET);
                f.reached(target)
            })
        }
        None => true,
    };
    let mut p = pipe.borrow_mut();
    if emptied {
        p.covered_until = p.covered_until.max(t);
    } else {
        p.context_late += 1;
    }
    p.render_held();
}

/// The userspace half of a ring's books: like the counter maps in the kernel, it
/// continues when a family is switched off and on again, so that every counter the
/// metrics export stays monotonic.
#[derive(Clone, Default)]
pub struct Books {
    pub received: Rc<Cell<u64>>,
    pub decode_errors: Rc<Cell<u64>>,
    /// Records received for the context tables alone: not written out by design.
    pub context_only: Rc<Cell<u64>>,
    /// The seqs not received yet, and which of them are lost (see `gaps`).
    pub gaps: Rc<RefCell<Gaps>>,
    /// Seqs declared lost, and the `lost` records that said so.
    pub lost: Rc<Cell<u64>>,
    pub lost_records: Rc<Cell<u64>>,
    /// Shared by every shard of a family (one distribution per ring).
    pub latency: Rc<RefCell<Histogram>>,
    pub resizes_up: u64,
    pub resizes_down: u64,
    /// The shard these books are of, when the family has more than one: named in its
    /// records and `lost` records (seqs count per shard).
    pub shard: Option<u32>,
}

impl Books {
    /// Books for every shard of a family: those handed over (`earlier`, from a family
    /// switched off), else new ones sharing one latency distribution.
    pub fn for_shards(earlier: Vec<Books>, shards: usize) -> Vec<Books> {
        let mut books = earlier;
        let latency = books.first().map(|b| b.latency.clone()).unwrap_or_default();
        while books.len() < shards {
            books.push(Books {
                latency: latency.clone(),
                ..Books::default()
            });
        }
        books.truncate(shards.max(1));
        let sharded = books.len() > 1;
        for (i, b) in books.iter_mut().enumerate() {
            b.shard = sharded.then_some(i as u32);
        }
        books
    }
}

/// One family's ring (one per shard) with their consumers and userspace counts.
pub struct Ring {
    pub loaded: Loaded,
    /// Slot i is the loaded family's shard i.
    pub shards: Vec<Part>,
    pipe: Rc<RefCell<Pipeline>>,
    /// [min, max] from the configuration (each shard's), for the stats.
    pub limits: (u64, u64),
    /// Whether commits to this ring skip the wake-up (see `Daemon::update_wakeups`).
    pub batched: bool,
    pub wakeup_bytes: u64,
    /// Whether `batch_above` events have come since the last observation: a burst
    /// switches to batching at once, not at the next tick.
    pub burst: bool,
}

/// One shard of a family's ring: its consumer, its books, its own sizing.
pub struct Part {
    /// Shared with the pipeline for the process ring (see [`catch_up`]).
    consumer: Rc<Consumer>,
    /// The userspace half of the books (counts, latency, resizes).
    pub books: Books,
    pub policy: RingPolicy,
    /// Counters at the last tick, to give the policy deltas.
    pub last: Counters,
    pub last_at: Duration,
    pub high_water: u64,
    pub rate: f64,
    /// `received` at the last observation (see [`Ring::burst`]).
    pub received_at_obs: u64,
    /// `Gaps::strays` already logged.
    strays_logged: u64,
    /// The size its policy wants and the memory budget holds back, once logged.
    pub held: Option<u64>,
    /// The consumer's position at the last observation (see [`Part::position`]).
    pub pos_at_obs: u64,
}

impl Part {
    /// Bytes consumed from the current ring since it was made.
    pub fn position(&self) -> u64 {
        self.consumer.position()
    }
}

pub enum Drained {
    Empty,
    BudgetUsed,
}

impl Drained {
    /// `BudgetUsed` if any shard's drain used its budget, else `Empty`. Runs every
    /// drain it is given (a fold, not a short-circuit): each shard is drained.
    fn any(shards: impl IntoIterator<Item = Drained>) -> Drained {
        shards.into_iter().fold(Drained::Empty, |acc, d| match d {
            Drained::BudgetUsed => Drained::BudgetUsed,
            Drained::Empty => acc,
        })
    }
}

impl Ring {
    /// A shard's label in logs and alerts: the family's name, with `/N` when sharded.
    pub fn label(&self, slot: usize) -> &'static str {
        shard_label(self.loaded.family, slot, self.shards.len())
    }

    /// Every shard drained by up to `budget` records ([`Ring::drain_shard`]); `Empty`
    /// when all were found empty.
    pub fn drain(&self, budget: usize) -> Drained {
        Drained::any((0..self.shards.len()).map(|slot| self.drain_shard(slot, budget)))
    }

    /// The loop's drain: every shard drained, then settled ([`Ring::settle`]).
    pub fn drain_settle(&mut self, budget: usize) -> Drained {
        Drained::any((0..self.shards.len()).map(|slot| {
            let d = self.drain_shard(slot, budget);
            self.settle(slot, matches!(d, Drained::Empty));
            d
        }))
    }

    /// Records received since the last observation, every shard.
    pub fn received_since_obs(&self) -> u64 {
        self.shards
            .iter()
            .map(|p| p.books.received.get().saturating_sub(p.received_at_obs))
            .sum()
    }

    /// Events per second produced over the last tick, every shard.
    pub fn rate(&self) -> f64 {
        self.shards.iter().map(|p| p.rate).sum()
    }

    /// The smallest shard's size: what a wake-up threshold is a share of.
    pub fn smallest(&self) -> u64 {
        self.loaded.shards.iter().map(|s| s.size).min().unwrap_or(0)
    }

    /// Consumes up to `budget` records of shard `slot`. A pass that ends empty is
    /// followed by a full fence and a second pass: the consumer position is published
    /// with a release store, no StoreLoad barrier, so a record committed meanwhile may have
    /// sent no wake-up (measured here: a plain loop stalled within ~75 ms). Only an empty
    /// second pass means the ring is really empty.
    fn drain_shard(&self, slot: usize, budget: usize) -> Drained {
        let Some(part) = self.shards.get(slot) else {
            return Drained::Empty;
        };
        // Up to `n` records; a record held back for the process ring (see
        // [`Pipeline::record`]) is rendered once that ring is caught up, and counts as one.
        let consume = |n| consume_from(&part.consumer, &self.pipe, n);
        part.books.latency.borrow_mut().new_pass();
        let mut left = budget;
        loop {
            let n = consume(left);
            left = left.saturating_sub(n);
            if left == 0 {
                return Drained::BudgetUsed;
            }
            if n > 0 {
                continue;
            }
            fence(Ordering::SeqCst);
            let m = consume(left);
            left = left.saturating_sub(m);
            if m == 0 {
                return Drained::Empty;
            }
            if left == 0 {
                return Drained::BudgetUsed;
            }
        }
    }

    /// At a tick: the seqs taken before the last tick (passed by a received one or by
    /// `produced`) that are still missing become due to be declared lost, once the ring is drained past what it holds now: found empty, or
    /// as many records consumed as it can hold (a record takes at least 16 bytes: the
    /// kernel's 8-byte header and 8 of ours).
    pub fn tick_gaps(&self) {
        for (slot, part) in self.shards.iter().enumerate() {
            if self.loaded.variant_510.is_some() {
                self.lost_counted(slot);
                continue;
            }
            let cap = self.loaded.shard_size(slot) / 16;
            let produced = self.loaded.try_counters(slot).map(|c| c.produced);
            part.books
                .gaps
                .borrow_mut()
                .tick(part.books.received.get(), cap, produced);
        }
    }

    /// After a drain of shard `slot` (`emptied`: it found the ring empty): declares a
    /// due settle's lost seqs, in `lost` records.
    fn settle(&mut self, slot: usize, emptied: bool) {
        let Some(part) = self.shards.get(slot) else {
            return;
        };
        let mut found = Vec::new();
        let strays = {
            let mut g = part.books.gaps.borrow_mut();
            g.due(emptied, part.books.received.get(), |f, l| {
                found.push((f, l))
            });
            g.strays()
        };
        self.raise_lost(slot, &found, strays);
    }

    /// Once the programs are stopped and the rings drained to the end: every seq below
    /// `produced` that was not received is lost.
    pub fn finish_gaps(&mut self) {
        for slot in 0..self.shards.len() {
            if self.loaded.variant_510.is_some() {
                self.lost_counted(slot);
                continue;
            }
            let produced = self.loaded.try_counters(slot).map(|c| c.produced);
            let mut found = Vec::new();
            let strays = {
                let mut g = self.shards[slot].books.gaps.borrow_mut();
                g.finish(produced, |f, l| found.push((f, l)));
                g.strays()
            };
            self.raise_lost(slot, &found, strays);
        }
    }

    /// A ring whose records carry no seq (a 5.10 variant): the drops its counters gained
    /// since the last report are lost, at once (a drop is never late), in one record.
    fn lost_counted(&self, slot: usize) {
        let (Some(c), Some(part)) = (self.loaded.try_counters(slot), self.shards.get(slot)) else {
            return;
        };
        let declared = part.books.lost.get();
        if c.dropped > declared {
            let family = self.loaded.family;
            let mut p = self.pipe.borrow_mut();
            p.lost(
                &part.books,
                Lost::counted(family.name(), c.dropped - declared),
            );
            // As a gap in the seqs does: a lost exec, fork or exit leaves the table wrong.
            if family == Family::Process
                && let Some(ctx) = &mut p.context
            {
                ctx.forget_processes();
            }
        }
    }

    fn raise_lost(&mut self, slot: usize, found: &[(u64, u64)], strays: u64) {
        let name = self.loaded.family.name();
        let label = self.label(slot);
        let Some(part) = self.shards.get_mut(slot) else {
            return;
        };
        if !found.is_empty() {
            let mut p = self.pipe.borrow_mut();
            for &(first, last) in found {
                p.lost(&part.books, Lost::seqs(name, first, last));
            }
        }
        if strays > part.strays_logged {
            // Would mean a producer held its seq far longer than a program runs: the
            // lost records then overstate the loss by this many.
            warn!(
                "ring {label}: {strays} records arrived twice or after their seq was reported lost"
            );
            part.strays_logged = strays;
        }
    }

    /// Replaces the ring with one of `size` bytes, losing and duplicating nothing:
    /// the new ring is created and watched first, then swapped into the programs' slot
    /// (the kernel returns only once no program can still write the old one), then the
    /// old ring is drained to the last record and dropped. Counters and sequence numbers
    /// live in maps that do not change. Returns how long the resize took, and how long of it the kernel held the
    /// loop in the slot update (waiting for programs that may still write the old ring).
    fn resize(
        &mut self,
        slot: usize,
        size: u64,
        registry: &Registry,
        token: Token,
    ) -> Result<(Duration, Duration), RunError> {
        let t = Instant::now();
        let map = self.loaded.new_ring(size)?;
        let books = &self.shards[slot].books;
        let consumer = consumer(&self.loaded, &map, size, &self.pipe, books)?;
        let new_fd = map.as_fd().as_raw_fd();
        registry
            .register(&mut SourceFd(&new_fd), token, Interest::READABLE)
            .map_err(RunError::io(format!(
                "watching the new {} ring",
                self.loaded.family
            )))?;
        let held = Instant::now();
        let swapped = self.loaded.swap_ring(slot, map);
        let held = held.elapsed();
        let old_map = match swapped {
            Ok(old) => old,
            Err(e) => {
                let _ = registry.deregister(&mut SourceFd(&new_fd));
                return Err(e.into());
            }
        };
        let consumer = Rc::new(consumer);
        if self.loaded.family == Family::Process && self.pipe.borrow().feed.is_some() {
            self.pipe.borrow_mut().feed = Some(consumer.clone());
        }
        let part = &mut self.shards[slot];
        let old_consumer = std::mem::replace(&mut part.consumer, consumer);
        // Final drain of the old ring: nothing can be added to it any more.
        part.books.latency.borrow_mut().new_pass();
        loop {
            let n = consume_from(&old_consumer, &self.pipe, usize::MAX >> 1);
            if n == 0 {
                break;
            }
            self.pipe.borrow_mut().sink.flush();
        }
        let _ = registry.deregister(&mut SourceFd(&old_map.as_fd().as_raw_fd()));
        drop(old_consumer);
        drop(old_map);
        Ok((t.elapsed(), held))
    }

    /// `resize`, then what every resize is followed by: the policy's cooldown starts,
    /// the direction is counted, and the decision is logged with its reason.
    pub fn resize_logged(
        &mut self,
        slot: usize,
        size: u64,
        why: &str,
        registry: &Registry,
        started: Instant,
    ) -> Result<(), RunError> {
        let size_of = |r: &Ring| r.loaded.shard_size(slot);
        let (old, family) = (size_of(self), self.loaded.family);
        let (took, held) = self.resize(slot, size, registry, Token(family.index()))?;
        let new = size_of(self);
        let label = self.label(slot);
        let part = &mut self.shards[slot];
        // The last mark was the old ring's: judged against the new size it could read
        // over 100 % until the next tick.
        part.high_water = 0;
        // The new ring's position starts at 0: no record size from the tick it spans.
        part.pos_at_obs = u64::MAX;
        part.policy.resized(started.elapsed(), new);
        if new > old {
            part.books.resizes_up += 1;
        } else {
            part.books.resizes_down += 1;
        }
        info!(
            "ring {label}: {} -> {} ({why}), swap took {} ms ({} ms in the kernel's swap)",
            fmt_size(old),
            fmt_size(new),
            took.as_millis(),
            held.as_millis()
        );
        Ok(())
    }

    /// The family's books: every shard's summed, each shard's apart when sharded.
    pub fn stats(&self) -> RingStats {
        let mut total = Counters::default();
        let mut shards = Vec::with_capacity(self.shards.len());
        for (slot, part) in self.shards.iter().enumerate() {
            let c = self.loaded.counters(slot);
            total.add(&c);
            let size = self.loaded.shard_size(slot);
            shards.push(ShardStats {
                size,
                high_water: part.high_water,
                utilization: part.high_water as f64 / size.max(1) as f64,
                rate: part.rate,
                resizes_up: part.books.resizes_up,
                resizes_down: part.books.resizes_down,
                produced: c.produced,
                received: part.books.received.get(),
                dropped: c.dropped,
                lost: part.books.lost.get(),
            });
        }
        let Counters {
            produced,
            dropped,
            untracked,
            filtered,
            rate_limited,
        } = total;
        let sum = |f: fn(&Books) -> u64| self.shards.iter().map(|p| f(&p.books)).sum::<u64>();
        let lat = match self.shards.first() {
            Some(p) => p.books.latency.borrow().clone(),
            None => Histogram::default(),
        };
        let mut latency_le = [0; LE_NS.len()];
        lat.cumulative(&LE_NS, &mut latency_le);
        let size = self.loaded.ring_bytes();
        let high_water = shards.iter().map(|s| s.high_water).sum();
        RingStats {
            name: self.loaded.family.name(),
            size,
            min: self.limits.0,
            max: self.limits.1,
            high_water,
            // The fullest shard: the one that drops first.
            utilization: shards.iter().map(|s| s.utilization).fold(0.0, f64::max),
            rate: self.rate(),
            resizes_up: shards.iter().map(|s| s.resizes_up).sum(),
            resizes_down: shards.iter().map(|s| s.resizes_down).sum(),
            latency_p50_ns: lat.quantile(0.5),
            latency_p99_ns: lat.quantile(0.99),
            latency_max_ns: lat.max(),
            latency_le,
            latency_sum_ns: lat.sum(),
            latency_count: lat.count(),
            produced,
            received: sum(|b| b.received.get()),
            dropped,
            filtered,
            rate_limited,
            untracked,
            decode_errors: sum(|b| b.decode_errors.get()),
            context_only: sum(|b| b.context_only.get()),
            lost: sum(|b| b.lost.get()),
            lost_records: sum(|b| b.lost_records.get()),
            variant: self.loaded.variant_510.as_ref().map(|_| "5.10"),
            shards: if shards.len() > 1 { shards } else { Vec::new() },
        }
    }
}

/// A shard's settings for its policy: the family's expected rate split evenly (the
/// start size already is, see config's `rate`), so that the policy's first estimate is
/// the shard's share.
pub fn shard_settings(rs: &RingSettings, shards: usize) -> RingSettings {
    RingSettings {
        rate: rs.rate.map(|r| r / shards.max(1) as f64),
        ..*rs
    }
}

/// `family`, or `family/slot` when it has more than one shard: names that live as long
/// as the daemon (alerts and observations keep them), made once each.
pub fn shard_label(family: Family, slot: usize, shards: usize) -> &'static str {
    if shards <= 1 {
        return family.name();
    }
    thread_local! {
        static LABELS: RefCell<Vec<(Family, usize, &'static str)>> = const { RefCell::new(Vec::new()) };
    }
    LABELS.with_borrow_mut(|labels| {
        if let Some(&(_, _, l)) = labels.iter().find(|(f, s, _)| *f == family && *s == slot) {
            return l;
        }
        // At most families × MAX_SHARDS small strings, once each.
        let l: &'static str = Box::leak(format!("{family}/{slot}").into_boxed_str());
        labels.push((family, slot, l));
        l
    })
}

pub fn make_ring(
    loaded: Loaded,
    pipe: &Rc<RefCell<Pipeline>>,
    books: Vec<Books>,
    opts: &RunOptions,
    started: Instant,
) -> Result<Ring, RunError> {
    let rs = *opts.settings.ring(loaded.family);
    let now = started.elapsed();
    let books = Books::for_shards(books, loaded.shards.len());
    let mut shards = Vec::with_capacity(books.len());
    for (slot, books) in books.into_iter().enumerate() {
        let Some(shard) = loaded.shards.get(slot) else {
            break;
        };
        let consumer = Rc::new(consumer(&loaded, &shard.ring, shard.size, pipe, &books)?);
        // The process ring is never sharded (see config's `shards`).
        if slot == 0 && loaded.family == Family::Process && opts.settings.context.enabled {
            pipe.borrow_mut().feed = Some(consumer.clone());
        }
        let per_shard = shard_settings(&rs, loaded.shards.len());
        let mut policy =
            RingPolicy::new(&per_shard, &opts.settings.adaptive, &opts.settings.sizing);
        policy.resized(now, shard.size);
        // A handed-over mark belongs to the ring of an earlier load.
        loaded.take_high_water(slot);
        shards.push(Part {
            consumer,
            last: loaded.counters(slot),
            received_at_obs: books.received.get(),
            books,
            policy,
            last_at: now,
            high_water: 0,
            rate: 0.0,
            strays_logged: 0,
            held: None,
            pos_at_obs: 0,
        });
    }
    Ok(Ring {
        loaded,
        shards,
        pipe: pipe.clone(),
        limits: (rs.min, rs.max),
        batched: false,
        wakeup_bytes: 0,
        burst: false,
    })
}

/// Up to `n` records from `consumer` (see [`Ring::consume`]): the reader stops at a record
/// the callback held back; it is rendered after the catch-up and the consumption goes on.
fn consume_from(consumer: &Consumer, pipe: &Rc<RefCell<Pipeline>>, n: usize) -> usize {
    let mut done = 0usize;
    loop {
        // The held record is among those taken (the reader passes a record before its
        // callback). The catch-up's records are the process ring's, outside this count.
        let Consumed { taken, stopped } = consumer.consume_n(n - done);
        done = done.saturating_add(taken);
        if stopped && pipe.borrow().holds() {
            catch_up(pipe);
            if done < n {
                continue;
            }
        }
        return done;
    }
}

/// A reader of `map` (`size` bytes), rendering into the shared pipeline and counting
/// into the family's books (which survive ring swaps).
fn consumer(
    loaded: &Loaded,
    map: &MapHandle,
    size: u64,
    pipe: &Rc<RefCell<Pipeline>>,
    books: &Books,
) -> Result<Consumer, RunError> {
    let family = loaded.family;
    let name = family.name();
    let (p, b) = (pipe.clone(), books.clone());
    let record = move |data: &[u8]| p.borrow_mut().record(name, family, &b, data);
    Consumer::new(map, size, Box::new(record))
        .map_err(RunError::io(format!("ring {name}: mapping its pages")))
}

/// Stop every program, then drain until every ring's books balance (a program may still
/// be between reserve and submit right after the stop) or the deadline passes. Detaching
/// comes after the final report: it is slow and adds nothing to the books.
pub fn shutdown(rings: &mut [Ring], pipe: &Rc<RefCell<Pipeline>>) {
    // The process family (first in the list) stops last: the execs and forks behind
    // the other families' last events are all recorded for their context.
    let mut stopped = Vec::with_capacity(rings.len());
    for (i, r) in rings.iter_mut().enumerate().rev() {
        match r.loaded.stop() {
            Ok(()) => stopped.push(i),
            Err(e) => {
                // Fall back to detaching now: slower, but nothing runs after it either.
                warn!(
                    "stopping the {} programs: {e}; detaching them instead",
                    r.loaded.family
                );
                r.loaded.detach();
            }
        }
    }
    // One RCU grace period (what a sync waits for) covers every family's programs:
    // after it none still runs on a config from before its stop. One a family cost
    // ~25 ms of every stop each.
    if let Some(&first) = stopped.first()
        && let Err(e) = rings[first].loaded.sync()
    {
        warn!("waiting for the stopped programs: {e}; detaching them instead");
        for &i in &stopped {
            rings[i].loaded.detach();
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
    // Nothing more can arrive: whatever is missing now is lost.
    for r in rings.iter_mut() {
        r.finish_gaps();
    }
    if rings.iter().any(|r| r.loaded.family == Family::Process) {
        // The feed's consumer goes with its ring (it also holds the pipeline: a cycle).
        pipe.borrow_mut().feed = None;
    }
    pipe.borrow_mut().sink.flush();
}

pub fn stats_line(prefix: &str, s: &RingStats) -> String {
    let mut line = format!(
        "{prefix}ring {} size={} produced={} received={} dropped={} filtered={} rate_limited={} untracked={} decode_errors={} context_only={} exact={} lost={}",
        s.name,
        s.size,
        s.produced,
        s.received,
        s.dropped,
        s.filtered,
        s.rate_limited,
        s.untracked,
        s.decode_errors,
        s.context_only,
        if s.exact() { "yes" } else { "NO" },
        s.lost
    );
    if !s.shards.is_empty() {
        // Each shard's own books: seqs count per shard.
        let parts: Vec<String> = s
            .shards
            .iter()
            .map(|p| format!("{}/{}/{}", p.produced, p.received, p.dropped))
            .collect();
        let _ = write!(
            line,
            " shards={} shard_books={}",
            s.shards.len(),
            parts.join(",")
        );
    }
    line
}
