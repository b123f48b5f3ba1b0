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
    let seqs: Vec<u64> = f.read_from("syscall").map(|e| u(&e["seq"])).collect();
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

/// The holes, in band: a burst on a one-page ring drops most of its events, and the
/// stream itself says which seqs are gone, while the daemon runs (a tick or two after
/// the burst, not only at shutdown) and exactly: the counts of the `lost` records sum to
/// `dropped`, and no lost range overlaps another or holds a seq that arrived.
#[test]
fn lost_records_name_exactly_the_dropped_seqs() {
    let d = Daemon::start(
        "acct-lost",
        &[
            "--adaptive",
            "off",
            "--only",
            "syscall",
            "--syscalls",
            "getpriority",
            "--ring-size",
            "syscall=4KiB",
        ],
    );
    common::syscall_n(libc::SYS_getpriority, 100_000);
    // In band before any stop: once the burst's drops are declared (two ticks at most),
    // the stream already counts every drop the stats file shows.
    let t = Instant::now();
    let (mut stream, mut dropped) = (0, 0);
    while t.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(200));
        let stats: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&d.stats).unwrap_or_default())
                .unwrap_or_default();
        dropped = stats["rings"]["syscall"]["dropped"].as_u64().unwrap_or(0);
        stream = d
            .events_now()
            .iter()
            .filter(|e| e["type"] == "lost" && e["ring"] == "syscall")
            .map(|e| u(&e["count"]))
            .sum::<u64>();
        if dropped > 0 && stream == dropped {
            break;
        }
    }
    assert!(
        dropped > 0,
        "a one-page ring must overflow under a 100k burst"
    );
    assert_eq!(
        stream, dropped,
        "lost records in the stream before the stop"
    );

    let f = d.stop();
    f.assert_exact(); // includes assert_lost_are_the_drops for every ring
    let r = f.ring("syscall");
    let (produced, received, dropped) = (u(&r["produced"]), u(&r["received"]), u(&r["dropped"]));
    assert_eq!(u(&r["size"]), 4096);
    let lost = f.lost_of("syscall");
    assert_eq!(lost.iter().map(|l| l.2).sum::<u64>(), dropped);
    // Every seq below produced is either received or in exactly one lost range.
    let mut covered = vec![0u8; produced as usize];
    for e in f.read_from("syscall") {
        covered[u(&e["seq"]) as usize] += 1;
    }
    for &(first, last, _) in &lost {
        for s in first..=last {
            covered[s as usize] += 1;
        }
    }
    assert!(
        covered.iter().all(|&c| c == 1),
        "a seq below produced={produced} (received={received}) is neither received nor lost, or both"
    );
    // Each record is whole: a daemon-raised line with the ring it is about and no seq.
    let e = f.of_type("lost").next().expect("a lost record");
    assert_eq!(e["origin"], "daemon");
    assert!(e.get("seq").is_none() && e["ts_ns"].is_u64(), "{e}");
    assert!(
        f.stderr
            .contains(&format!("final ring syscall size=4096 produced={produced}"))
            && f.stderr.contains(&format!("exact=yes lost={dropped}")),
        "{}",
        f.stderr
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
