//! `ringwarden sizing simulate`: a per-ring rate trace replayed through the daemon's own
//! sizing code ([`budget::tick`] and [`budget::Plan::run`]), with a ring model in place of
//! the kernel: in a tick whose events came in `bursts` bursts, each needing `peak` bytes
//! at its worst moment, a ring of `size` bytes holds `min(peak, size)` and drops what did
//! not fit of each burst, in whole records.
//!
//! A trace the daemon records (`--record-rates`) gives each tick's peak as it saw it: the
//! high-water mark, or, when the ring dropped, its size plus the dropped records (one
//! burst: the kernel does not tell how many overflows a tick had). Replayed at the sizes
//! the run had, that gives back the run's drops; replayed with another budget or policy,
//! what they would have done. A load known to come in bursts (a trace written by hand, or
//! a recorded one given `bursts`) replays truer at other sizes: one overflow of many
//! records overstates what a larger ring would drop, and understates a smaller one's.
use std::time::Duration;

use crate::sizing::budget::{self, Entry};
use crate::sizing::policy::{Observation, RingPolicy};
use crate::sizing::{AdaptiveSettings, RingSettings, SizingSettings};

/// How long a swap is taken to last (the daemon logs each one's time: about a
/// millisecond here).
const SWAP: Duration = Duration::from_millis(1);

/// One ring's line in a tick of the trace.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Load {
    /// Events produced in the tick.
    pub events: u64,
    /// The most bytes one burst of its events needed at once.
    pub peak: u64,
    /// Bursts in the tick, each needing `peak` (0 counts as 1).
    pub bursts: u64,
    /// Bytes one record took in the tick, as recorded (0: the family's largest record).
    pub record: u64,
    /// What the recording run dropped in the tick, when the trace was recorded.
    pub dropped: Option<u64>,
}

/// One tick of the trace: when it ended (seconds from the start) and each ring's load,
/// by index into the simulated rings (a ring missing from a tick was idle).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tick {
    pub t: f64,
    pub loads: Vec<(usize, Load)>,
}

/// How the rings are sized in a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sizing {
    /// The start sizes, never changed.
    Fixed,
    /// The rings' policies, within a memory budget if there is one.
    Adaptive(Option<u64>),
}

/// One ring's outcome.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RingOutcome {
    /// Its size at the start, then each change: (seconds, bytes).
    pub sizes: Vec<(f64, u64)>,
    pub events: u64,
    pub dropped: u64,
    /// What the recording run dropped, summed (when the trace carried it).
    pub recorded: Option<u64>,
    /// Dropped × the cost of one lost event.
    pub weighted_loss: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub rings: Vec<RingOutcome>,
    pub weighted_loss: f64,
    /// The most bytes the rings held at once, swaps included.
    pub peak_memory: u64,
}

/// Replays `trace` over rings with these settings (each one ring, `size` its start).
///
/// `stall`: how long each swap holds the daemon's loop (the kernel retiring the old ring:
/// 5-48 ms measured here, most near 12). Every ring goes undrained meanwhile: what
/// arrives in that time beyond a ring's size (the old ring's, for the one swapped) is
/// dropped, once per swap, in the tick after it.
pub fn run(
    rings: &[RingSettings],
    adaptive: &AdaptiveSettings,
    sizing: &SizingSettings,
    how: Sizing,
    trace: &[Tick],
    stall: Duration,
) -> Outcome {
    let mut adaptive = *adaptive;
    let budget = match how {
        Sizing::Fixed => {
            adaptive.enabled = false;
            None
        }
        Sizing::Adaptive(b) => b,
    };
    let mut policies: Vec<RingPolicy> = rings
        .iter()
        .map(|r| {
            let mut p = RingPolicy::new(r, &adaptive, sizing);
            p.resized(Duration::ZERO, r.size);
            p
        })
        .collect();
    let mut sizes: Vec<u64> = rings.iter().map(|r| r.size).collect();
    let mut out = Outcome {
        rings: rings
            .iter()
            .map(|r| RingOutcome {
                sizes: vec![(0.0, r.size)],
                ..RingOutcome::default()
            })
            .collect(),
        peak_memory: sizes.iter().sum(),
        ..Outcome::default()
    };
    let mut last = 0.0f64;
    // The last tick's swaps: (ring, its size before), in order.
    let mut swaps: Vec<(usize, u64)> = Vec::new();
    for tick in trace {
        let now = Duration::try_from_secs_f64(tick.t.max(0.0)).unwrap_or_default();
        let elapsed = Duration::try_from_secs_f64((tick.t - last).max(0.0)).unwrap_or_default();
        let mut obs = Vec::with_capacity(rings.len());
        for (i, r) in rings.iter().enumerate() {
            let load =
                tick.loads
                    .iter()
                    .filter(|(j, _)| *j == i)
                    .fold(Load::default(), |a, (_, l)| Load {
                        events: a.events.saturating_add(l.events),
                        peak: a.peak.max(l.peak),
                        bursts: a.bursts.max(l.bursts),
                        record: a.record.max(l.record),
                        dropped: match (a.dropped, l.dropped) {
                            (None, d) | (d, None) => d,
                            (Some(x), Some(y)) => Some(x.saturating_add(y)),
                        },
                    });
            let size = sizes[i];
            let over = load.peak.saturating_sub(size);
            let rec = if load.record > 0 {
                load.record
            } else {
                r.event_size.max(1)
            };
            let mut dropped = over.div_ceil(rec).saturating_mul(load.bursts.max(1));
            let secs = (tick.t - last).max(1e-3);
            let stalled = (load.events as f64 * stall.as_secs_f64() / secs) as u64;
            for &(j, before) in &swaps {
                let room = if j == i { before } else { size };
                dropped = dropped.saturating_add(stalled.saturating_sub(room / rec));
            }
            let dropped = dropped.min(load.events);
            let o = &mut out.rings[i];
            o.events = o.events.saturating_add(load.events);
            o.dropped = o.dropped.saturating_add(dropped);
            if let Some(d) = load.dropped {
                o.recorded = Some(o.recorded.unwrap_or(0).saturating_add(d));
            }
            obs.push(Observation {
                now,
                size,
                high_water: load.peak.min(size),
                produced: load.events,
                dropped,
                elapsed,
                record: load.record,
            });
        }
        last = tick.t;
        let plan = {
            let mut entries: Vec<Entry> = policies
                .iter_mut()
                .zip(&sizes)
                .zip(&obs)
                .map(|((policy, &size), o)| Entry {
                    size,
                    policy,
                    obs: Some(*o),
                })
                .collect();
            budget::tick(budget, &mut entries)
        };
        swaps.clear();
        let mut held: u64 = sizes.iter().sum();
        // A swap ends a little after the tick that decided it, as in the daemon: the
        // next tick's window starts before it (see `RingPolicy::resized`).
        let swapped = now + SWAP;
        let most = plan.run(
            budget,
            &mut held,
            |step| {
                swaps.push((step.index, step.from));
                sizes[step.index] = step.to;
                policies[step.index].resized(swapped, step.to);
                out.rings[step.index].sizes.push((tick.t, step.to));
                true
            },
            |_, _| {},
        );
        out.peak_memory = out.peak_memory.max(most);
    }
    for (o, r) in out.rings.iter_mut().zip(rings) {
        o.weighted_loss = o.dropped as f64 * budget::event_cost(r.priority, r.loss_weight);
    }
    out.weighted_loss = out.rings.iter().map(|o| o.weighted_loss).sum();
    out
}

/// Each ring's start size for an equal split of `budget`: the largest power of two of at
/// most budget / rings, within the ring's bounds (the static baseline a budget is
/// compared with).
pub fn equal_split(rings: &[RingSettings], budget: u64) -> Vec<u64> {
    let share = budget / rings.len().max(1) as u64;
    rings
        .iter()
        .map(|r| {
            let p = if share == 0 {
                0
            } else {
                1u64 << (63 - share.leading_zeros())
            };
            p.clamp(r.min, r.max)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::Family;
    use crate::sizing::policy::PolicyKind;

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;

    fn ring(family: Family, size: u64, priority: u32) -> RingSettings {
        RingSettings {
            family,
            size,
            min: 256 * KIB,
            max: 64 * MIB,
            rate: None,
            event_size: 128,
            shards: 1,
            priority,
            loss_weight: 1.0,
        }
    }

    fn adaptive() -> AdaptiveSettings {
        AdaptiveSettings {
            policy: PolicyKind::Dynamic,
            cooldown: Duration::from_secs(10),
            ..AdaptiveSettings::default()
        }
    }

    fn ticks(n: usize, loads: impl Fn(usize) -> Vec<(usize, Load)>) -> Vec<Tick> {
        (1..=n)
            .map(|k| Tick {
                t: k as f64,
                loads: loads(k),
            })
            .collect()
    }

    fn burst(peak: u64) -> Load {
        Load {
            events: peak / 128,
            peak,
            bursts: 1,
            record: 0,
            dropped: None,
        }
    }

    #[test]
    fn room_that_fits_one_ring_goes_to_the_costlier() {
        // Two rings of 1 MiB; both see a 3 MiB burst every tick. Both grow to 2 MiB at
        // once (that fits); then an 8 MiB budget has room for one of them at 4 MiB (with
        // its old 2 MiB ring during the swap), not two.
        let rings = [ring(Family::File, MIB, 3), ring(Family::Network, MIB, 4)];
        let trace = ticks(20, |_| vec![(0, burst(3 * MIB)), (1, burst(3 * MIB))]);
        let o = run(
            &rings,
            &adaptive(),
            &SizingSettings::default(),
            Sizing::Adaptive(Some(8 * MIB)),
            &trace,
            Duration::ZERO,
        );
        // network (priority 4: a lost event costs 1000, file's 100) gets the 4 MiB and
        // stops dropping; file keeps 2 MiB and drops every tick.
        let sizes = |i: usize| o.rings[i].sizes.iter().map(|s| s.1).collect::<Vec<_>>();
        assert_eq!(sizes(1), vec![MIB, 2 * MIB, 4 * MIB], "{o:?}");
        assert_eq!(sizes(0), vec![MIB, 2 * MIB], "{o:?}");
        assert_eq!(o.peak_memory, 8 * MIB);
        let per_tick_at = |size: u64| (3 * MIB - size) / 128;
        assert_eq!(o.rings[1].dropped, per_tick_at(MIB) + per_tick_at(2 * MIB));
        assert_eq!(
            o.rings[0].dropped,
            per_tick_at(MIB) + 19 * per_tick_at(2 * MIB)
        );
        assert_eq!(
            o.weighted_loss,
            o.rings[0].dropped as f64 * 100.0 + o.rings[1].dropped as f64 * 1000.0
        );
    }

    #[test]
    fn fixed_sizes_never_change_and_replaying_a_recorded_run_gives_its_drops() {
        let rings = [ring(Family::File, MIB, 3)];
        // A recorded tick that dropped 100 records at 1 MiB: peak = 1 MiB + 100 records.
        let rec = Load {
            events: 9000,
            peak: MIB + 100 * 128,
            bursts: 1,
            record: 0,
            dropped: Some(100),
        };
        let trace = ticks(5, |_| vec![(0, rec)]);
        let o = run(
            &rings,
            &adaptive(),
            &SizingSettings::default(),
            Sizing::Fixed,
            &trace,
            Duration::ZERO,
        );
        assert_eq!(o.rings[0].sizes, vec![(0.0, MIB)]);
        assert_eq!(o.rings[0].dropped, 500);
        assert_eq!(o.rings[0].recorded, Some(500));
        assert_eq!(o.rings[0].events, 45_000);
    }

    #[test]
    fn an_equal_split_is_a_power_of_two_within_bounds() {
        let rings = [
            ring(Family::File, MIB, 3),
            ring(Family::Network, MIB, 4),
            ring(Family::Syscall, MIB, 1),
        ];
        assert_eq!(equal_split(&rings, 4 * MIB), vec![MIB; 3]);
        assert_eq!(equal_split(&rings, 16 * MIB), vec![4 * MIB; 3]);
        assert_eq!(equal_split(&rings, 512 * KIB), vec![256 * KIB; 3]);
    }
}
