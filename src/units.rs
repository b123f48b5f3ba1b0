//! Numbers, sizes and durations as people write them, and back: one place for every
//! parser and formatter the command line, the configuration, the logs, `status` and the
//! writers share. Depends on nothing else in the crate.
use std::time::Duration;

/// A size or duration that does not parse. The message names the text and the fix; the
/// caller puts it after the key or option it came from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{0:?} is not a size; write e.g. 64KiB, 8MiB or a number of bytes")]
    NotASize(String),
    #[error("{0:?}: unknown unit {1:?}; use B, KiB, MiB or GiB")]
    UnknownUnit(String, String),
    #[error("{0:?} is too large")]
    TooLarge(String),
    #[error("{0:?} is not a duration; write e.g. \"2s\", \"500ms\" or \"1m\"")]
    NotADuration(String),
}

/// 65536 -> "64KiB".
pub fn human(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (m, u) in UNITS {
        if bytes >= m && bytes.is_multiple_of(m) {
            return format!("{}{u}", bytes / m);
        }
    }
    format!("{bytes}B")
}

/// Parses a byte count: `104`, `104B`, `64KiB`, `8MiB`, `1G` (binary units; `KB` and `K`
/// mean KiB too, as in `--ring-size`).
pub fn parse_bytes(s: &str) -> Result<u64, ParseError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| ParseError::NotASize(s.to_string()))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "k" | "KiB" | "KB" | "kB" => 1 << 10,
        "M" | "MiB" | "MB" => 1 << 20,
        "G" | "GiB" | "GB" => 1 << 30,
        u => return Err(ParseError::UnknownUnit(s.to_string(), u.to_string())),
    };
    n.checked_mul(mult)
        .ok_or_else(|| ParseError::TooLarge(s.to_string()))
}

/// Exact, for powers of two and other round sizes: 8388608 -> "8 MiB", 1000 -> "1000 B".
pub fn fmt_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (m, u) in UNITS {
        if bytes >= m && bytes.is_multiple_of(m) {
            return format!("{} {u}", bytes / m);
        }
    }
    format!("{bytes} B")
}

/// Three significant digits: 6240000.0 -> "5.95 MiB".
pub fn fmt_approx(bytes: f64) -> String {
    const UNITS: [(f64, &str); 3] = [(1073741824.0, "GiB"), (1048576.0, "MiB"), (1024.0, "KiB")];
    for (m, u) in UNITS {
        if bytes >= m {
            let v = bytes / m;
            return if v >= 100.0 {
                format!("{v:.0} {u}")
            } else if v >= 10.0 {
                format!("{v:.1} {u}")
            } else {
                format!("{v:.2} {u}")
            };
        }
    }
    format!("{} B", bytes.ceil())
}

/// A number as a person writes it: 10000.0 -> "10000", 0.5 -> "0.5".
pub fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

/// "2s", "500ms", "1m", "1.5s", "1h", "7d" or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, ParseError> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || ParseError::NotADuration(s.to_string());
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "us" | "µs" => n / 1_000_000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

/// 60 s -> "60s", 0.5 s -> "500ms".
pub fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_nanos().is_multiple_of(1_000) {
        format!("{}us", d.as_micros())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// 312000 ns -> "312us", 1.5 ms -> "1.50ms".
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{}us", ns / 1_000),
        1_000_000..1_000_000_000 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

/// 90061000 ms -> "1d 1h 1m 1s".
pub fn fmt_uptime(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, s) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

/// 65 s -> "1m 5s".
pub fn fmt_hms(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, m, s) => format!("{h}h {m}m {s}s"),
    }
}

/// 41234.0 -> "41k", 950.0 -> "950", 2.5e6 -> "2.5M".
pub fn fmt_rate(r: f64) -> String {
    if r < 1000.0 {
        format!("{r:.0}")
    } else if r < 10_000.0 {
        format!("{:.1}k", r / 1000.0)
    } else if r < 1e6 {
        format!("{:.0}k", r / 1000.0)
    } else {
        format!("{:.1}M", r / 1e6)
    }
}

/// "00" to "99": two digits per division.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends the decimal digits of `v`, written in place in the buffer's spare capacity:
/// a variable-length copy from a stack array is a memmove call (the render path's top
/// cost in perf), and a fixed-size one stalls on store forwarding.
#[inline]
pub fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let n = v.checked_ilog10().unwrap_or(0) as usize + 1;
    buf.reserve(n);
    let len = buf.len();
    let out = &mut buf.spare_capacity_mut()[..n];
    let mut i = n;
    while v >= 100 {
        let p = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        out[i].write(PAIRS[p]);
        out[i + 1].write(PAIRS[p + 1]);
    }
    if v >= 10 {
        let p = v as usize * 2;
        out[0].write(PAIRS[p]);
        out[1].write(PAIRS[p + 1]);
    } else {
        out[0].write(b'0' + v as u8);
    }
    // SAFETY: the n bytes after `len` are within capacity (reserved) and were all
    // written above: the loop fills out[i..n] two at a time down to i <= 2, the last
    // step fills out[..i] (i = 2: two digits; i = 1: one).
    unsafe { buf.set_len(len + n) };
}

#[inline]
pub fn push_i64(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    push_u64(buf, v.unsigned_abs());
}

/// The last `out.len()` decimal digits of `v`, zero-padded (fractions of a second).
pub fn fixed_digits(out: &mut [u8], mut v: u64) {
    let mut i = out.len();
    while i >= 2 {
        let p = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        out[i..i + 2].copy_from_slice(&PAIRS[p..p + 2]);
    }
    if i == 1 {
        out[0] = b'0' + (v % 10) as u8;
    }
}
