//! Rings sharded by CPU (`[rings.FAMILY] shards`), against the real kernel: each CPU
//! group writes its own ring, each shard keeps its own books and seqs and is sized on its
//! own, and the stats, `status` and the metrics show every shard. Each test traces its
//! own syscall (the daemons run in parallel and see the whole machine) from threads
//! pinned to a CPU, so which shard an event goes to is known.
mod common;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::obs::{metrics_port, scrape, status, wait_until};
use common::{Daemon, Finished, gettid, run_cli, temp_dir, u};

/// A daemon of the syscall family alone tracing `syscall`, its ring set by `ring` (the
/// body of `[rings.syscall]`, and any tables after it), with `extra` arguments; and its
/// directory, where the configuration is (`CONTROL` in `extra`: a control socket there).
fn sharded(tag: &str, ring: &str, syscall: &str, v510: bool, extra: &[&str]) -> (Daemon, PathBuf) {
    let dir = temp_dir(tag);
    let cfg = config(&dir, &format!("[rings.syscall]\n{ring}"));
    let sock = dir.join("control.sock").to_string_lossy().into_owned();
    let mut args = vec!["--config", &cfg, "--only", "syscall", "--syscalls", syscall];
    args.extend(
        extra
            .iter()
            .map(|&a| if a == "CONTROL" { sock.as_str() } else { a }),
    );
    (
        Daemon::builder(tag).args(&args).variant_510(v510).start(),
        dir,
    )
}

fn config(dir: &Path, body: &str) -> String {
    let p = dir.join("ringwarden.toml");
    fs::write(&p, body).expect("write config");
    p.to_string_lossy().into_owned()
}

/// Two shards split the CPUs in halves (CPU c writes shard c / (cpus / 2)): the first CPU
/// of each half.
fn cpus() -> [usize; 2] {
    let n = ringwarden_cpus();
    assert!(n >= 2, "these tests need 2 CPUs; this host has {n}");
    [0, n.div_ceil(2)]
}

fn ringwarden_cpus() -> usize {
    libbpf_rs::num_possible_cpus().expect("possible CPUs")
}

/// Runs syscall `nr` `n` times on a thread pinned to `cpu`; returns its tid.
fn pinned(cpu: usize, nr: libc::c_long, n: usize) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        // SAFETY: a zeroed cpu_set_t is valid; CPU_SET within its size.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            assert_eq!(
                libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set),
                0,
                "pin to CPU {cpu}"
            );
        }
        common::syscall_n(nr, n);
        u64::from(gettid())
    })
}

/// The records of `name` made by `tid`.
fn of_tid<'a>(
    f: &'a Finished,
    name: &'a str,
    tid: u64,
) -> impl Iterator<Item = &'a serde_json::Value> {
    f.of_type("syscall")
        .filter(move |e| e["name"] == name && u(&e["tid"]) == tid)
}

crate::variant_twins! {
    each_cpu_group_writes_its_own_shard_with_its_own_seqs,
    /// The same with the 5.10 variant (bpf/kernel.h), whose records carry no seq.
    the_510_variant_writes_each_cpu_groups_own_shard => split_on
}

fn split_on(v510: bool) {
    let (d, _dir) = sharded(
        "shards-split",
        "shards = 2\nsize = \"4MiB\"\n",
        "getuid",
        v510,
        &["--adaptive", "off"],
    );
    let [a, b] = cpus();
    let n = 20_000;
    let ta = pinned(a, libc::SYS_getuid, n);
    let tb = pinned(b, libc::SYS_getuid, n);
    let (ta, tb) = (ta.join().expect("thread"), tb.join().expect("thread"));
    let f = d.stop();
    f.assert_exact().assert_variant("syscall", v510);
    assert!(
        f.stderr.contains("syscall 2 shards of 4MiB"),
        "the ready line names the shards: {}",
        f.stderr
    );
    let r = f.ring("syscall");
    let shards = r["shards"].as_array().expect("the stats list the shards");
    assert_eq!(shards.len(), 2, "{r}");
    assert_eq!(
        u(&r["size"]),
        8 << 20,
        "the ring's size is its shards': {r}"
    );
    for (tid, shard) in [(ta, 0), (tb, 1)] {
        let mine: Vec<_> = of_tid(&f, "getuid", tid).collect();
        assert_eq!(mine.len(), n, "thread on shard {shard}");
        assert!(
            mine.iter().all(|e| e["shard"] == shard),
            "every event of the thread pinned to shard {shard}'s CPU is in shard {shard}"
        );
    }
    // Seqs count per shard: each shard's are 0..produced, every one once.
    for (i, sh) in shards.iter().enumerate() {
        assert_eq!(u(&sh["dropped"]), 0, "{sh}");
        assert_eq!(u(&sh["size"]), 4 << 20, "{sh}");
        if v510 {
            continue;
        }
        let seqs: HashSet<u64> = f
            .read_from("syscall")
            .filter(|e| e["shard"] == i)
            .map(|e| u(&e["seq"]))
            .collect();
        assert_eq!(seqs.len() as u64, u(&sh["produced"]), "shard {i}: {sh}");
        assert_eq!(seqs, (0..u(&sh["produced"])).collect(), "shard {i}");
    }
    assert!(
        f.stderr
            .lines()
            .any(|l| l.contains("final ring syscall ") && l.contains(" shards=2 ")),
        "{}",
        f.stderr
    );
}

#[test]
fn a_full_shard_drops_alone_and_its_lost_records_name_its_seqs() {
    let (d, _dir) = sharded(
        "shards-drop",
        "shards = 2\nsize = \"4KiB\"\nmin = \"4KiB\"\n",
        "getgid",
        false,
        &["--adaptive", "off"],
    );
    let [a, b] = cpus();
    // A burst on one CPU overflows its one-page shard; a trickle on the other does not.
    let flood = pinned(b, libc::SYS_getgid, 100_000);
    let quiet = std::thread::spawn(move || {
        let mut tid = 0;
        for _ in 0..20 {
            tid = pinned(a, libc::SYS_getgid, 1).join().expect("thread");
            std::thread::sleep(Duration::from_millis(5));
        }
        tid
    });
    let flood_tid = flood.join().expect("thread");
    quiet.join().expect("thread");
    let f = d.stop();
    // Per shard: produced = received + dropped, and the lost records of shard 1 name
    // exactly its dropped seqs (common::Finished::assert_lost_are_the_drops).
    f.assert_exact();
    let r = f.ring("syscall");
    let shards = r["shards"].as_array().expect("shards");
    assert_eq!(u(&shards[0]["dropped"]), 0, "{r}");
    assert!(
        u(&shards[1]["dropped"]) > 0,
        "a one-page shard overflows: {r}"
    );
    assert!(
        f.of_type("lost")
            .filter(|e| e["ring"] == "syscall")
            .all(|e| e["shard"] == 1),
        "only shard 1 lost events"
    );
    let mine = of_tid(&f, "getgid", flood_tid).count() as u64;
    assert!(
        mine + u(&shards[1]["dropped"]) >= 100_000 && mine < 100_000,
        "the flood's events are received or dropped: {mine} received, {r}"
    );
}

#[test]
fn each_shard_grows_on_its_own() {
    let (d, _dir) = sharded(
        "shards-grow",
        "shards = 2\nsize = \"16KiB\"\nmin = \"16KiB\"\n[adaptive]\ncooldown = \"1s\"\n",
        "geteuid",
        false,
        &["--adaptive", "dynamic"],
    );
    let [_, b] = cpus();
    // Bursts on one CPU until its shard has grown (a tick or two each).
    wait_until("shard 1 grown", Duration::from_secs(30), || {
        pinned(b, libc::SYS_geteuid, 50_000).join().expect("thread");
        d.log().contains("ring syscall/1: 16 KiB -> ")
    });
    let f = d.stop();
    f.assert_exact();
    assert!(
        !f.stderr.contains("ring syscall/0: 16 KiB -> "),
        "the idle shard keeps its size: {}",
        f.stderr
    );
    let r = f.ring("syscall");
    let shards = r["shards"].as_array().expect("shards");
    assert_eq!(u(&shards[0]["size"]), 16 << 10, "{r}");
    assert!(u(&shards[1]["size"]) > 16 << 10, "{r}");
    assert!(u(&shards[1]["resizes_up"]) >= 1, "{r}");
    assert_eq!(u(&shards[0]["resizes_up"]), 0, "{r}");
    assert_eq!(
        u(&r["size"]),
        u(&shards[0]["size"]) + u(&shards[1]["size"]),
        "{r}"
    );
}

#[test]
fn status_and_metrics_show_every_shard() {
    let (d, dir) = sharded(
        "shards-status",
        "shards = 2\nsize = \"1MiB\"\n",
        "getegid",
        false,
        &[
            "--no-context",
            "--adaptive",
            "off",
            "--metrics-listen",
            "127.0.0.1:0",
            "--control-socket",
            "CONTROL",
        ],
    );
    let sock = dir.join("control.sock");
    let sock_arg = sock.to_str().expect("utf-8");
    let port = metrics_port(&d);
    let [a, b] = cpus();
    pinned(a, libc::SYS_getegid, 1_000).join().expect("thread");
    pinned(b, libc::SYS_getegid, 3_000).join().expect("thread");
    wait_until("received", Duration::from_secs(20), || {
        let s = status(&sock);
        let sh = &s["rings"]["syscall"]["shards"];
        u(&sh[0]["received"]) >= 1_000 && u(&sh[1]["received"]) >= 3_000
    });
    let s = status(&sock);
    let ring = &s["rings"]["syscall"];
    let sh = ring["shards"].as_array().expect("shards");
    assert_eq!(
        u(&ring["produced"]),
        u(&sh[0]["produced"]) + u(&sh[1]["produced"]),
        "{ring}"
    );
    let (code, table, err) = run_cli(&["status", "--control-socket", sock_arg]);
    assert_eq!(code, 0, "{err}");
    for (i, row) in [" syscall/0 ", " syscall/1 "].iter().enumerate() {
        let line = table
            .lines()
            .find(|l| format!("{l} ").starts_with(row))
            .unwrap_or_else(|| panic!("no row {row:?} in:\n{table}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1], "1MiB", "{line}");
        // PRODUCED, RECEIVED as the document said a moment ago, or more.
        let produced: u64 = cells[4].parse().expect("produced");
        assert!(produced >= u(&sh[i]["produced"]), "{line}");
    }
    let m = scrape(port);
    for (i, shard) in sh.iter().enumerate() {
        let key = format!("ebpf_ring_shard_size_bytes{{ring=\"syscall\",shard=\"{i}\"}}");
        assert_eq!(m.get(&key).map(String::as_str), Some("1048576"), "{key}");
        let key = format!("ebpf_ring_shard_produced_total{{ring=\"syscall\",shard=\"{i}\"}}");
        let v: u64 = m.get(&key).expect(&key).parse().expect("a count");
        assert!(v >= u(&shard["produced"]), "{key} = {v}");
    }
    assert_eq!(
        m.get("ebpf_ring_buffer_size_bytes{ring=\"syscall\"}")
            .map(String::as_str),
        Some("2097152")
    );
    d.stop().assert_exact();
}

#[test]
fn a_bad_shard_count_is_one_line_and_exit_78() {
    let dir = temp_dir("shards-bad");
    for (body, says) in [
        ("[rings.process]\nshards = 2\n", "process table"),
        ("[rings.file]\nshards = 0\n", "\"auto\""),
        ("[rings.file]\nshards = \"lots\"\n", "\"auto\""),
    ] {
        let cfg = config(&dir, body);
        let (code, out, err) = run_cli(&["config", "check", &cfg]);
        assert_eq!(code, 78, "{body}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("shards") && err.contains(says), "{err}");
    }
}

/// Shard 1's slot of the outer array taken by another ring, then the config's shard count
/// set to 1 (every CPU to shard 0): each raised once as tamper, and put back. What went
/// into the other ring meanwhile is not the daemon's: it is declared lost, exactly.
#[test]
fn a_shard_changed_behind_the_daemons_back_is_raised_and_restored() {
    use common::maps::{daemon_maps, map};
    use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType, RingBufferBuilder};
    let (d, _dir) = sharded(
        "shards-tamper",
        "shards = 2\nsize = \"1MiB\"\n",
        "getpgrp",
        false,
        &["--no-context", "--adaptive", "off", "--wakeup", "every"],
    );
    let maps = daemon_maps(d.pid());
    let outer = map(&maps, "syscall_rings");
    let key1 = 1u32.to_ne_bytes();
    let slot1 = |m: &MapHandle| {
        let v = m
            .lookup(&key1, MapFlags::ANY)
            .expect("lookup")
            .expect("slot 1");
        u32::from_ne_bytes(v[..4].try_into().expect("id"))
    };
    let ours = slot1(&outer);
    let opts = libbpf_rs::libbpf_sys::bpf_map_create_opts {
        sz: size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
        ..Default::default()
    };
    let thief = MapHandle::create(MapType::RingBuf, Some("thief"), 0, 0, 1 << 20, &opts)
        .expect("create a ring");
    let thief_id = thief.info().expect("info").info.id;
    let stolen = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let mut rb = RingBufferBuilder::new();
    let n = stolen.clone();
    rb.add(&thief, move |_: &[u8]| {
        n.set(n.get() + 1);
        0
    })
    .expect("consumer");
    let rb = rb.build().expect("consumer");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&thief)) as u32;
    outer
        .update(&key1, &fd.to_ne_bytes(), MapFlags::ANY)
        .expect("swap a ring into slot 1");
    // Events on shard 1's CPUs while the slot is the other ring's (this test's, and any
    // getpgrp of the host's) go there.
    let [_, b] = cpus();
    pinned(b, libc::SYS_getpgrp, 100).join().expect("thread");
    // Else the daemon's tick came between (a busy host): the books below still hold.
    let whole_theft = slot1(&outer) == thief_id;
    wait_until("slot 1 restored", Duration::from_secs(10), || {
        slot1(&outer) == ours && d.log().matches("tamper: ").count() == 1
    });
    // Nothing reaches the other ring any more: what it holds is final.
    rb.consume().expect("drain the other ring");

    // struct rw_config: 4 u32, 3 u64, then shards (offset 40) and cpus.
    let config = map(&maps, "rw_config");
    let key0 = 0u32.to_ne_bytes();
    let mut v = config
        .lookup(&key0, MapFlags::ANY)
        .expect("lookup")
        .expect("config");
    assert_eq!(u32::from_ne_bytes(v[40..44].try_into().expect("shards")), 2);
    v[40..44].copy_from_slice(&1u32.to_ne_bytes());
    config
        .update(&key0, &v, MapFlags::ANY)
        .expect("write config");
    wait_until("shards restored", Duration::from_secs(10), || {
        let v = config
            .lookup(&key0, MapFlags::ANY)
            .expect("lookup")
            .expect("config");
        u32::from_ne_bytes(v[40..44].try_into().expect("shards")) == 2
            && d.log().matches("tamper: ").count() == 2
    });
    let f = d.stop();
    assert!(f.status.success(), "{}", f.stderr);
    assert_eq!(f.stderr.matches("tamper: ").count(), 2, "{}", f.stderr);
    assert_eq!(u(&f.stats["tamper"]), 2);
    let stolen = stolen.get();
    if whole_theft {
        assert!(
            stolen >= 100,
            "the pinned thread's events went to the other ring: {stolen}"
        );
    }
    let r = f.ring("syscall");
    let sh = r["shards"].as_array().expect("shards");
    for (i, taken) in [(0, 0), (1, stolen)] {
        let (p, rx, dr) = (
            u(&sh[i]["produced"]),
            u(&sh[i]["received"]),
            u(&sh[i]["dropped"]),
        );
        assert_eq!(p, rx + dr + taken, "shard {i}: {r}");
        assert_eq!(
            u(&sh[i]["lost"]),
            dr + taken,
            "shard {i}: declared lost: {r}"
        );
    }
    let found: Vec<(String, String, u64, u64)> = f
        .of_type("anomaly")
        .filter(|e| e["rule"] == "tamper")
        .map(|e| {
            (
                e["map"].as_str().expect("map").to_string(),
                e["field"].as_str().expect("field").to_string(),
                u(&e["expected"]),
                u(&e["found"]),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "syscall_rings".to_string(),
                "ring_id[1]".to_string(),
                u64::from(ours),
                u64::from(thief_id)
            ),
            ("rw_config".to_string(), "shards".to_string(), 2, 1),
        ]
    );
}

/// A reload that changes the shard count keeps the running shards (their counters are
/// kept across the reload, a slot per shard) and says when the change applies.
#[test]
fn a_reload_keeps_the_shards_and_says_so() {
    let (d, dir) = sharded(
        "shards-reload",
        "shards = 2\nsize = \"1MiB\"\n",
        "getpgrp",
        false,
        &["--no-context", "--adaptive", "off"],
    );
    config(&dir, "[rings.syscall]\nshards = 1\nsize = \"1MiB\"\n");
    d.signal(libc::SIGHUP);
    d.wait_for_log("takes effect at the next start", Duration::from_secs(10));
    let f = d.stop();
    f.assert_exact();
    assert!(
        f.stderr.contains(
            "rings.syscall.shards = 1 takes effect at the next start; the ring keeps 2 shards"
        ),
        "{}",
        f.stderr
    );
    assert_eq!(
        f.ring("syscall")["shards"].as_array().map(Vec::len),
        Some(2)
    );
}

/// A family switched off and on again by reloads takes back its counter maps, which
/// have a slot per shard: it keeps its shards even when the file asks for fewer (or
/// more), says so, and its books go on exact.
#[test]
fn a_family_switched_back_on_keeps_its_shards() {
    let dir = temp_dir("shards-reenable");
    let body = |families: &str, shards: u32| {
        format!(
            "families = [{families}]\n[context]\nenabled = false\n[rings.syscall]\nshards = {shards}\nsize = \"1MiB\"\n"
        )
    };
    let cfg = config(&dir, &body("\"syscall\", \"cgroup\"", 2));
    let d = Daemon::start(
        "shards-reenable",
        &[
            "--config",
            &cfg,
            "--syscalls",
            "sched_yield",
            "--adaptive",
            "off",
        ],
    );
    let [a, b] = cpus();
    pinned(a, libc::SYS_sched_yield, 100)
        .join()
        .expect("thread");
    config(&dir, &body("\"cgroup\"", 2));
    d.signal(libc::SIGHUP);
    d.wait_for_log("retired ring syscall", Duration::from_secs(10));
    config(&dir, &body("\"syscall\", \"cgroup\"", 1));
    d.signal(libc::SIGHUP);
    d.wait_for_log("family syscall switched on", Duration::from_secs(20));
    let ta = pinned(a, libc::SYS_sched_yield, 1_000)
        .join()
        .expect("thread");
    let tb = pinned(b, libc::SYS_sched_yield, 1_000)
        .join()
        .expect("thread");
    let f = d.stop();
    f.assert_exact();
    assert!(
        f.stderr.contains(
            "rings.syscall.shards = 1 takes effect at the next start; the syscall ring keeps its 2 shards"
        ),
        "{}",
        f.stderr
    );
    let r = f.ring("syscall");
    assert_eq!(r["shards"].as_array().map(Vec::len), Some(2), "{r}");
    for (tid, shard) in [(ta, 0), (tb, 1)] {
        let mine: Vec<_> = of_tid(&f, "sched_yield", tid).collect();
        assert_eq!(mine.len(), 1_000, "thread on shard {shard}");
        assert!(mine.iter().all(|e| e["shard"] == shard));
    }
}
