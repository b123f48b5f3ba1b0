//! Record decoding and both encodings, on any bytes a ring could hold. Input: one byte
//! (low bits: the ring, by index in `Family::ALL`; bit 7: the record starts misaligned),
//! then the record.
//!
//! - rendering never panics, and an error leaves the buffer as it was (bytes already in
//!   it included); JSON and journal agree on whether a record decodes;
//! - the JSON is exactly one line (ends with `\n`, no other) and valid JSON (an object);
//! - every `K_hex` is lowercase hex of bytes that are not UTF-8, whose lossy text is `K`
//!   and which are exactly the journal's `RINGWARDEN_K` (`argv_hex`: each element, and
//!   the journal's `RINGWARDEN_ARGV_HEX` is the same list);
//! - the journal entry parses back, field by field (`KEY=value\n`, or `KEY\n` + u64 LE
//!   length + bytes + `\n`), consuming it exactly; keys are journald's (A-Z, 0-9, `_`, not
//!   starting with `_` or a digit, at most 64); `MESSAGE` comes first and is one line.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use ringwarden::family::Family;
use ringwarden::output::{journal, json};
use ringwarden::sys::clock::WallClock;

const BEFORE: &[u8] = b"{\"previous\":\"line\"}\n";

/// The fields of a journal entry, in order; panics on broken framing.
fn fields(mut e: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while !e.is_empty() {
        let end = e
            .iter()
            .position(|&b| b == b'=' || b == b'\n')
            .expect("a field name ends");
        let key = std::str::from_utf8(&e[..end])
            .expect("ASCII key")
            .to_string();
        assert!(
            !key.is_empty()
                && key.len() <= 64
                && !key.starts_with(|c: char| c == '_' || c.is_ascii_digit())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            "bad journal key {key:?}"
        );
        let rest = &e[end + 1..];
        if e[end] == b'=' {
            let nl = rest
                .iter()
                .position(|&b| b == b'\n')
                .expect("a text value ends with a newline");
            out.push((key, rest[..nl].to_vec()));
            e = &rest[nl + 1..];
        } else {
            assert!(rest.len() >= 8, "{key}: length cut");
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            let rest = &rest[8..];
            assert!(rest.len() > len, "{key}: value cut");
            assert_eq!(rest[len], b'\n', "{key}: binary value ends with a newline");
            out.push((key, rest[..len].to_vec()));
            e = &rest[len + 1..];
        }
    }
    out
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex {s:?}");
    assert!(
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fuzz_target!(|input: &[u8]| {
    let Some((&sel, data)) = input.split_first() else {
        return;
    };
    let ring = Family::ALL[sel as usize % Family::ALL.len()].name();
    // Ring records are 8-byte aligned; bit 7 moves this one a byte off.
    let mut words = vec![0u64; data.len() / 8 + 2];
    // SAFETY: u64s are plain bytes; the slice stays inside the Vec.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) };
    let off = usize::from(sel >> 7);
    bytes[off..off + data.len()].copy_from_slice(data);
    let rec = &bytes[off..off + data.len()];

    let clock = WallClock::default();
    let mut line = BEFORE.to_vec();
    let j = json::render(ring, &clock, rec, &mut line);
    let mut entry = BEFORE.to_vec();
    let e = journal::encode(ring, &clock, rec, &mut entry);
    assert_eq!(j.is_ok(), e.is_ok(), "JSON {j:?}, journal {e:?}");
    if j.is_err() {
        assert_eq!(line, BEFORE, "a JSON error left bytes behind");
        assert_eq!(entry, BEFORE, "a journal error left bytes behind");
        return;
    }
    assert!(line.starts_with(BEFORE) && entry.starts_with(BEFORE));
    let line = &line[BEFORE.len()..];
    let entry = &entry[BEFORE.len()..];

    assert!(line.ends_with(b"\n"), "JSON ends with a newline");
    assert_eq!(
        line.iter().filter(|&&b| b == b'\n').count(),
        1,
        "one JSON line"
    );
    let v: serde_json::Value = serde_json::from_slice(line)
        .unwrap_or_else(|err| panic!("invalid JSON ({err}): {}", String::from_utf8_lossy(line)));
    let obj = v.as_object().expect("a JSON object");

    let fs = fields(entry);
    assert_eq!(fs[0].0, "MESSAGE", "MESSAGE first");
    assert!(!fs[0].1.contains(&b'\n'), "MESSAGE is one line");
    let by_key: HashMap<&str, &[u8]> = fs.iter().map(|(k, v)| (k.as_str(), &v[..])).collect();
    assert_eq!(by_key.len(), fs.len(), "a journal key twice");

    for (k, hv) in obj.iter().filter(|(k, _)| k.ends_with("_hex")) {
        let base = &k[..k.len() - 4];
        let jkey = format!("RINGWARDEN_{}", k.to_ascii_uppercase());
        if k == "argv_hex" {
            let hex = hv.as_array().expect("argv_hex is a list");
            let argv = obj["argv"].as_array().expect("argv is a list");
            assert_eq!(hex.len(), argv.len());
            let mut utf8 = true;
            for (h, a) in hex.iter().zip(argv) {
                let raw = unhex(h.as_str().expect("hex string"));
                utf8 &= std::str::from_utf8(&raw).is_ok();
                assert_eq!(
                    String::from_utf8_lossy(&raw),
                    a.as_str().expect("argv string")
                );
            }
            assert!(!utf8, "argv_hex with every element UTF-8");
            let jv: serde_json::Value =
                serde_json::from_slice(by_key.get(jkey.as_str()).expect("ARGV_HEX in journal"))
                    .expect("journal ARGV_HEX is JSON");
            assert_eq!(&jv, hv, "journal and JSON argv_hex differ");
            continue;
        }
        let raw = unhex(hv.as_str().expect("hex string"));
        assert!(std::str::from_utf8(&raw).is_err(), "{k} for UTF-8 bytes");
        assert_eq!(
            String::from_utf8_lossy(&raw),
            obj[base].as_str().expect("the lossy text"),
            "{k} is not the bytes of {base}"
        );
        let jbase = format!("RINGWARDEN_{}", base.to_ascii_uppercase());
        assert_eq!(
            by_key.get(jbase.as_str()).copied(),
            Some(&raw[..]),
            "journal {jbase} is not the bytes of {k}"
        );
        assert!(!by_key.contains_key(jkey.as_str()), "{jkey} in the journal");
    }
});
