//! The sizing formula, size = record size × events/s × buffer time × safety factor, rounded
//! up to a power of two (spec §1.1, §1.5). Used by `ringwarden size`, by `rate` in the
//! config and by the predictive policy.
use std::time::Duration;

use crate::family::Family;
use crate::units::{fmt_approx, fmt_num, fmt_size, human};

pub mod budget;
pub mod latency;
pub mod policy;
pub mod simulate;

use policy::PolicyKind;

/// `BPF_RINGBUF_HDR_SZ`: the kernel puts this header before every record.
pub const RECORD_HEADER: u64 = 8;

/// Largest ring the kernel takes (the same limit as `--ring-size`).
pub const MAX_RING: u64 = 1 << 31;

/// Bytes: size × rate × time × safety, unrounded.
pub fn formula(event_size: u64, rate: f64, buffer_time_s: f64, safety: f64) -> f64 {
    event_size as f64 * rate * buffer_time_s * safety
}

/// The smallest power of two that holds `bytes` and is at least `page` (a power of two
/// of at least a page is a page multiple). Always rounds up: the spec's "≈ 6 MB" for
/// 6.24 MB would be a ring too small for its own formula.
pub fn round_size(bytes: f64, page: u64) -> u64 {
    let floor = page.max(1).next_power_of_two();
    if bytes.is_nan() || bytes <= floor as f64 {
        return floor;
    }
    if bytes >= (1u64 << 63) as f64 {
        return 1 << 63;
    }
    (bytes.ceil() as u64).next_power_of_two()
}

/// What one record of the family occupies in its ring: its largest record (the BPF side
/// reserves the full struct) plus the ring's record header, 8-byte aligned as the kernel
/// lays records out.
pub fn record_size(f: Family) -> u64 {
    (f.spec().record_size as u64 + RECORD_HEADER).next_multiple_of(8)
}

/// Whether `bytes` can be a ring: at least a page, at most 2 GiB, a power of two. The
/// error reads after the value: "is not a power of two; use 2MiB or 4MiB".
pub fn check_ring_size(bytes: u64, page: u64) -> Result<(), RingSizeError> {
    if bytes < page {
        return Err(RingSizeError::BelowPage { page });
    }
    if bytes > MAX_RING {
        return Err(RingSizeError::AboveMax);
    }
    if !bytes.is_power_of_two() {
        let up = bytes.next_power_of_two();
        return Err(RingSizeError::NotPowerOfTwo {
            below: up / 2,
            above: up,
        });
    }
    Ok(())
}

/// A size that cannot be a ring; the message reads after the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RingSizeError {
    #[error("is smaller than a page; use at least {}", human(*.page))]
    BelowPage { page: u64 },
    #[error("is larger than the kernel's 2GiB ring limit; use at most 2GiB")]
    AboveMax,
    #[error("is not a power of two; use {} or {}", human(*.below), human(*.above))]
    NotPowerOfTwo { below: u64, above: u64 },
}

/// `ringwarden size`: the result with its working, one line.
pub fn explain(event_size: u64, rate: f64, buffer_time_s: f64, safety: f64, page: u64) -> String {
    let bytes = formula(event_size, rate, buffer_time_s, safety);
    let size = round_size(bytes, page);
    let why = if bytes <= page as f64 {
        "one page, the smallest ring"
    } else {
        "power of two, page-aligned"
    };
    let mut s = format!(
        "{event_size} B × {}/s × {} s × {} = {} B ({}) -> {} ({why})",
        fmt_num(rate),
        fmt_num(buffer_time_s),
        fmt_num(safety),
        fmt_num(bytes.ceil()),
        fmt_approx(bytes),
        fmt_size(size),
    );
    if size > MAX_RING {
        s.push_str("; above the kernel's 2 GiB ring limit: lower the rate, time or safety");
    }
    s
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RingSettings {
    pub family: Family,
    /// Size at start (resolved from `size`, `rate` or the default; within [min, max]).
    pub size: u64,
    pub min: u64,
    pub max: u64,
    /// The expected events/s when the size came from the formula.
    pub rate: Option<f64>,
    /// Bytes one record takes in the ring (see `sizing::record_size`).
    pub event_size: u64,
    /// Rings for the family, one per group of CPUs (`size`, `min` and `max` are each
    /// shard's; `rate` is the family's, split evenly).
    pub shards: u32,
    /// Under a memory budget: a lost event of the family costs
    /// `loss_weight` × 10^(priority − 1) (see `budget::event_cost`).
    pub priority: u32,
    pub loss_weight: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptiveSettings {
    pub enabled: bool,
    pub policy: PolicyKind,
    pub target_utilization: f64,
    pub grow_above: f64,
    pub shrink_below: f64,
    pub adjustment_factor: f64,
    pub cooldown: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SizingSettings {
    pub buffer_time: Duration,
    pub safety_factor: f64,
    /// Most bytes all rings may hold at once, swaps included (`memory_budget`); none by
    /// default.
    pub memory_budget: Option<u64>,
}

impl Default for SizingSettings {
    /// Spec §1.2/§1.3: standard monitoring, moderate variability.
    fn default() -> Self {
        SizingSettings {
            buffer_time: Duration::from_secs(2),
            safety_factor: 3.0,
            memory_budget: None,
        }
    }
}

impl Default for AdaptiveSettings {
    /// Spec §3.2.
    fn default() -> Self {
        AdaptiveSettings {
            enabled: true,
            policy: PolicyKind::Dynamic,
            target_utilization: 0.7,
            grow_above: 0.9,
            shrink_below: 0.3,
            adjustment_factor: 1.5,
            cooldown: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::syscall;
    use crate::units::parse_bytes;
    use std::mem::size_of;

    const MIB: u64 = 1 << 20;
    const KIB: u64 = 1 << 10;

    fn sized(event: u64, rate: f64, t: f64, s: f64) -> u64 {
        round_size(formula(event, rate, t, s), 4096)
    }

    #[test]
    fn worked_examples_of_section_1_4() {
        // Example 1: 6 240 000 B. The spec's text says "≈ 6 MB (rounded to power of 2)",
        // which is no power of two; its §6.2 table and its §8.1 test say 8 MiB.
        assert_eq!(formula(104, 10_000.0, 2.0, 3.0), 6_240_000.0);
        assert_eq!(sized(104, 10_000.0, 2.0, 3.0), 8 * MIB);
        // Example 2: 633 600 B -> 1 MiB.
        assert_eq!(formula(1056, 100.0, 3.0, 2.0), 633_600.0);
        assert_eq!(sized(1056, 100.0, 3.0, 2.0), MIB);
        // Example 3: 5 760 000 B -> 8 MiB.
        assert_eq!(formula(72, 20_000.0, 1.0, 4.0), 5_760_000.0);
        assert_eq!(sized(72, 20_000.0, 1.0, 4.0), 8 * MIB);
    }

    #[test]
    fn rounding_table_of_section_1_5_and_test_of_8_1() {
        // §1.5 says "500 KB - 1 MB -> 1 MB", but 500 KB (500 000 or 512 000 B) fits in
        // 512 KiB, and the spec's own §8.1 test expects 524 288 for 500 000.
        assert_eq!(round_size(500_000.0, 4096), 512 * KIB);
        assert_eq!(round_size(600_000.0, 4096), MIB);
        assert_eq!(round_size(1_500_000.0, 4096), 2 * MIB);
        assert_eq!(round_size(3_000_000.0, 4096), 4 * MIB);
        assert_eq!(round_size(6_000_000.0, 4096), 8 * MIB);
        assert_eq!(round_size(10_000_000.0, 4096), 16 * MIB);
        // Exact powers of two stay.
        assert_eq!(round_size((8 * MIB) as f64, 4096), 8 * MIB);
        assert_eq!(round_size((8 * MIB) as f64 + 0.5, 4096), 16 * MIB);
    }

    #[test]
    fn per_family_tables_of_section_6() {
        // (record, rate, time, safety, expected)
        let rows: &[(u64, f64, f64, f64, u64)] = &[
            // §6.1 anomaly
            (1056, 100.0, 3.0, 2.0, MIB),
            (1056, 1_000.0, 5.0, 4.0, 32 * MIB),
            // Forensic: 2 112 000 B. The spec says "2 MB -> 2 MB", but that is more than
            // 2 MiB (2 097 152): rounding up gives 4 MiB.
            (1056, 100.0, 10.0, 2.0, 4 * MIB),
            // §6.2 syscall
            (104, 1_000.0, 2.0, 2.0, 512 * KIB),
            (104, 10_000.0, 2.0, 3.0, 8 * MIB),
            (104, 50_000.0, 1.0, 4.0, 32 * MIB),
            // §6.3 file
            (304, 5_000.0, 2.0, 2.0, 8 * MIB),
            (304, 50_000.0, 3.0, 3.0, 256 * MIB),
            (304, 20_000.0, 2.0, 2.0, 32 * MIB),
            // §6.4 network
            (72, 1_000.0, 1.0, 2.0, 256 * KIB),
            (72, 20_000.0, 1.0, 3.0, 8 * MIB),
            (72, 1_000_000.0, 0.5, 5.0, 256 * MIB),
            // §6.5 cgroup
            (304, 500.0, 3.0, 2.0, MIB),
            (304, 5_000.0, 2.0, 3.0, 16 * MIB),
            (304, 10_000.0, 1.0, 4.0, 16 * MIB),
        ];
        for &(b, r, t, s, want) in rows {
            assert_eq!(sized(b, r, t, s), want, "{b} B × {r}/s × {t} s × {s}");
        }
        // The spec's "Recommended Buffer" column in its event reference table (e.g. 2 MB for
        // syscall at 10 000/s) does not follow from its formula and is not tested.
    }

    #[test]
    fn rounding_edges() {
        assert_eq!(round_size(0.0, 4096), 4096);
        assert_eq!(round_size(1.0, 4096), 4096);
        assert_eq!(round_size(4097.0, 4096), 8192);
        assert_eq!(round_size(f64::NAN, 4096), 4096);
        assert_eq!(round_size(-5.0, 4096), 4096);
        assert_eq!(round_size(1e30, 4096), 1 << 63);
        assert_eq!(round_size(f64::INFINITY, 4096), 1 << 63);
        // A 64 KiB page (arm64, ppc64).
        assert_eq!(round_size(5000.0, 65536), 65536);
        for b in [1.0, 4095.0, 70_000.0, 6_240_000.0] {
            let s = round_size(b, 4096);
            assert!(s.is_power_of_two() && s.is_multiple_of(4096) && s as f64 >= b);
        }
    }

    #[test]
    fn record_sizes_include_the_header_and_are_aligned() {
        for &f in Family::ALL {
            let r = record_size(f);
            assert!(r.is_multiple_of(8) && r > 64 + RECORD_HEADER, "{f}: {r}");
        }
        assert_eq!(
            record_size(Family::Syscall),
            (size_of::<syscall::SyscallEvent>() as u64 + 8).next_multiple_of(8)
        );
    }

    #[test]
    fn byte_parsing_and_formatting() {
        assert_eq!(parse_bytes("104"), Ok(104));
        assert_eq!(parse_bytes("104B"), Ok(104));
        assert_eq!(parse_bytes("1KiB"), Ok(1024));
        assert_eq!(parse_bytes(" 8MiB "), Ok(8 * MIB));
        assert!(
            parse_bytes("8XB")
                .unwrap_err()
                .to_string()
                .contains("unknown unit")
        );
        assert!(
            parse_bytes("lots")
                .unwrap_err()
                .to_string()
                .contains("not a size")
        );
        assert!(parse_bytes("-1").is_err());
        assert!(
            parse_bytes("99999999999G")
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
        assert_eq!(fmt_size(8 * MIB), "8 MiB");
        assert_eq!(fmt_size(1000), "1000 B");
        assert_eq!(fmt_approx(6_240_000.0), "5.95 MiB");
        assert_eq!(fmt_approx(633_600.0), "619 KiB");
        assert_eq!(fmt_approx(21_120_000.0), "20.1 MiB");
        assert_eq!(fmt_approx(100.0), "100 B");
        assert_eq!(fmt_num(10_000.0), "10000");
        assert_eq!(fmt_num(0.5), "0.5");
    }

    #[test]
    fn explain_shows_the_working() {
        assert_eq!(
            explain(104, 10_000.0, 2.0, 3.0, 4096),
            "104 B × 10000/s × 2 s × 3 = 6240000 B (5.95 MiB) -> 8 MiB (power of two, page-aligned)"
        );
        assert!(
            explain(10, 1.0, 1.0, 1.0, 4096).ends_with("-> 4 KiB (one page, the smallest ring)")
        );
        assert!(explain(1024, 1e9, 10.0, 5.0, 4096).contains("2 GiB ring limit"));
    }
}
