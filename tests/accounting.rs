//! The promise: produced = received + dropped, exactly, with drops visible as sequence gaps;
//! no stall under load; nothing produced before SIGTERM is lost.
mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Daemon, gettid, u};

#[test]
fn one_page_ring_burst_counts_every_drop() {
    let d = Daemon::start(
        "acct-burst",
        &[
            "--adaptive",
            "off",
            "--only",
            "syscall",
            "--syscalls",
            "getppid",
            "--ring-size",
            "syscall=4KiB",
        ],
    );
    let tid = gettid() as u64;
    common::syscall_n(libc::SYS_getppid, 100_000);
    let f = d.stop();
    f.assert_exact();
    let r = f.ring("syscall");
    let (produced, received, dropped) = (u(&r["produced"]), u(&r["received"]), u(&r["dropped"]));
    assert_eq!(u(&r["size"]), 4096);
    assert!(
        dropped > 0,
        "a one-page ring must overflow under a 100k burst: {r}"
    );
    assert_eq!(produced, received + dropped);

    // Every attempt got a unique sequence number; the missing ones are exactly the drops.
    let seqs: Vec<u64> = f
        .events
        .iter()
        .filter(|e| e["ring"] == "syscall")
        .map(|e| u(&e["seq"]))
        .collect();
    let set: HashSet<u64> = seqs.iter().copied().collect();
    assert_eq!(set.len(), seqs.len(), "duplicate sequence numbers");
    assert!(
        seqs.iter().all(|&s| s < produced),
        "sequence beyond produced"
    );
    assert_eq!(
        produced - set.len() as u64,
        dropped,
        "gaps in seq != dropped"
    );

    let mine = f
        .of_type("syscall")
        .filter(|e| u(&e["tid"]) == tid && e["name"] == "getppid")
        .count() as u64;
    assert!(
        mine <= 100_000 && mine + dropped >= 100_000,
        "mine={mine} dropped={dropped}"
    );
}

#[test]
fn events_produced_just_before_sigterm_are_delivered() {
    let d = Daemon::start(
        "acct-drain",
        &[
            "--adaptive",
            "off",
            "--only",
            "syscall",
            "--syscalls",
            "getpgid",
            "--ring-size",
            "syscall=8MiB",
        ],
    );
    let tid = gettid() as u64;
    common::syscall_n(libc::SYS_getpgid, 20_000);
    // No pause: the stop must drain what is still in the ring.
    let f = d.stop();
    f.assert_exact();
    assert_eq!(u(&f.ring("syscall")["dropped"]), 0);
    let mine = f.of_type("syscall").filter(|e| u(&e["tid"]) == tid).count();
    assert_eq!(mine, 20_000);
}

#[test]
fn loop_keeps_up_under_sustained_load_without_stalling() {
    // A paced producer (one event, then ~15 us of spinning) that the consumer outruns,
    // so the consumer catches up and goes back to sleep over and over: each time is a
    // chance for a lost wake-up (edge-triggered epoll, libbpf 1.7's missing barrier).
    // A lost wake-up leaves the loop asleep until its 1 s safety tick, and at ~60k
    // events/s a 1 MiB ring (~7.7k records) overflows long before that. (Here a loop
    // without the fence + second pass also passed this test, so it guards against stalls
    // in general; the race itself was measured with another loop, see docs/design.md.)
    const N: usize = 120_000;
    let d = Daemon::start(
        "acct-stall",
        &[
            "--adaptive",
            "off",
            "--only",
            "syscall",
            "--syscalls",
            "getsid",
            "--ring-size",
            "syscall=1MiB",
        ],
    );
    let tid = gettid() as u64;
    for _ in 0..N {
        common::syscall_n(libc::SYS_getsid, 1);
        let t = Instant::now();
        while t.elapsed() < Duration::from_micros(15) {
            std::hint::spin_loop();
        }
    }
    // Delivered live, before any shutdown drain.
    let t = Instant::now();
    let needle = format!(",\"tid\":{tid},");
    loop {
        let n = d.count_lines_with(&needle);
        if n == N {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "only {n} of {N} delivered live"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let f = d.stop();
    f.assert_exact();
    assert_eq!(u(&f.ring("syscall")["dropped"]), 0, "{}", f.ring("syscall"));
    let mine = f.of_type("syscall").filter(|e| u(&e["tid"]) == tid).count();
    assert_eq!(mine, N);
}
