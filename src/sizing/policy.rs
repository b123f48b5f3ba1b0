//! Resize decisions per ring (pure logic; the daemon observes every tick and swaps).
//!
//! - dynamic (spec §3.2): grows when the in-kernel high-water mark passed `grow_above` or
//!   any event was dropped; shrinks after a whole cooldown under `shrink_below`.
//! - predictive (§3.3): sizes by the formula from a smoothed event rate.
//! - hybrid (§3.4): the larger of the two; growth at once, shrinking only when both agree.
//!
//! Growth is never held back by the cooldown: losing events while idling in a cooldown is
//! the worst outcome, and growth is bounded anyway (each step at least doubles, up to
//! `max`). The cooldown is what stops flapping: a shrink needs a whole cooldown of low
//! utilization after the last resize, and predictive changes wait a cooldown too.
use std::time::Duration;

use crate::sizing::budget::{self, Claim};
use crate::sizing::{self, AdaptiveSettings, RingSettings, SizingSettings};
use crate::units::{self, fmt_duration, fmt_rate};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    Dynamic,
    Predictive,
    Hybrid,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 3] = [
        PolicyKind::Dynamic,
        PolicyKind::Predictive,
        PolicyKind::Hybrid,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Dynamic => "dynamic",
            PolicyKind::Predictive => "predictive",
            PolicyKind::Hybrid => "hybrid",
        }
    }

    pub fn parse(s: &str) -> Option<PolicyKind> {
        PolicyKind::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// One tick's view of a ring.
#[derive(Clone, Copy, Debug, Default)]
pub struct Observation {
    /// Monotonic time since the daemon started.
    pub now: Duration,
    /// The ring's current size in bytes.
    pub size: u64,
    /// Most bytes waiting in the ring since the last tick, as measured in the kernel.
    pub high_water: u64,
    /// Events produced since the last tick.
    pub produced: u64,
    /// Events dropped since the last tick.
    pub dropped: u64,
    /// Time since the last tick.
    pub elapsed: Duration,
    /// Bytes a record of the tick took in the ring, on average (0: none was read). A
    /// family's records differ: a file open takes 664 bytes, its largest record 9352.
    pub record: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub new_size: u64,
    /// Why, for the log line: "high-water 93%, 0 dropped, 41k ev/s".
    pub reason: String,
}

/// Smoothing time constant of the predictive rate. Each tick weighs its rate by
/// 1 − e^(−elapsed/τ): 0.28 for a 10 s tick, 0.033 for a 1 s tick, so the estimate
/// follows a lasting change within about a minute and shrugs off a single burst (which
/// the dynamic rule is there for).
pub const RATE_TAU: Duration = Duration::from_secs(30);

pub struct RingPolicy {
    kind: PolicyKind,
    enabled: bool,
    min: u64,
    max: u64,
    event_size: u64,
    target: f64,
    grow_above: f64,
    shrink_below: f64,
    factor: f64,
    cooldown: Duration,
    buffer_time_s: f64,
    safety: f64,
    /// Size the policy last knew (from an observation or a resize).
    size: u64,
    /// When the last resize finished; the daemon's start counts as one, so nothing
    /// shrinks (and nothing is predicted) before a first cooldown has passed.
    last_resize: Duration,
    /// Set after a growth until a tick that starts after it: drops counted in a tick that
    /// spans the swap may have happened in the old, smaller ring.
    grew_at: Option<Duration>,
    /// Start of the current run of ticks under `shrink_below` without a drop, and the
    /// highest high-water mark in that run.
    low_since: Option<Duration>,
    low_peak: u64,
    /// Smoothed events/s (predictive), seeded with the configured `rate` when there is one.
    rate: Option<f64>,
    /// What one lost event costs (the memory budget's weighing, see `budget::event_cost`).
    cost: f64,
    /// Each recent tick's peak (see [`peak`]) and when the tick ended: a cooldown's worth,
    /// what the memory budget expects of the ring.
    peaks: Vec<u64>,
    peak_at: Vec<Duration>,
    /// Whether the latest tick dropped events.
    dropping: bool,
    /// What a record takes in the ring, as last observed (the family's largest until
    /// then): the budget counts bytes of peaks in records of this size.
    record: u64,
}

/// The most bytes a tick needed: its high-water mark, or, when it dropped, the ring's size
/// plus the dropped records (what a ring large enough would have held, if the drops came in
/// one overflow; more overflows in a tick needed less).
pub fn peak(o: &Observation, record: u64) -> u64 {
    if o.dropped > 0 {
        let record = if o.record > 0 { o.record } else { record };
        o.size.saturating_add(o.dropped.saturating_mul(record))
    } else {
        o.high_water
    }
}

/// What one rule wants.
enum Proposal {
    Grow(u64, String),
    Shrink(u64, String),
}

impl RingPolicy {
    pub fn new(ring: &RingSettings, adaptive: &AdaptiveSettings, sizing: &SizingSettings) -> Self {
        RingPolicy {
            kind: adaptive.policy,
            enabled: adaptive.enabled,
            min: ring.min,
            max: ring.max,
            event_size: ring.event_size,
            target: adaptive.target_utilization,
            grow_above: adaptive.grow_above,
            shrink_below: adaptive.shrink_below,
            factor: adaptive.adjustment_factor,
            cooldown: adaptive.cooldown,
            buffer_time_s: sizing.buffer_time.as_secs_f64(),
            safety: sizing.safety_factor,
            size: ring.size,
            last_resize: Duration::ZERO,
            grew_at: None,
            low_since: None,
            low_peak: 0,
            rate: ring.rate,
            cost: budget::event_cost(ring.priority, ring.loss_weight),
            peaks: Vec::new(),
            peak_at: Vec::new(),
            dropping: false,
            record: ring.event_size,
        }
    }

    /// What the ring asks of the memory budget this tick: `decision` is what `observe`
    /// returned. A ring that does not adapt keeps its size.
    pub fn claim<'a>(&'a self, size: u64, decision: Option<&'a Decision>) -> Claim<'a> {
        let (min, max) = if self.enabled {
            (self.min.min(size), self.max.max(size))
        } else {
            (size, size)
        };
        Claim {
            size,
            min,
            max,
            want: decision.map_or(size, |d| d.new_size),
            why: decision.map(|d| d.reason.as_str()),
            cost: self.cost,
            record: self.record,
            peaks: &self.peaks,
            dropping: self.dropping,
        }
    }

    /// Keeps the tick's peak for the budget, a cooldown's worth (at least the latest).
    fn remember(&mut self, o: &Observation) {
        let keep = self.cooldown.max(Duration::from_secs(1));
        let old = self
            .peak_at
            .iter()
            .take_while(|&&t| o.now.saturating_sub(t) >= keep)
            .count();
        self.peaks.drain(..old);
        self.peak_at.drain(..old);
        self.peaks.push(peak(o, self.record));
        self.peak_at.push(o.now);
        self.dropping = o.dropped > 0;
        if o.record > 0 {
            self.record = o.record;
        }
    }

    /// Called every tick; `Some` when the ring should be resized now.
    pub fn observe(&mut self, o: &Observation) -> Option<Decision> {
        if o.size == 0 {
            return None;
        }
        self.remember(o);
        if !self.enabled {
            return None;
        }
        self.size = o.size;
        let secs = o.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            o.produced as f64 / secs
        } else {
            0.0
        };
        if secs > 0.0 {
            let alpha = 1.0 - (-secs / RATE_TAU.as_secs_f64()).exp();
            self.rate = Some(match self.rate {
                Some(r) => r + alpha * (rate - r),
                None => rate,
            });
        }
        let start = o.now.saturating_sub(o.elapsed);
        if self.grew_at.is_some_and(|t| start >= t) {
            self.grew_at = None;
        }
        let dynamic = self.dynamic(o, rate);
        let predictive = self.predictive(o);
        let (new_size, reason) = match self.kind {
            PolicyKind::Dynamic => match dynamic? {
                Proposal::Grow(s, r) | Proposal::Shrink(s, r) => (s, r),
            },
            PolicyKind::Predictive => match predictive? {
                Proposal::Grow(s, r) | Proposal::Shrink(s, r) => (s, r),
            },
            PolicyKind::Hybrid => hybrid(o.size, dynamic, predictive, self.predicted_size())?,
        };
        (new_size != o.size).then_some(Decision { new_size, reason })
    }

    /// Called after the daemon swapped the ring: starts the cooldown.
    pub fn resized(&mut self, now: Duration, new_size: u64) {
        if new_size > self.size {
            self.grew_at = Some(now);
        }
        self.size = new_size;
        self.last_resize = now;
        self.low_since = None;
        self.low_peak = 0;
    }

    fn clamp(&self, s: u64) -> u64 {
        s.clamp(self.min, self.max)
    }

    fn dynamic(&mut self, o: &Observation, rate: f64) -> Option<Proposal> {
        let util = o.high_water as f64 / o.size as f64;
        let hot = util > self.grow_above;
        // In the tick right after a growth, drops with a cool high-water mark happened in
        // the old ring during the swap (a full new ring would show a high mark): not a
        // reason to grow again.
        let drops = o.dropped > 0 && (hot || self.grew_at.is_none());
        let stats = format!("{} dropped, {} ev/s", o.dropped, fmt_rate(rate));
        if hot || drops {
            self.low_since = None;
            self.low_peak = 0;
            // One step: size × factor, rounded up to a power of two (spec §3.2). Under a
            // lasting overload that is one step per tick, since drops skip the cooldown.
            let want = o.size as f64 * self.factor;
            let new = self.clamp(sizing::round_size(want, self.min));
            return (new > o.size)
                .then(|| Proposal::Grow(new, format!("high-water {}, {stats}", pct(util))));
        }
        if util >= self.shrink_below || o.dropped > 0 {
            self.low_since = None;
            self.low_peak = 0;
            return None;
        }
        let since = *self
            .low_since
            .get_or_insert(o.now.saturating_sub(o.elapsed).max(self.last_resize));
        self.low_peak = self.low_peak.max(o.high_water);
        let low_for = o.now.saturating_sub(since);
        if low_for < self.cooldown
            || o.now.saturating_sub(self.last_resize) < self.cooldown
            || o.size <= self.min
        {
            return None;
        }
        // One power of two down: size ÷ factor rounded down to a power of two (a factor
        // of 1.2–2 always lands on half).
        let down = prev_power_of_two((o.size as f64 / self.factor) as u64).min(o.size / 2);
        let new = self.clamp(down);
        // Do not shrink into a ring the recent peak would already fill past the target.
        if new >= o.size || self.low_peak as f64 > new as f64 * self.target {
            return None;
        }
        Some(Proposal::Shrink(
            new,
            format!(
                "high-water under {} for {} (peak {}), {stats}",
                pct(self.shrink_below),
                // Whole seconds (ticks are 1 s apart; the nanoseconds are noise).
                fmt_duration(Duration::from_secs(low_for.as_secs_f64().round() as u64)),
                pct(self.low_peak as f64 / o.size as f64)
            ),
        ))
    }

    /// The formula's size for the smoothed rate, clamped.
    fn predicted_size(&self) -> Option<u64> {
        let rate = self.rate?;
        let bytes = sizing::formula(self.event_size, rate, self.buffer_time_s, self.safety);
        Some(self.clamp(sizing::round_size(bytes, self.min)))
    }

    fn predictive(&self, o: &Observation) -> Option<Proposal> {
        let new = self.predicted_size()?;
        if new == o.size || o.now.saturating_sub(self.last_resize) < self.cooldown {
            return None;
        }
        let rate = self.rate.unwrap_or(0.0);
        let bytes = sizing::formula(self.event_size, rate, self.buffer_time_s, self.safety);
        let reason = format!(
            "predicted {} ev/s × {} B × {} s × {} = {}",
            fmt_rate(rate),
            self.event_size,
            units::fmt_num(self.buffer_time_s),
            units::fmt_num(self.safety),
            units::fmt_approx(bytes)
        );
        Some(if new > o.size {
            Proposal::Grow(new, reason)
        } else {
            Proposal::Shrink(new, reason)
        })
    }
}

/// Hybrid: the larger proposal wins. The dynamic rule grows at once; the predictive one
/// grows after a cooldown; a shrink needs the dynamic rule's whole cooldown under
/// `shrink_below` and a predicted size below the current one, and goes only as far down
/// as the larger of the two allows.
fn hybrid(
    size: u64,
    dynamic: Option<Proposal>,
    predictive: Option<Proposal>,
    predicted: Option<u64>,
) -> Option<(u64, String)> {
    match (dynamic, predictive) {
        (Some(Proposal::Grow(d, dr)), Some(Proposal::Grow(p, pr))) if p > d => {
            Some((p, format!("predictive: {pr}; dynamic: {dr}")))
        }
        (Some(Proposal::Grow(d, dr)), _) => Some((d, format!("dynamic: {dr}"))),
        (_, Some(Proposal::Grow(p, pr))) => Some((p, format!("predictive: {pr}"))),
        (Some(Proposal::Shrink(d, dr)), p) => {
            let predicted = predicted?;
            if predicted >= size {
                return None;
            }
            let new = d.max(predicted);
            let pr = match p {
                Some(Proposal::Shrink(_, pr)) => pr,
                _ => format!("predicted {}", units::fmt_size(predicted)),
            };
            Some((new, format!("dynamic: {dr}; predictive: {pr}")))
        }
        _ => None,
    }
}

fn prev_power_of_two(x: u64) -> u64 {
    if x == 0 {
        0
    } else {
        1 << (63 - x.leading_zeros())
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", (x * 100.0).min(100.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::Family;

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;

    fn ring(size: u64) -> RingSettings {
        RingSettings {
            shards: 1,
            family: Family::File,
            size,
            min: 64 * KIB,
            max: 16 * MIB,
            rate: None,
            event_size: 1000,
            priority: 3,
            loss_weight: 1.0,
        }
    }

    fn adaptive(policy: PolicyKind) -> AdaptiveSettings {
        AdaptiveSettings {
            enabled: true,
            policy,
            target_utilization: 0.7,
            grow_above: 0.9,
            shrink_below: 0.3,
            adjustment_factor: 1.5,
            cooldown: Duration::from_secs(60),
        }
    }

    fn sizing() -> SizingSettings {
        SizingSettings {
            buffer_time: Duration::from_secs(2),
            safety_factor: 3.0,
            memory_budget: None,
        }
    }

    fn policy(kind: PolicyKind, size: u64) -> RingPolicy {
        RingPolicy::new(&ring(size), &adaptive(kind), &sizing())
    }

    /// A 10 s tick ending at `t` seconds.
    fn tick(t: u64, size: u64, hw_pct: u64, produced: u64, dropped: u64) -> Observation {
        Observation {
            now: Duration::from_secs(t),
            size,
            high_water: size * hw_pct / 100,
            produced,
            dropped,
            elapsed: Duration::from_secs(10),
            record: 0,
        }
    }

    #[test]
    fn dynamic_grows_on_high_water_with_the_reason() {
        let mut p = policy(PolicyKind::Dynamic, MIB);
        let d = p.observe(&tick(10, MIB, 93, 410_000, 0)).expect("grow");
        // ×1.5 rounds up to the next power of two: never "no change".
        assert_eq!(d.new_size, 2 * MIB);
        assert_eq!(d.reason, "high-water 93%, 0 dropped, 41k ev/s");
        assert_eq!(
            p.observe(&tick(10, MIB, 90, 0, 0)),
            None,
            "90% is not above 0.9"
        );
    }

    #[test]
    fn dynamic_grows_on_any_drop_even_in_cooldown_by_one_step() {
        let mut p = policy(PolicyKind::Dynamic, MIB);
        p.resized(Duration::from_secs(5), MIB);
        // One drop, low high-water, right after a resize: grows anyway.
        let d = p.observe(&tick(20, MIB, 10, 100, 1)).expect("grow");
        assert_eq!(d.new_size, 2 * MIB);
        assert_eq!(d.reason, "high-water 10%, 1 dropped, 10 ev/s");
        // However much was lost, dynamic grows by one step (1 MiB × 1.5 -> 2 MiB).
        let mut p = policy(PolicyKind::Dynamic, MIB);
        let d = p.observe(&tick(10, MIB, 100, 50_000, 3000)).expect("grow");
        assert_eq!(d.new_size, 2 * MIB);
    }

    #[test]
    fn dynamic_ignores_drops_of_the_old_ring_in_the_tick_spanning_a_growth() {
        let mut p = policy(PolicyKind::Dynamic, MIB);
        let d = p.observe(&tick(10, MIB, 95, 1000, 5)).expect("grow");
        p.resized(
            Duration::from_secs(10) + Duration::from_millis(9),
            d.new_size,
        );
        // The tick from 10 s to 20 s began before the swap finished: its drops may be the
        // old ring's. The new ring's mark is cool, so no second growth.
        assert_eq!(p.observe(&tick(20, 2 * MIB, 40, 1000, 3)), None);
        // The next tick is all new ring: a drop grows again.
        assert_eq!(
            p.observe(&tick(30, 2 * MIB, 40, 1000, 1))
                .map(|d| d.new_size),
            Some(4 * MIB)
        );
        // But a hot new ring in the spanning tick grows at once.
        let mut p = policy(PolicyKind::Dynamic, MIB);
        p.observe(&tick(10, MIB, 95, 1000, 5));
        p.resized(Duration::from_millis(10_009), 2 * MIB);
        assert_eq!(
            p.observe(&tick(20, 2 * MIB, 97, 1000, 3))
                .map(|d| d.new_size),
            Some(4 * MIB)
        );
    }

    #[test]
    fn dynamic_shrinks_after_a_whole_cooldown_under_the_threshold_not_before() {
        let mut p = policy(PolicyKind::Dynamic, 4 * MIB);
        for t in [10, 20, 30, 40, 50] {
            assert_eq!(p.observe(&tick(t, 4 * MIB, 10, 100, 0)), None, "t={t}");
        }
        let d = p
            .observe(&tick(60, 4 * MIB, 12, 100, 0))
            .expect("shrink at 60 s");
        assert_eq!(d.new_size, 2 * MIB, "one power of two down");
        assert_eq!(
            d.reason,
            "high-water under 30% for 60s (peak 12%), 0 dropped, 10 ev/s"
        );
        p.resized(Duration::from_secs(60), 2 * MIB);
        // The cooldown restarts at the resize.
        for t in [70, 80, 90, 100, 110] {
            assert_eq!(p.observe(&tick(t, 2 * MIB, 10, 100, 0)), None, "t={t}");
        }
        assert_eq!(
            p.observe(&tick(120, 2 * MIB, 10, 100, 0))
                .map(|d| d.new_size),
            Some(MIB)
        );
    }

    #[test]
    fn a_busy_tick_restarts_the_low_run() {
        let mut p = policy(PolicyKind::Dynamic, 4 * MIB);
        for t in [10, 20, 30, 40] {
            assert_eq!(p.observe(&tick(t, 4 * MIB, 10, 100, 0)), None);
        }
        assert_eq!(
            p.observe(&tick(50, 4 * MIB, 50, 100, 0)),
            None,
            "50%: in band"
        );
        for t in [60, 70, 80, 90, 100] {
            assert_eq!(p.observe(&tick(t, 4 * MIB, 10, 100, 0)), None, "t={t}");
        }
        assert!(p.observe(&tick(110, 4 * MIB, 10, 100, 0)).is_some());
    }

    #[test]
    fn dynamic_clamps_at_max_and_min() {
        let mut p = policy(PolicyKind::Dynamic, 8 * MIB);
        // (8 MiB + 1e9 B) / 0.7 would be 2 GiB: clamped to max.
        assert_eq!(
            p.observe(&tick(10, 8 * MIB, 100, 0, 1_000_000))
                .map(|d| d.new_size),
            Some(16 * MIB)
        );
        assert_eq!(p.observe(&tick(20, 16 * MIB, 100, 0, 5)), None, "at max");
        let mut p = policy(PolicyKind::Dynamic, 64 * KIB);
        for t in (10..=200).step_by(10) {
            assert_eq!(p.observe(&tick(t, 64 * KIB, 0, 0, 0)), None, "at min");
        }
        // A ring above max (max lowered by a reload) is not "grown" down to it.
        let mut p = policy(PolicyKind::Dynamic, 32 * MIB);
        assert_eq!(p.observe(&tick(10, 32 * MIB, 95, 0, 0)), None);
    }

    #[test]
    fn dynamic_does_not_shrink_into_a_ring_the_peak_would_overfill() {
        let mut a = adaptive(PolicyKind::Dynamic);
        a.shrink_below = 0.45;
        a.target_utilization = 0.8;
        let mut p = RingPolicy::new(&ring(4 * MIB), &a, &sizing());
        for t in (10..=120).step_by(10) {
            // 44% of 4 MiB would be 88% of 2 MiB, above the 0.8 target.
            assert_eq!(p.observe(&tick(t, 4 * MIB, 44, 0, 0)), None, "t={t}");
        }
    }

    #[test]
    fn disabled_never_decides() {
        let mut a = adaptive(PolicyKind::Hybrid);
        a.enabled = false;
        let mut p = RingPolicy::new(&ring(MIB), &a, &sizing());
        assert_eq!(p.observe(&tick(10, MIB, 100, 1_000_000, 1_000_000)), None);
        for t in (20..=300).step_by(10) {
            assert_eq!(p.observe(&tick(t, MIB, 0, 0, 0)), None);
        }
    }

    #[test]
    fn predictive_follows_a_rate_change_after_the_cooldown() {
        let mut p = policy(PolicyKind::Predictive, MIB);
        // 100 ev/s × 1000 B × 2 s × 3 = 600 kB -> 1 MiB: the current size, no change.
        for t in (10..=100).step_by(10) {
            assert_eq!(p.observe(&tick(t, MIB, 50, 1000, 0)), None, "t={t}");
        }
        // 2000 ev/s: 12 MB -> 16 MiB. The average follows in a few ticks, and each change
        // waits a cooldown after the last.
        let (mut size, mut last, mut steps) = (MIB, 0, Vec::new());
        for t in (110..=600).step_by(10) {
            if let Some(d) = p.observe(&tick(t, size, 50, 20_000, 0)) {
                assert!(t - last >= 60, "t={t}: cooldown not respected");
                assert!(
                    d.new_size > size && d.reason.starts_with("predicted "),
                    "{d:?}"
                );
                (size, last) = (d.new_size, t);
                steps.push(size);
                p.resized(Duration::from_secs(t), size);
            }
        }
        assert_eq!(steps, vec![4 * MIB, 16 * MIB]);
        // And back down to min when the rate falls to 10 ev/s.
        for t in (610..=1500).step_by(10) {
            if let Some(d) = p.observe(&tick(t, size, 1, 100, 0)) {
                assert!(t - last >= 60 && d.new_size < size, "t={t}: {d:?}");
                (size, last) = (d.new_size, t);
                p.resized(Duration::from_secs(t), size);
            }
        }
        assert_eq!(size, 64 * KIB);
    }

    #[test]
    fn predictive_starts_from_the_configured_rate_and_clamps() {
        let mut r = ring(MIB);
        r.rate = Some(2000.0);
        r.max = 4 * MIB;
        let mut p = RingPolicy::new(&r, &adaptive(PolicyKind::Predictive), &sizing());
        // Nothing before a cooldown after the start.
        assert_eq!(p.observe(&tick(10, MIB, 0, 20_000, 0)), None);
        let d = (20..=60)
            .step_by(10)
            .find_map(|t| p.observe(&tick(t, MIB, 0, 20_000, 0)))
            .expect("grow");
        assert_eq!(d.new_size, 4 * MIB, "16 MiB clamped to max");
        assert_eq!(
            d.reason,
            "predicted 2.0k ev/s × 1000 B × 2 s × 3 = 11.4 MiB"
        );
    }

    #[test]
    fn predictive_ignores_drops_until_the_cooldown() {
        let mut p = policy(PolicyKind::Predictive, MIB);
        assert_eq!(p.observe(&tick(10, MIB, 100, 100, 50)), None);
    }

    #[test]
    fn hybrid_grows_at_once_on_drops_and_takes_the_larger_proposal() {
        let mut p = policy(PolicyKind::Hybrid, MIB);
        let d = p.observe(&tick(10, MIB, 100, 100, 1)).expect("grow");
        assert_eq!(d.new_size, 2 * MIB);
        assert_eq!(d.reason, "dynamic: high-water 100%, 1 dropped, 10 ev/s");
        p.resized(Duration::from_secs(10), 2 * MIB);
        // After a cooldown at 20k ev/s × 1000 B: predictive wants 16 MiB (clamped), more
        // than dynamic's 4 MiB.
        let mut p = policy(PolicyKind::Hybrid, MIB);
        let mut last = None;
        for t in (10..=60).step_by(10) {
            last = p.observe(&tick(t, MIB, 95, 200_000, 0));
            if t < 60 {
                assert_eq!(last.as_ref().map(|d| d.new_size), Some(2 * MIB));
            }
        }
        let d = last.expect("grow");
        assert_eq!(d.new_size, 16 * MIB);
        assert!(
            d.reason.starts_with("predictive: predicted 20k ev/s"),
            "{}",
            d.reason
        );
        assert!(
            d.reason.contains("; dynamic: high-water 95%"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn hybrid_shrinks_only_when_both_agree() {
        // Low high-water but a rate the formula needs 8 MiB for: no shrink.
        let mut p = policy(PolicyKind::Hybrid, 8 * MIB);
        for t in (10..=200).step_by(10) {
            assert_eq!(p.observe(&tick(t, 8 * MIB, 20, 10_000, 0)), None, "t={t}");
        }
        // Low high-water and a low rate: shrinks after the cooldown, to the larger of the
        // two proposals (dynamic: 4 MiB; predictive: 64 KiB).
        let mut p = policy(PolicyKind::Hybrid, 8 * MIB);
        for t in [10, 20, 30, 40, 50] {
            assert_eq!(p.observe(&tick(t, 8 * MIB, 5, 100, 0)), None, "t={t}");
        }
        let d = p.observe(&tick(60, 8 * MIB, 5, 100, 0)).expect("shrink");
        assert_eq!(d.new_size, 4 * MIB);
        assert!(
            d.reason
                .starts_with("dynamic: high-water under 30% for 60s"),
            "{}",
            d.reason
        );
        assert!(
            d.reason.contains("; predictive: predicted 10 ev/s"),
            "{}",
            d.reason
        );
        // A busy ring with a low predicted rate (a burst the average does not see): no shrink.
        let mut p = policy(PolicyKind::Hybrid, 8 * MIB);
        for t in (10..=200).step_by(10) {
            assert_eq!(p.observe(&tick(t, 8 * MIB, 60, 100, 0)), None, "t={t}");
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(fmt_rate(41_234.0), "41k");
        assert_eq!(fmt_rate(950.0), "950");
        assert_eq!(fmt_rate(2500.0), "2.5k");
        assert_eq!(fmt_rate(2.5e6), "2.5M");
        assert_eq!(prev_power_of_two(682 * KIB), 512 * KIB);
        assert_eq!(prev_power_of_two(MIB), MIB);
        assert_eq!(PolicyKind::parse("hybrid"), Some(PolicyKind::Hybrid));
        assert_eq!(PolicyKind::parse("smart"), None);
    }
}
