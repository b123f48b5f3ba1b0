//! Kernel → userspace latency: from the event's `ts_ns` (taken in the BPF program) to the
//! moment the loop consumes it. A log-linear histogram (4 steps per power of two: ±12 %)
//! with fixed memory, recorded per event without allocation.
const SUB: u32 = 4;
const BUCKETS: usize = 64 * SUB as usize;

/// The consume time is read once per this many events (and at the start of every drain
/// pass): a clock read per event was most of the loop's CPU time under load (perf:
/// ~90 % of the daemon's samples at 1.5 M events/s). Events later in a group look up to
/// STAMP_EVERY consume callbacks (~1-2 µs) younger than they are: far below a bucket.
pub const STAMP_EVERY: u32 = 16;

#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    /// Exact sum of every recorded value (ns), for the Prometheus histogram's `_sum`;
    /// u128 so that it cannot wrap (u64 ns would after ~200 days at 1 M events/s × 1 ms).
    sum: u128,
    max: u64,
    /// The cached consume time and how many more events may use it.
    now: u64,
    left: u32,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            sum: 0,
            max: 0,
            now: 0,
            left: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // v >= 4, so exp >= 2
    let frac = ((v >> (exp - 2)) & (SUB as u64 - 1)) as u32;
    (exp * SUB + frac) as usize
}

/// The largest value that falls in bucket `i` (what a percentile reports: an upper bound).
fn upper(i: usize) -> u64 {
    let i = i as u32;
    if i < SUB {
        return i as u64;
    }
    let (exp, frac) = (i / SUB, i % SUB);
    let base = 1u128 << exp;
    let step = base / SUB as u128;
    (base + step * (frac as u128 + 1) - 1).min(u64::MAX as u128) as u64
}

impl Histogram {
    /// A new drain pass: the next event reads the clock afresh.
    pub fn new_pass(&mut self) {
        self.left = 0;
    }

    /// Records the latency of an event stamped `ts` (ns), consumed now; `clock` gives
    /// now, and is called once per STAMP_EVERY events.
    pub fn record_since(&mut self, ts: u64, clock: impl FnOnce() -> u64) {
        if self.left == 0 {
            self.now = clock();
            self.left = STAMP_EVERY;
        }
        self.left -= 1;
        self.record(self.now.saturating_sub(ts));
    }

    pub fn record(&mut self, v: u64) {
        self.counts[bucket(v).min(BUCKETS - 1)] += 1;
        self.total += 1;
        self.sum += u128::from(v);
        self.max = self.max.max(v);
    }

    /// The value under which a share `q` (0..=1) of the recorded values fall (bucket
    /// upper bound, at most the maximum seen); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let want = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return upper(i).min(self.max);
            }
        }
        self.max
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The exact sum of the recorded values, ns.
    pub fn sum(&self) -> u128 {
        self.sum
    }

    /// For each of the ascending `bounds`, how many values fell in buckets whose upper
    /// bound is at most that bound: cumulative counts, as a Prometheus histogram's `le`
    /// buckets. A bucket straddling a bound counts only from the next bound on, so each
    /// figure is a lower bound of the values <= bound, short by at most the values within
    /// one log-linear bucket (25 %) below it.
    pub fn cumulative(&self, bounds: &[u64], out: &mut [u64]) {
        let mut seen = 0u64;
        let mut i = 0;
        for (b, o) in bounds.iter().zip(out.iter_mut()) {
            while i < BUCKETS && upper(i) <= *b {
                seen += self.counts[i];
                i += 1;
            }
            *o = seen;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_tight() {
        let mut last = 0;
        for v in [
            0u64,
            1,
            3,
            4,
            5,
            7,
            8,
            100,
            1000,
            999_999,
            1 << 40,
            u64::MAX,
        ] {
            let b = bucket(v);
            assert!(b >= last, "{v}");
            last = b;
            assert!(upper(b) >= v, "{v} above its bucket's bound {}", upper(b));
            // Within 25 % of the value (a quarter of a power of two).
            if (4..u64::MAX / 2).contains(&v) {
                assert!(upper(b) - v <= v / 4 + 1, "{v}: {}", upper(b));
            }
        }
    }

    #[test]
    fn the_clock_is_read_once_per_group_and_per_pass() {
        let mut h = Histogram::default();
        let reads = std::cell::Cell::new(0u64);
        let clock = || {
            reads.set(reads.get() + 1);
            1000 * reads.get()
        };
        for _ in 0..STAMP_EVERY * 2 {
            h.record_since(0, clock);
        }
        assert_eq!(reads.get(), 2);
        assert_eq!(h.max(), 2000);
        h.record_since(0, clock);
        assert_eq!(reads.get(), 3);
        h.new_pass();
        h.record_since(0, clock);
        assert_eq!(reads.get(), 4);
        // An event stamped after the cached time counts as 0, not as a huge latency.
        h.new_pass();
        h.record_since(u64::MAX, clock);
        assert_eq!(h.count(), STAMP_EVERY as u64 * 2 + 3);
        assert_eq!(h.quantile(0.0), 0);
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=1000u64 {
            h.record(v * 1000); // 1 µs .. 1 ms
        }
        assert_eq!(h.count(), 1000);
        let p50 = h.quantile(0.5);
        assert!((500_000..=640_000).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((990_000..=1_000_000).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!(h.max(), 1_000_000);
    }

    #[test]
    fn cumulative_counts_and_exact_sum() {
        let mut h = Histogram::default();
        for v in [0u64, 3, 10, 11, 100, 1000, 1_000_000, u64::MAX] {
            h.record(v);
        }
        assert_eq!(h.count(), 8);
        assert_eq!(
            h.sum(),
            u128::from(u64::MAX) + 1_001_124,
            "exact, and no overflow"
        );
        let bounds = [0, 3, 11, 100, 1000, 1_000_000, u64::MAX];
        let mut out = [0; 7];
        h.cumulative(&bounds, &mut out);
        // 10 and 11 share the bucket [10, 11]; 100 is in [96, 111], 1000 in [896, 1023],
        // 1e6 in [917504, 1048575]: those count from the next bound on.
        assert_eq!(out, [1, 2, 4, 4, 5, 6, 8]);
        for w in out.windows(2) {
            assert!(w[0] <= w[1]);
        }
        let mut empty = [7; 3];
        Histogram::default().cumulative(&[1, 2, 3], &mut empty);
        assert_eq!(empty, [0; 3]);
    }
}
