//! Kernel timestamps (CLOCK_BOOTTIME ns) to RFC 3339 UTC wall-clock time.
use std::cell::Cell;

use nix::time::{ClockId, clock_gettime};

/// Offset from boot time to wall time, refreshed each stats tick so clock steps
/// (NTP, settimeofday) reach the output within one tick.
#[derive(Clone, Debug, Default)]
pub struct WallClock {
    boot_to_real_ns: i128,
    /// The second last written and its `YYYY-MM-DDTHH:MM:SS.` text: events come in
    /// runs within one second, and formatting the date was a third of a record's
    /// render time.
    cached: Cell<Option<(i64, [u8; 20])>>,
}

fn ns(id: ClockId) -> i128 {
    match clock_gettime(id) {
        Ok(t) => t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128,
        Err(_) => 0,
    }
}

impl WallClock {
    pub fn now() -> Self {
        let real = ns(ClockId::CLOCK_REALTIME);
        let boot = ns(ClockId::CLOCK_BOOTTIME);
        WallClock {
            boot_to_real_ns: real - boot,
            cached: Cell::new(None),
        }
    }

    /// Wall-clock ns since the epoch for a boot-time ns.
    pub fn wall_ns(&self, boot_ns: u64) -> i128 {
        boot_ns as i128 + self.boot_to_real_ns
    }

    /// Appends the wall-clock time of a boot-time ns as `write_rfc3339` does.
    pub fn write_rfc3339(&self, buf: &mut Vec<u8>, boot_ns: u64) {
        let epoch_ns = self.wall_ns(boot_ns);
        // i64 ns since the epoch last until 2262; outside that, the general path.
        let Ok(epoch_ns) = i64::try_from(epoch_ns) else {
            return write_rfc3339(buf, epoch_ns);
        };
        let secs = epoch_ns.div_euclid(1_000_000_000);
        let nanos = epoch_ns.rem_euclid(1_000_000_000) as u64;
        let prefix = match self.cached.get() {
            Some((s, p)) if s == secs => p,
            _ => {
                let start = buf.len();
                write_rfc3339(buf, i128::from(epoch_ns));
                let mut p = [0u8; 20];
                p.copy_from_slice(&buf[start..start + 20]);
                self.cached.set(Some((secs, p)));
                return;
            }
        };
        buf.extend_from_slice(&prefix);
        push_num(buf, nanos, 9);
        buf.push(b'Z');
    }
}

/// Now on CLOCK_BOOTTIME, the clock the BPF programs stamp events with (vDSO: cheap).
pub fn boot_ns() -> u64 {
    ns(ClockId::CLOCK_BOOTTIME).max(0) as u64
}

/// Appends `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` for ns since the Unix epoch.
pub fn write_rfc3339(buf: &mut Vec<u8>, epoch_ns: i128) {
    let secs = epoch_ns.div_euclid(1_000_000_000) as i64;
    let nanos = epoch_ns.rem_euclid(1_000_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, (sod / 60) % 60, sod % 60);
    push_num(buf, y as u64, 4);
    buf.push(b'-');
    push_num(buf, m as u64, 2);
    buf.push(b'-');
    push_num(buf, d as u64, 2);
    buf.push(b'T');
    push_num(buf, hh as u64, 2);
    buf.push(b':');
    push_num(buf, mm as u64, 2);
    buf.push(b':');
    push_num(buf, ss as u64, 2);
    buf.push(b'.');
    push_num(buf, nanos.into(), 9);
    buf.push(b'Z');
}

#[inline]
fn push_num(buf: &mut Vec<u8>, v: u64, width: usize) {
    let mut d = [0u8; 9];
    crate::units::fixed_digits(&mut d[..width], v);
    buf.extend_from_slice(&d[..width]);
}

/// `YYYYMMDDTHHMMSSZ` for whole seconds since the Unix epoch: names that sort by time
/// (the archive's rotated files).
pub fn compact_utc(epoch_secs: i64) -> String {
    let (y, m, d) = civil_from_days(epoch_secs.div_euclid(86_400));
    let sod = epoch_secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Howard Hinnant's days-from-civil inverse: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(ns: i128) -> String {
        let mut b = Vec::new();
        write_rfc3339(&mut b, ns);
        String::from_utf8(b).expect("ascii")
    }

    #[test]
    fn the_cached_second_gives_the_same_text() {
        let c = WallClock::default();
        for ns in [
            0u64,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            1_795_435_530_123_456_789,
            1_795_435_530_999_999_999,
            1_795_435_531_000_000_000,
            1_795_435_530_000_000_007,
        ] {
            let mut b = Vec::new();
            c.write_rfc3339(&mut b, ns);
            assert_eq!(
                String::from_utf8(b).expect("ascii"),
                fmt(ns as i128),
                "{ns}"
            );
        }
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(fmt(0), "1970-01-01T00:00:00.000000000Z");
        // 2000-02-29 (a leap day) 12:34:56.000000789
        assert_eq!(
            fmt(951_827_696_000_000_789),
            "2000-02-29T12:34:56.000000789Z"
        );
        // 2026-11-23T12:05:30Z
        assert_eq!(
            fmt(1_795_435_530_000_000_000),
            "2026-11-23T12:05:30.000000000Z"
        );
    }
}
