//! A JSON-lines writer that appends straight into a byte buffer: no intermediate Strings
//! per event. Byte strings from the kernel (paths, argv, comm) may hold any bytes; see
//! [`Line::bytes`] for how they stay lossless.
use std::fmt::Write as _;

/// One JSON object being written into `buf`.
pub struct Line<'a> {
    buf: &'a mut Vec<u8>,
    first: bool,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl<'a> Line<'a> {
    pub fn begin(buf: &'a mut Vec<u8>) -> Self {
        buf.push(b'{');
        Line { buf, first: true }
    }

    /// Closes the object and ends the line.
    pub fn end(self) {
        self.buf.extend_from_slice(b"}\n");
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    pub fn u64(&mut self, k: &str, v: u64) {
        self.key(k);
        let mut b = itoa_buf();
        self.buf.extend_from_slice(fmt_u64(&mut b, v));
    }

    pub fn i64(&mut self, k: &str, v: i64) {
        self.key(k);
        if v < 0 {
            self.buf.push(b'-');
        }
        let mut b = itoa_buf();
        self.buf
            .extend_from_slice(fmt_u64(&mut b, v.unsigned_abs()));
    }

    pub fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.buf
            .extend_from_slice(if v { b"true" } else { b"false" });
    }

    /// A string known to be valid UTF-8 (names chosen by the daemon, addresses, ...).
    pub fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        escape_str(self.buf, v);
    }

    /// A string formatted in place (e.g. an IP address).
    pub fn display(&mut self, k: &str, v: impl std::fmt::Display) {
        self.key(k);
        self.buf.push(b'"');
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = write!(s, "{v}");
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(b'"');
    }

    /// Bytes from the kernel. Valid UTF-8 is written as a JSON string (JSON escapes
    /// keep newlines, quotes and control characters exact). Anything else is written
    /// lossily (U+FFFD for invalid bytes) under `k`, and exactly, as lowercase hex of
    /// every byte, under `k_hex`.
    pub fn bytes(&mut self, k: &str, v: &[u8]) {
        self.key(k);
        match std::str::from_utf8(v) {
            Ok(s) => escape_str(self.buf, s),
            Err(_) => {
                escape_str(self.buf, &String::from_utf8_lossy(v));
                self.buf.push(b',');
                self.buf.push(b'"');
                self.buf.extend_from_slice(k.as_bytes());
                self.buf.extend_from_slice(b"_hex\":");
                hex_str(self.buf, v);
            }
        }
    }

    /// A list of byte strings (argv), with the same rule as [`Line::bytes`]: if any
    /// element is not UTF-8, `k_hex` holds every element in hex.
    pub fn bytes_list<'b>(&mut self, k: &str, items: impl Iterator<Item = &'b [u8]> + Clone) {
        self.key(k);
        self.buf.push(b'[');
        let mut all_utf8 = true;
        for (i, it) in items.clone().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            match std::str::from_utf8(it) {
                Ok(s) => escape_str(self.buf, s),
                Err(_) => {
                    all_utf8 = false;
                    escape_str(self.buf, &String::from_utf8_lossy(it));
                }
            }
        }
        self.buf.push(b']');
        if !all_utf8 {
            self.buf.push(b',');
            self.buf.push(b'"');
            self.buf.extend_from_slice(k.as_bytes());
            self.buf.extend_from_slice(b"_hex\":[");
            for (i, it) in items.enumerate() {
                if i > 0 {
                    self.buf.push(b',');
                }
                hex_str(self.buf, it);
            }
            self.buf.push(b']');
        }
    }

    /// A value written by `f` straight into the buffer (must be valid JSON).
    pub fn raw_with(&mut self, k: &str, f: impl FnOnce(&mut Vec<u8>)) {
        self.key(k);
        f(self.buf);
    }

    /// A nested object written by `f`.
    pub fn object(&mut self, k: &str, f: impl FnOnce(&mut Line)) {
        self.key(k);
        let mut inner = Line::begin(self.buf);
        f(&mut inner);
        inner.buf.push(b'}');
    }

    /// A list of unsigned numbers.
    pub fn u64_list(&mut self, k: &str, v: &[u64]) {
        self.key(k);
        self.buf.push(b'[');
        for (i, x) in v.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            let mut b = itoa_buf();
            self.buf.extend_from_slice(fmt_u64(&mut b, *x));
        }
        self.buf.push(b']');
    }
}

fn hex_str(buf: &mut Vec<u8>, v: &[u8]) {
    buf.push(b'"');
    for &b in v {
        buf.push(HEX[(b >> 4) as usize]);
        buf.push(HEX[(b & 15) as usize]);
    }
    buf.push(b'"');
}

/// Writes `s` as a JSON string literal.
pub fn escape_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => {
                buf.extend_from_slice(&bytes[start..i]);
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[(b >> 4) as usize]);
                buf.push(HEX[(b & 15) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(esc);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

fn itoa_buf() -> [u8; 20] {
    [0u8; 20]
}

fn fmt_u64(b: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = b.len();
    loop {
        i -= 1;
        b[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &b[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(f: impl FnOnce(&mut Line)) -> String {
        let mut buf = Vec::new();
        let mut l = Line::begin(&mut buf);
        f(&mut l);
        l.end();
        String::from_utf8(buf).expect("writer emits UTF-8")
    }

    #[test]
    fn numbers() {
        let s = line(|l| {
            l.u64("a", 0);
            l.u64("b", u64::MAX);
            l.i64("c", -2);
            l.i64("d", i64::MIN);
        });
        assert_eq!(
            s,
            "{\"a\":0,\"b\":18446744073709551615,\"c\":-2,\"d\":-9223372036854775808}\n"
        );
    }

    #[test]
    fn control_characters_and_quotes_are_escaped() {
        let s = line(|l| l.bytes("p", b"a\nb\"c\\d\x01\x7f\te"));
        assert_eq!(s, "{\"p\":\"a\\nb\\\"c\\\\d\\u0001\\u007f\\te\"}\n");
        let v: serde_json::Value = serde_json::from_str(&s).expect("valid JSON");
        assert_eq!(v["p"], "a\nb\"c\\d\x01\x7f\te");
    }

    #[test]
    fn invalid_utf8_keeps_every_byte_in_hex() {
        let s = line(|l| l.bytes("path", b"/tmp/\xff\xfe\n"));
        let v: serde_json::Value = serde_json::from_str(&s).expect("valid JSON");
        assert_eq!(v["path"], "/tmp/\u{fffd}\u{fffd}\n");
        assert_eq!(v["path_hex"], "2f746d702ffffe0a");
        assert_eq!(s.lines().count(), 1);
    }

    #[test]
    fn lists() {
        let items: [&[u8]; 2] = [b"ls", b"\xc3("];
        let s = line(|l| l.bytes_list("argv", items.iter().copied()));
        let v: serde_json::Value = serde_json::from_str(&s).expect("valid JSON");
        assert_eq!(v["argv"][0], "ls");
        assert_eq!(v["argv_hex"][1], "c328");
        let ok: [&[u8]; 1] = [b"x"];
        let s = line(|l| l.bytes_list("argv", ok.iter().copied()));
        assert_eq!(s, "{\"argv\":[\"x\"]}\n");
    }
}
