//! One memory budget for every ring (`[sizing] memory_budget`): pure logic, run by the
//! daemon every tick and by `ringwarden sizing simulate` on a trace, so that what the
//! simulator shows is what the daemon does.
//!
//! Each ring's own policy says what it wants. When the wants fit, they are granted. When
//! they do not, memory goes where the expected weighted loss falls most: every ring starts
//! at its `min`, and a ring's size is doubled, one doubling at a time, for the ring whose
//! doubling removes the most expected lost events × cost per byte. What is left goes back
//! toward the wants, the costliest ring first. A ring that is dropping is not shrunk to
//! give memory to one that is not.
//!
//! The budget is a ceiling of ring memory at every moment, swaps included: a swap holds
//! the old and the new ring side by side, so a plan keeps room for that (see [`fits`]).
use crate::sizing::RingSettings;
use crate::sizing::policy::{Decision, Observation, RingPolicy};
use crate::units::{fmt_approx, fmt_size};

/// One step of priority multiplies what a lost event costs by this much.
pub const PRIORITY_STEP: f64 = 10.0;

/// Memory a ring holds counts this much more than memory it would gain: it moves to
/// another ring only for twice the saving per byte. Without it, two dropping rings of
/// near-equal savings traded memory every tick (measured: syscall 4 -> 2 -> 4 MiB and
/// file 1 -> 2 -> 1 MiB within 3 s), and every swap costs the loop ~10 ms.
pub const KEEP: f64 = 2.0;

/// What one lost event of a family costs in the policy's sums: `loss_weight` ×
/// 10^(priority − 1). Priority is the coarse order, loss_weight tunes within it.
pub fn event_cost(priority: u32, loss_weight: f64) -> f64 {
    loss_weight * PRIORITY_STEP.powi(priority.min(64) as i32 - 1)
}

/// A ring's claim on the budget this tick.
#[derive(Clone, Debug)]
pub struct Claim<'a> {
    pub size: u64,
    pub min: u64,
    pub max: u64,
    /// What the ring's own policy wants now (its size when it wants no change).
    pub want: u64,
    /// Why it wants it (the policy's reason), when it wants a change.
    pub why: Option<&'a str>,
    /// What one lost event costs ([`event_cost`]).
    pub cost: f64,
    /// Bytes one record takes in the ring.
    pub record: u64,
    /// The most bytes that waited in each recent tick, or would have in a ring large
    /// enough (a tick that dropped counts its size plus the dropped records).
    pub peaks: &'a [u64],
    /// Whether it dropped events in its latest tick.
    pub dropping: bool,
}

impl Claim<'static> {
    /// The claim of a ring not made yet: nothing held, its configured size wanted.
    pub fn unmade(r: &RingSettings) -> Claim<'static> {
        Claim {
            size: 0,
            min: r.min,
            max: r.max,
            want: r.size,
            why: None,
            cost: event_cost(r.priority, r.loss_weight),
            record: r.event_size,
            peaks: &[],
            dropping: false,
        }
    }
}

impl Claim<'_> {
    /// Events a ring of `size` bytes would be expected to lose per tick: the mean, over the
    /// recent ticks, of what did not fit.
    pub fn expected_loss(&self, size: u64) -> f64 {
        if self.peaks.is_empty() {
            return 0.0;
        }
        let rec = self.record.max(1) as f64;
        let over: f64 = self
            .peaks
            .iter()
            .map(|&p| p.saturating_sub(size) as f64 / rec)
            .sum();
        over / self.peaks.len() as f64
    }

    fn peak(&self) -> u64 {
        self.peaks.iter().copied().max().unwrap_or(0)
    }
}

/// One resize of the plan: ring `index` from `from` to `to` bytes, with the reason.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub index: usize,
    pub from: u64,
    pub to: u64,
    pub reason: String,
}

/// A tick's plan: the resizes, shrinks first (smallest new ring first, so each makes
/// room for the next), then growths (costliest ring first); and the rings whose own
/// policy wanted more than the budget gives (index, want, granted).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub held: Vec<(usize, u64, u64)>,
}

impl Plan {
    /// Runs the steps in order: `resize` does one and says whether it worked. Under a
    /// budget a step is skipped, and `skipped` told, when old and new ring would not fit
    /// beside the rest (`held` bytes now, kept up to date): after a step that failed, or
    /// from sizes the plan did not make (a budget lowered, a ring switched on).
    /// Returns the most bytes held at any moment.
    pub fn run(
        &self,
        budget: Option<u64>,
        held: &mut u64,
        mut resize: impl FnMut(&Step) -> bool,
        mut skipped: impl FnMut(&Step, u64),
    ) -> u64 {
        let mut most = *held;
        for step in &self.steps {
            let during = held.saturating_add(step.to);
            if budget.is_some_and(|b| during > b) {
                skipped(step, *held);
                continue;
            }
            if resize(step) {
                most = most.max(during);
                *held = held.saturating_sub(step.from).saturating_add(step.to);
            }
        }
        most
    }
}

/// Whether `sizes` can be reached from the claims' current sizes within `budget` and
/// left again later, swaps included. Beside the total it keeps room for the larger of
/// - the largest old ring among those that grow: growths run after the shrinks, each
///   with its old and new ring held at once;
/// - half the largest ring above its `min`: any ring can be halved (or cut further) next
///   time without passing the budget, so no plan can lock the sizes in place.
pub fn fits(budget: u64, claims: &[Claim], sizes: &[u64]) -> bool {
    let total: u64 = sizes.iter().sum();
    let grow = claims
        .iter()
        .zip(sizes)
        .filter(|(c, s)| **s > c.size)
        .map(|(c, _)| c.size)
        .max()
        .unwrap_or(0);
    let halve = claims
        .iter()
        .zip(sizes)
        .filter(|(c, s)| **s > c.min)
        .map(|(_, s)| s / 2)
        .max()
        .unwrap_or(0);
    total.saturating_add(grow.max(halve)) <= budget
}

/// One ring (shard) in a [`tick`].
pub struct Entry<'p> {
    /// Its size now.
    pub size: u64,
    pub policy: &'p mut RingPolicy,
    /// This tick's observation, if the ring was observed.
    pub obs: Option<Observation>,
}

/// A tick of sizing, the daemon's and the simulator's: each observed ring's policy sees
/// its observation, then [`allocate`] turns what they want into the plan. The caller
/// runs the steps in order and tells each policy (`RingPolicy::resized`).
pub fn tick(budget: Option<u64>, entries: &mut [Entry]) -> Plan {
    let decisions: Vec<Option<Decision>> = entries
        .iter_mut()
        .map(|e| e.obs.as_ref().and_then(|o| e.policy.observe(o)))
        .collect();
    let claims: Vec<Claim> = entries
        .iter()
        .zip(&decisions)
        .map(|(e, d)| e.policy.claim(e.size, d.as_ref()))
        .collect();
    allocate(budget, &claims)
}

/// The plan for this tick. With no budget every want is granted as it is.
pub fn allocate(budget: Option<u64>, claims: &[Claim]) -> Plan {
    let wants: Vec<u64> = claims.iter().map(|c| c.want.clamp(c.min, c.max)).collect();
    let Some(budget) = budget else {
        return plan(None, claims, &wants);
    };
    // A dropping ring that wants to grow is given, when it fits, what its latest tick
    // needed at once rather than one step: each swap stalls the loop (~10 ms for the
    // kernel to retire the old ring) while every ring fills, so one swap beats two.
    let covering: Vec<u64> = claims
        .iter()
        .zip(&wants)
        .map(|(c, &w)| match c.peaks.last() {
            Some(&p) if c.dropping && w > c.size => {
                w.max(crate::sizing::round_size(p as f64, c.min)).min(c.max)
            }
            _ => w,
        })
        .collect();
    if covering != wants && fits(budget, claims, &covering) {
        return plan(Some(budget), claims, &covering);
    }
    if fits(budget, claims, &wants) {
        return plan(Some(budget), claims, &wants);
    }
    let mins: Vec<u64> = claims.iter().map(|c| c.min).collect();
    let mut sizes = share(budget, claims, &mins);
    // A dropping ring gives nothing to a ring that is not dropping: then every dropping
    // ring keeps at least what it has, and the rest is shared again.
    let robbed = claims
        .iter()
        .zip(&sizes)
        .any(|(c, &s)| c.dropping && s < c.size);
    let fed = claims
        .iter()
        .zip(&sizes)
        .any(|(c, &s)| !c.dropping && s > c.size);
    if robbed && fed {
        let floors: Vec<u64> = claims
            .iter()
            .map(|c| if c.dropping { c.size.max(c.min) } else { c.min })
            .collect();
        sizes = if fits(budget, claims, &floors) {
            share(budget, claims, &floors)
        } else {
            // No room to keep the dropping rings as they are: nothing moves.
            claims.iter().map(|c| c.size).collect()
        };
    }
    plan(Some(budget), claims, &sizes)
}

/// Start sizes for rings not made yet (claims of size 0): from each `min` toward what
/// was configured (`want`), the costliest ring first, leaving room to halve any of them.
pub fn start_sizes(budget: u64, claims: &[Claim]) -> Vec<u64> {
    let mins: Vec<u64> = claims.iter().map(|c| c.min).collect();
    share(budget, claims, &mins)
}

/// Sizes from `floors` up: doublings by expected weighted loss saved per byte, then
/// toward the wants, the costliest ring first; every step kept only if it [`fits`].
fn share(budget: u64, claims: &[Claim], floors: &[u64]) -> Vec<u64> {
    let mut sizes = floors.to_vec();
    if !fits(budget, claims, &sizes) {
        return sizes;
    }
    loop {
        let mut best: Option<(usize, f64)> = None;
        for (i, c) in claims.iter().enumerate() {
            let Some(next) = doubled(sizes[i], c.max) else {
                continue;
            };
            let saved = c.cost * (c.expected_loss(sizes[i]) - c.expected_loss(next));
            if saved <= 0.0 || !fits_with(budget, claims, &sizes, i, next) {
                continue;
            }
            let mut score = saved / (next - sizes[i]) as f64;
            if next <= c.size {
                score *= KEEP;
            }
            // Ties go to the costlier ring, then to the earlier one.
            let better = match best {
                None => true,
                Some((b, s)) => score > s || (score == s && c.cost > claims[b].cost),
            };
            if better {
                best = Some((i, score));
            }
        }
        let Some((i, _)) = best else { break };
        sizes[i] *= 2;
    }
    let mut order: Vec<usize> = (0..claims.len()).collect();
    // Unstable sorts with the index as the last key: the same order, and no stable sort's
    // code in the binary (~15 KB).
    order.sort_unstable_by(|&a, &b| claims[b].cost.total_cmp(&claims[a].cost).then(a.cmp(&b)));
    for i in order {
        let c = &claims[i];
        while let Some(next) = doubled(sizes[i], c.max) {
            if next > c.want || !fits_with(budget, claims, &sizes, i, next) {
                break;
            }
            sizes[i] = next;
        }
    }
    sizes
}

fn doubled(size: u64, max: u64) -> Option<u64> {
    size.checked_mul(2).filter(|&n| n <= max)
}

fn fits_with(budget: u64, claims: &[Claim], sizes: &[u64], i: usize, size: u64) -> bool {
    let mut s = sizes.to_vec();
    s[i] = size;
    fits(budget, claims, &s)
}

/// The steps from the claims' sizes to `sizes`, ordered, each with its reason.
fn plan(budget: Option<u64>, claims: &[Claim], sizes: &[u64]) -> Plan {
    let total: u64 = sizes.iter().sum();
    let mut steps = Vec::new();
    let mut held = Vec::new();
    for (i, (c, &to)) in claims.iter().zip(sizes).enumerate() {
        let want = c.want.clamp(c.min, c.max);
        if to == c.size {
            if want != c.size {
                held.push((i, want, to));
            }
            continue;
        }
        let reason = match (budget, c.why) {
            // The ring's own policy's step, granted as it asked.
            (None, Some(why)) => why.to_string(),
            (Some(_), Some(why)) if to == want => why.to_string(),
            (None, None) => "configuration".to_string(),
            (Some(b), _) => budget_reason(b, total, c, to),
        };
        steps.push(Step {
            index: i,
            from: c.size,
            to,
            reason,
        });
    }
    steps.sort_unstable_by(|a, b| {
        let grow = |s: &Step| s.to > s.from;
        grow(a)
            .cmp(&grow(b))
            .then_with(|| {
                if grow(a) {
                    claims[b.index].cost.total_cmp(&claims[a.index].cost)
                } else {
                    a.to.cmp(&b.to)
                }
            })
            .then(a.index.cmp(&b.index))
    });
    Plan { steps, held }
}

/// "budget 4 MiB (3.5 MiB planned): expected loss 3.1k -> 0 events/tick × cost 100,
/// peak 1.70 MiB, dropping".
fn budget_reason(budget: u64, total: u64, c: &Claim, to: u64) -> String {
    let mut s = format!(
        "budget {} ({} planned): expected loss {} -> {} events/tick × cost {}, peak {}",
        fmt_size(budget),
        fmt_approx(total as f64),
        round(c.expected_loss(c.size)),
        round(c.expected_loss(to)),
        round(c.cost),
        fmt_approx(c.peak() as f64),
    );
    if c.dropping {
        s.push_str(", dropping");
    }
    s
}

fn round(x: f64) -> String {
    crate::units::fmt_rate(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;

    fn claim(size: u64, min: u64, cost: f64, peaks: &[u64]) -> Claim<'_> {
        Claim {
            size,
            min,
            max: 64 * MIB,
            want: size,
            why: None,
            cost,
            record: 100,
            peaks,
            dropping: false,
        }
    }

    fn sizes_after(claims: &[Claim], plan: &Plan) -> Vec<u64> {
        let mut s: Vec<u64> = claims.iter().map(|c| c.size).collect();
        for st in &plan.steps {
            s[st.index] = st.to;
        }
        s
    }

    /// Runs the plan's steps in order and returns the most memory held at any moment.
    fn most_held(claims: &[Claim], plan: &Plan) -> u64 {
        let mut s: Vec<u64> = claims.iter().map(|c| c.size).collect();
        let mut most = s.iter().sum::<u64>();
        for st in &plan.steps {
            most = most.max(s.iter().sum::<u64>() + st.to);
            s[st.index] = st.to;
        }
        most
    }

    #[test]
    fn cost_is_weight_times_ten_per_priority_step() {
        assert_eq!(event_cost(1, 1.0), 1.0);
        assert_eq!(event_cost(3, 2.0), 200.0);
        assert_eq!(event_cost(6, 1.0), 100_000.0);
    }

    #[test]
    fn wants_that_fit_are_granted_with_their_own_reason() {
        let mut a = claim(MIB, 256 * KIB, 100.0, &[]);
        a.want = 2 * MIB;
        a.why = Some("high-water 95%, 0 dropped, 10k ev/s");
        let b = claim(MIB, 256 * KIB, 1000.0, &[]);
        let claims = [a, b];
        let p = allocate(Some(8 * MIB), &claims);
        assert_eq!(
            p.steps,
            vec![Step {
                index: 0,
                from: MIB,
                to: 2 * MIB,
                reason: "high-water 95%, 0 dropped, 10k ev/s".into()
            }]
        );
        assert!(p.held.is_empty());
        // No budget: the same.
        assert_eq!(allocate(None, &claims).steps, p.steps);
    }

    #[test]
    fn a_growth_needs_room_for_old_and_new_ring_together() {
        // 1 MiB + 1 MiB held; growing the first to 2 MiB means 4 MiB during the swap.
        let peaks = [3 * MIB];
        let mut a = claim(MIB, MIB, 100.0, &peaks);
        a.want = 2 * MIB;
        a.dropping = true;
        let b = claim(MIB, MIB, 1.0, &[]);
        let p = allocate(Some(4 * MIB - 1), &[a.clone(), b.clone()]);
        assert!(p.steps.is_empty(), "{p:?}");
        assert_eq!(p.held, vec![(0, 2 * MIB, MIB)]);
        let claims = [a, b];
        let p = allocate(Some(4 * MIB), &claims);
        assert_eq!(sizes_after(&claims, &p), vec![2 * MIB, MIB]);
        assert_eq!(most_held(&claims, &p), 4 * MIB);
    }

    #[test]
    fn memory_goes_where_the_weighted_loss_falls_most_never_below_min() {
        // A file flood (peaks of 3 MiB) and idle rings: the idle ones give up memory down
        // to what their own peaks need, never below their min.
        let flood = [3 * MIB, 3 * MIB];
        let little = [40 * KIB];
        let mut file = claim(MIB, MIB, 100.0, &flood);
        file.want = 2 * MIB;
        file.dropping = true;
        let claims = [
            claim(256 * KIB, 64 * KIB, 100_000.0, &little),
            claim(2 * MIB, 512 * KIB, 1.0, &[]),
            file,
            claim(512 * KIB, 256 * KIB, 10_000.0, &little),
        ];
        let p = allocate(Some(5 * MIB), &claims);
        let after = sizes_after(&claims, &p);
        // file at 4 MiB would hold 4.8 MiB with the others at min, plus 2 MiB of room to
        // halve it later: 2 MiB is the most. What is left goes back to the costliest
        // rings' wants: syscall, the cheapest, keeps 1 MiB of its 2.
        assert_eq!(after, vec![256 * KIB, MIB, 2 * MIB, 512 * KIB]);
        assert!(most_held(&claims, &p) <= 5 * MIB);
        let grow = p.steps.iter().find(|s| s.index == 2).expect("file grows");
        assert_eq!(
            grow.reason,
            "budget 5 MiB (3.75 MiB planned): expected loss 21k -> 10k events/tick × cost 100, \
             peak 3.00 MiB, dropping"
        );
        // Shrinks come first.
        assert!(p.steps[0].to < p.steps[0].from);
    }

    #[test]
    fn a_dropping_ring_feeds_no_ring_that_is_not_dropping() {
        // The costly ring is not dropping (its peaks are old): it may not take from the
        // cheap ring that is.
        let old = [2 * MIB];
        let now = [3 * MIB];
        let mut costly = claim(512 * KIB, 256 * KIB, 10_000.0, &old);
        costly.want = MIB;
        let mut cheap = claim(2 * MIB, 512 * KIB, 1.0, &now);
        cheap.dropping = true;
        cheap.want = 4 * MIB;
        let claims = [costly, cheap];
        let p = allocate(Some(4 * MIB), &claims);
        // Free memory only: the dropping ring keeps its 2 MiB.
        assert_eq!(sizes_after(&claims, &p), vec![MIB, 2 * MIB]);
        // When both drop, the costlier takes from the cheaper.
        let mut claims = claims;
        claims[0].dropping = true;
        let p = allocate(Some(4 * MIB), &claims);
        assert_eq!(sizes_after(&claims, &p), vec![2 * MIB, MIB]);
        assert!(most_held(&claims, &p) <= 4 * MIB);
    }

    #[test]
    fn a_burst_that_fits_only_in_one_ring_goes_to_the_costlier() {
        // Both see a 2 MiB burst; the budget has room for one ring of 2 MiB (with its old
        // 1 MiB one during the swap), not two.
        let burst = [2 * MIB];
        let mut net = claim(MIB, 512 * KIB, 1000.0, &burst);
        let mut file = claim(MIB, 512 * KIB, 100.0, &burst);
        for c in [&mut net, &mut file] {
            c.want = 2 * MIB;
            c.dropping = true;
        }
        let claims = [file, net];
        let p = allocate(Some(4 * MIB + 512 * KIB), &claims);
        assert_eq!(sizes_after(&claims, &p), vec![MIB, 2 * MIB]);
        assert!(most_held(&claims, &p) <= 4 * MIB + 512 * KIB);
    }

    #[test]
    fn expected_loss_is_the_mean_overflow_in_events() {
        let peaks = [1000, 3000, 0];
        let c = claim(0, 0, 1.0, &peaks);
        assert_eq!(c.expected_loss(2000), 1000.0 / 100.0 / 3.0);
        assert_eq!(c.expected_loss(4000), 0.0);
        assert_eq!(claim(0, 0, 1.0, &[]).expected_loss(0), 0.0);
    }
}
