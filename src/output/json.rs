//! A JSON-lines writer that appends straight into a byte buffer: no intermediate Strings
//! per event. Byte strings from the kernel (paths, argv, comm) may hold any bytes; see
//! [`Line::bytes`] for how they stay lossless.
use std::fmt::Write as _;

use crate::context::Context;
use crate::family::record::{
    Ancestor, DecodeError, Fields, Header, RingOf, all_or_nothing, view, walk,
};
use crate::sys::clock::WallClock;
use crate::units::{push_i64, push_u64};

// Inlined into each family's walk: the JSON path must cost what it did before the trait.
impl Fields for Line<'_> {
    #[inline(always)]
    fn u64(&mut self, k: &str, v: u64) {
        Line::u64(self, k, v)
    }
    #[inline(always)]
    fn i64(&mut self, k: &str, v: i64) {
        Line::i64(self, k, v)
    }
    #[inline(always)]
    fn bool(&mut self, k: &str, v: bool) {
        Line::bool(self, k, v)
    }
    #[inline(always)]
    fn str(&mut self, k: &str, v: &str) {
        Line::str(self, k, v)
    }
    #[inline(always)]
    fn display(&mut self, k: &str, v: impl std::fmt::Display) {
        Line::display(self, k, v)
    }
    #[inline(always)]
    fn bytes(&mut self, k: &str, v: &[u8]) {
        Line::bytes(self, k, v)
    }
    #[inline(always)]
    fn bytes_list<'b>(&mut self, k: &str, items: impl Iterator<Item = &'b [u8]> + Clone) {
        Line::bytes_list(self, k, items)
    }
    #[inline(always)]
    fn u64_list(&mut self, k: &str, v: &[u64]) {
        Line::u64_list(self, k, v)
    }
    #[inline(always)]
    fn ascii_with(&mut self, k: &str, f: impl FnOnce(&mut Vec<u8>)) {
        self.raw_with(k, |b| {
            b.push(b'"');
            f(b);
            b.push(b'"');
        })
    }
    fn ancestors(&mut self, k: &str, list: &[Ancestor<'_>]) {
        self.raw_with(k, |b| ancestors_array(b, list))
    }
    const FORMAT: u64 = 1;
    fn continuing(buf: &mut Vec<u8>) -> impl Fields + '_ {
        Line { buf, first: false }
    }
    #[inline(always)]
    fn splice(&mut self, fields: &[u8]) {
        if !fields.is_empty() {
            self.buf.extend_from_slice(fields);
            self.first = false;
        }
    }
}

/// Renders one ring record as one JSON line appended to `buf`.
pub fn render(
    ring: &str,
    clock: &WallClock,
    data: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    render_with(ring.into(), clock, data, None, buf)
}

/// [`render`], with the event's context from `ctx` when given.
pub fn render_with(
    ring: RingOf<'_>,
    clock: &WallClock,
    data: &[u8],
    ctx: Option<&mut Context>,
    buf: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let h: &Header = view(data, 0)?;
    all_or_nothing(buf, |buf| {
        let mut line = Line::begin(buf);
        walk(ring, clock, h, data, ctx, &mut line)?;
        line.end();
        Ok(())
    })
}

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

    // Inlined: keys are literals, so the copies have constant lengths and need no
    // memmove call (perf: key and memmove were ~40 % of a record's render time).
    #[inline(always)]
    fn key(&mut self, k: &str) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    #[inline(always)]
    pub fn u64(&mut self, k: &str, v: u64) {
        self.key(k);
        push_u64(self.buf, v);
    }

    #[inline(always)]
    pub fn i64(&mut self, k: &str, v: i64) {
        self.key(k);
        push_i64(self.buf, v);
    }

    pub fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.buf
            .extend_from_slice(if v { b"true" } else { b"false" });
    }

    /// A string known to be valid UTF-8 (names chosen by the daemon, addresses, ...).
    #[inline(always)]
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
    #[inline(always)]
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
        if !bytes_array(self.buf, items.clone()) {
            self.buf.push(b',');
            self.buf.push(b'"');
            self.buf.extend_from_slice(k.as_bytes());
            self.buf.extend_from_slice(b"_hex\":");
            hex_array(self.buf, items);
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

    /// A list of objects, each written by `f` from one item.
    pub fn array_of<T>(&mut self, k: &str, items: &[T], mut f: impl FnMut(&mut Line, &T)) {
        self.key(k);
        self.buf.push(b'[');
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            let mut inner = Line::begin(self.buf);
            f(&mut inner, it);
            inner.buf.push(b'}');
        }
        self.buf.push(b']');
    }

    /// A list of unsigned numbers.
    pub fn u64_list(&mut self, k: &str, v: &[u64]) {
        self.key(k);
        u64_array(self.buf, v);
    }
}

/// `[...]` of byte strings as JSON strings (invalid UTF-8 lossily); whether all were UTF-8.
/// Shared by the JSON lines and the journal entries (whose lists are JSON text).
pub(crate) fn bytes_array<'b>(buf: &mut Vec<u8>, items: impl Iterator<Item = &'b [u8]>) -> bool {
    let mut all_utf8 = true;
    buf.push(b'[');
    for (i, it) in items.enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        match std::str::from_utf8(it) {
            Ok(s) => escape_str(buf, s),
            Err(_) => {
                all_utf8 = false;
                escape_str(buf, &String::from_utf8_lossy(it));
            }
        }
    }
    buf.push(b']');
    all_utf8
}

/// `[{"pid":..,"exe":..,"comm":..},...]`: an event's parent chain. Shared by the JSON
/// lines and the journal entries (whose value is this JSON text).
pub(crate) fn ancestors_array(buf: &mut Vec<u8>, list: &[Ancestor<'_>]) {
    buf.push(b'[');
    for (i, a) in list.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        let mut o = Line::begin(buf);
        o.u64("pid", a.pid.into());
        if let Some(x) = a.exe {
            o.bytes("exe", x);
            if a.exe_deleted {
                o.bool("exe_deleted", true);
            }
        }
        o.bytes("comm", a.comm);
        o.buf.push(b'}');
    }
    buf.push(b']');
}

/// `[...]` of byte strings, each as a JSON string of its bytes in lowercase hex.
pub(crate) fn hex_array<'b>(buf: &mut Vec<u8>, items: impl Iterator<Item = &'b [u8]>) {
    buf.push(b'[');
    for (i, it) in items.enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        hex_str(buf, it);
    }
    buf.push(b']');
}

/// `[...]` of unsigned numbers.
pub(crate) fn u64_array(buf: &mut Vec<u8>, v: &[u64]) {
    buf.push(b'[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        push_u64(buf, *x);
    }
    buf.push(b']');
}

pub(crate) fn hex_str(buf: &mut Vec<u8>, v: &[u8]) {
    buf.push(b'"');
    for &b in v {
        buf.push(HEX[(b >> 4) as usize]);
        buf.push(HEX[(b & 15) as usize]);
    }
    buf.push(b'"');
}

/// Bytes that JSON strings cannot hold as they are: control characters, DEL (kept
/// out so a terminal never sees it), the quote and the backslash; and the lead bytes of
/// the characters [`display_trick`] looks for.
const ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[0x7f] = true;
    t[0xc2] = true;
    t[0xd8] = true;
    t[0xe2] = true;
    t
};

/// A character that is valid JSON but changes how the text around it looks on a screen,
/// so that a file name or an argument could pose as other text: C1 controls
/// (U+0080..U+009F), the line and paragraph separators (U+2028, U+2029: line breaks to
/// JavaScript), and the bidirectional marks, embeddings, overrides and isolates (U+061C,
/// U+200E, U+200F, U+202A..U+202E, U+2066..U+2069). Its code point and UTF-8 length when
/// `b` starts with one.
fn display_trick(b: &[u8]) -> Option<(u32, usize)> {
    match *b {
        [0xc2, c, ..] if (0x80..=0x9f).contains(&c) => Some((u32::from(c), 2)),
        [0xd8, 0x9c, ..] => Some((0x061c, 2)),
        [0xe2, 0x80, c, ..] if matches!(c, 0x8e | 0x8f | 0xa8..=0xae) => {
            Some((0x2000 | u32::from(c & 0x3f), 3))
        }
        [0xe2, 0x81, c, ..] if (0xa6..=0xa9).contains(&c) => {
            Some((0x2040 | u32::from(c & 0x3f), 3))
        }
        _ => None,
    }
}

/// Writes `s` as a JSON string literal. Control characters and the display tricks of
/// [`display_trick`] are written as `\u` escapes: still the same string to a JSON reader,
/// and plain ASCII on a screen.
pub fn escape_str(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    buf.reserve(bytes.len() + 2);
    buf.push(b'"');
    let mut start = 0;
    // Runs of plain bytes are copied whole; only the rare bytes to escape go one by one.
    while let Some(off) = bytes[start..].iter().position(|&b| ESCAPE[b as usize]) {
        let i = start + off;
        buf.extend_from_slice(&bytes[start..i]);
        let b = bytes[i];
        let mut len = 1;
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            0xc2 | 0xd8 | 0xe2 => match display_trick(&bytes[i..]) {
                Some((cp, n)) => {
                    push_u_escape(buf, cp);
                    len = n;
                }
                None => buf.push(b),
            },
            _ => push_u_escape(buf, u32::from(b)),
        }
        start = i + len;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

/// `\uXXXX` for a code point of the Basic Multilingual Plane.
fn push_u_escape(buf: &mut Vec<u8>, cp: u32) {
    buf.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        buf.push(HEX[((cp >> shift) & 15) as usize]);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_and_unknown_records_are_errors_and_leave_no_output() {
        let clock = WallClock::default();
        let mut buf = b"keep\n".to_vec();
        assert!(matches!(
            render("process", &clock, &[0u8; 10], &mut buf),
            Err(DecodeError::Short { .. })
        ));
        let mut rec = vec![0u8; 64];
        rec[24] = 99;
        assert_eq!(
            render("process", &clock, &rec, &mut buf),
            Err(DecodeError::UnknownType(99))
        );
        assert_eq!(buf, b"keep\n");
    }

    use super::*;
    use crate::units::fixed_digits;

    #[test]
    fn display_tricks_are_escaped_and_the_string_stays_the_same() {
        let tricky = "a\u{85}b\u{9f}c\u{2028}d\u{2029}e\u{202e}f\u{2066}g\u{2069}h\u{200e}\u{61c}i";
        let mut buf = Vec::new();
        escape_str(&mut buf, tricky);
        let text = String::from_utf8(buf).expect("utf8");
        assert_eq!(
            text,
            r#""a\u0085b\u009fc\u2028d\u2029e\u202ef\u2066g\u2069h\u200e\u061ci""#
        );
        assert!(text.is_ascii());
        let back: String = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back, tricky);
        // Their neighbours are plain text: not escaped.
        for plain in [
            "\u{a0}", "\u{2027}", "\u{202f}", "\u{2065}", "\u{206a}", "\u{60c}", "é€",
        ] {
            let mut buf = Vec::new();
            escape_str(&mut buf, plain);
            assert_eq!(buf, format!("\"{plain}\"").into_bytes(), "{plain:?}");
        }
    }

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
    fn digits() {
        for v in [
            0u64,
            5,
            9,
            10,
            42,
            99,
            100,
            101,
            999,
            1000,
            123_456_789,
            u64::MAX,
        ] {
            let mut out = b"x".to_vec();
            push_u64(&mut out, v);
            assert_eq!(out, format!("x{v}").as_bytes(), "{v}");
        }
        for (v, w) in [
            (0u64, 9),
            (7, 9),
            (123_456_789, 9),
            (42, 3),
            (5, 1),
            (1234, 2),
        ] {
            let mut out = vec![0u8; w];
            fixed_digits(&mut out, v);
            let want = format!("{:0w$}", v % 10u64.pow(w as u32));
            assert_eq!(out, want.as_bytes(), "{v} in {w}");
        }
    }

    #[test]
    fn every_byte_escapes_as_json_expects() {
        for b in 0u8..128 {
            let s = (b as char).to_string();
            let mut out = Vec::new();
            escape_str(&mut out, &format!("a{s}b"));
            let text = String::from_utf8(out).expect("utf8");
            let back: String = serde_json::from_str(&text).expect("valid JSON");
            assert_eq!(back, format!("a{s}b"), "byte {b:#x}: {text}");
            assert_eq!(
                text.len() > 5,
                b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f,
                "{b:#x}"
            );
        }
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
