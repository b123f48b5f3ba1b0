//! The archive's gzip, both halves, on any bytes:
//!
//! - inflating anything never panics (it reads a file someone else may have written);
//! - what the encoder writes, in chunks of any size (the first byte picks it), inflates
//!   back to exactly the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringwarden::output::gzip;

fuzz_target!(|data: &[u8]| {
    let _ = gzip::read_all(data, &mut |_| {});
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let split = usize::from(split) * 97 + 1;
    let mut z = Vec::new();
    let mut e = gzip::Encoder::new(0, &mut z);
    for c in input.chunks(split) {
        e.write(c, &mut z);
    }
    e.finish(&mut z);
    let mut back = Vec::new();
    gzip::read_all(&z[..], &mut |b| back.extend_from_slice(b)).expect("our own gzip reads back");
    assert_eq!(back, input);
});
