//! The metrics endpoint's request parser: never a panic; a reply is a whole HTTP response
//! whose Content-Length is its body's; the end of the stream only decides an incomplete
//! head; and a verdict on the bytes so far stands when more bytes arrive (the answer does
//! not depend on how TCP cut the request).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringwarden::fuzzing::{Verdict, http};

fn check_reply(r: &[u8]) {
    let end = r
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let head = std::str::from_utf8(&r[..end]).expect("the head is text");
    assert!(
        head.starts_with("HTTP/1.1 4") || head.starts_with("HTTP/1.1 5"),
        "{head}"
    );
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .expect("a length");
    assert_eq!(len, r.len() - end, "Content-Length is the body's length");
    assert!(head.contains("\r\nConnection: close\r\n"));
}

fuzz_target!(|data: &[u8]| {
    let open = http(data, false);
    let closed = http(data, true);
    for v in [&open, &closed] {
        if let Verdict::Reply(r) = v {
            check_reply(r);
        }
        assert!(!matches!(v, Verdict::Status), "no status over HTTP");
    }
    match &open {
        Verdict::More => assert!(matches!(closed, Verdict::More | Verdict::Close)),
        Verdict::Close => panic!("Close without the end of the stream"),
        v => assert_eq!(v, &closed, "the end of the stream changed a verdict"),
    }
    if closed == Verdict::More {
        panic!("More after the end of the stream");
    }
    // The same bytes in two reads: a verdict on the first part stands.
    let cut = data.len() / 2;
    let first = http(&data[..cut], false);
    if first != Verdict::More {
        assert_eq!(
            first, open,
            "the verdict depends on where the request was cut"
        );
    }
});
