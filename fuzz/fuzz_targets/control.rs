//! The control socket's request parser: never a panic; a reply is one line of valid JSON
//! `{"error": ...}`; the end of the stream only decides an incomplete line; and a verdict
//! on the bytes so far stands when more bytes arrive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringwarden::fuzzing::{Verdict, control};

fn check_reply(r: &[u8]) {
    assert!(r.ends_with(b"\n"), "ends with a newline");
    assert_eq!(r.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
    let v: serde_json::Value = serde_json::from_slice(r).expect("valid JSON");
    let obj = v.as_object().expect("an object");
    assert_eq!(obj.len(), 1);
    assert!(obj["error"].is_string());
}

fuzz_target!(|data: &[u8]| {
    let open = control(data, false);
    let closed = control(data, true);
    for v in [&open, &closed] {
        if let Verdict::Reply(r) = v {
            check_reply(r);
        }
        assert!(
            !matches!(v, Verdict::Metrics),
            "no metrics over the control socket"
        );
    }
    match &open {
        Verdict::More => assert_ne!(closed, Verdict::More),
        Verdict::Close => panic!("Close without the end of the stream"),
        v => assert_eq!(v, &closed, "the end of the stream changed a verdict"),
    }
    let cut = data.len() / 2;
    let first = control(&data[..cut], false);
    if first != Verdict::More {
        assert_eq!(
            first, open,
            "the verdict depends on where the request was cut"
        );
    }
});
