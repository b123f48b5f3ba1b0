//! Tamper detection against the real kernel: this test, as root, changes the running
//! daemon's BPF maps behind its back through the bpf syscall (BPF_MAP_GET_FD_BY_ID on
//! the ids the daemon's own fds hold), as `bpftool map update` would. Each change must
//! give exactly one critical `tamper` anomaly within two ticks, be put back (events
//! flow again: N actions -> N events), and leave the books exact.
mod common;

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::maps::{daemon_maps, map};
use common::{Daemon, Finished, gettid, u};
use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType, RingBufferBuilder};
use serde_json::Value;

const KEY: [u8; 4] = 0u32.to_ne_bytes();
/// `RW_CONFIG_STOPPED` (bpf/common.h).
const STOPPED: u32 = 1;
/// The daemon's tick: a change is reported at the next one. The tests allow 10 (and
/// print what they measured): on a busy 2-core host a tick can come late, and what they
/// prove is that the change is raised exactly once and undone, not how fast.
const TICK: Duration = Duration::from_secs(1);

/// `struct rw_config`'s first two members: self_tgid, flags.
fn config(m: &MapHandle) -> (u32, u32, Vec<u8>) {
    let v = m
        .lookup(&KEY, MapFlags::ANY)
        .expect("lookup")
        .expect("slot 0");
    let word = |i: usize| u32::from_ne_bytes(v[i..i + 4].try_into().expect("4 bytes"));
    (word(0), word(4), v)
}

fn set_config(m: &MapHandle, self_tgid: u32, flags: u32) {
    let (_, _, mut v) = config(m);
    v[0..4].copy_from_slice(&self_tgid.to_ne_bytes());
    v[4..8].copy_from_slice(&flags.to_ne_bytes());
    m.update(&KEY, &v, MapFlags::ANY)
        .expect("tamper with rw_config");
}

fn tamper_events(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["type"] == "anomaly" && e["rule"] == "tamper")
        .collect()
}

/// Waits until the daemon has raised `n` tamper events (its log line comes just before
/// the event is written; the output is flushed at the end of that loop pass), then
/// until they are in the output; prints how long the log line took. Polls the small
/// log, not the output: every read of the output is an open the daemons report.
fn wait_tamper(d: &Daemon, n: usize, since: Instant) {
    let logged = loop {
        let got = d.log().matches("tamper: ").count();
        if got >= n {
            break since.elapsed();
        }
        assert!(
            since.elapsed() < 10 * TICK,
            "{got} tamper log lines after 10 s, want {n}; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    while d.count_lines_with("\"rule\":\"tamper\"") < n {
        assert!(since.elapsed() < 10 * TICK, "logged but not written");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("tamper raised {logged:?} after the change");
}

/// `n` writes of `path` by a thread of their own (so that the test's reads of the
/// output are not counted with them); returns its tid.
fn opens(path: &std::path::Path, n: usize) -> u32 {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        for _ in 0..n {
            fs::write(&path, b"x").expect("write probe");
        }
        gettid()
    })
    .join()
    .expect("probe thread")
}

fn opens_of(f: &Finished, tid: u32, path: &std::path::Path) -> usize {
    let p = path.to_str().expect("utf-8 path");
    f.of_type("open")
        .filter(|e| u(&e["tid"]) == u64::from(tid) && e["path"] == p)
        .count()
}

/// The one tamper event, with the fields docs/events.md promises.
fn check_event(e: &Value, daemon: u32, family: &str, map: &str, field: &str) -> (u64, u64) {
    assert_eq!(e["severity"], "critical", "{e}");
    assert_eq!(e["origin"], "daemon", "{e}");
    assert_eq!(e["family"], family, "{e}");
    assert_eq!(e["map"], map, "{e}");
    assert_eq!(e["field"], field, "{e}");
    assert_eq!(u(&e["pid"]), u64::from(daemon), "{e}");
    assert!(e.get("seq").is_none() && e.get("ring").is_none(), "{e}");
    assert!(e["ts"].is_string() && e["ts_ns"].is_u64(), "{e}");
    (u(&e["expected"]), u(&e["found"]))
}

fn start(tag: &str, only: &str) -> Daemon {
    Daemon::builder(tag).args(&args(only)).start()
}

/// One family, a ring big enough for the whole machine's activity during the test
/// (other tests run floods), and no resizes or wake-up switches: the only writes to the
/// maps are the daemon's first ones and the test's.
fn args(only: &str) -> Vec<&str> {
    let size = if only == "file" {
        "file=8MiB"
    } else {
        "syscall=8MiB"
    };
    vec![
        // The family's own maps alone (context would load the process family's too).
        "--no-context",
        "--only",
        only,
        "--ring-size",
        size,
        "--adaptive",
        "off",
        "--wakeup",
        "every",
    ]
}

/// The end of every test: a clean exit, exact books and exactly `n` tamper events
/// (in the output, the log and the stats).
fn finish(d: Daemon, n: u64) -> Finished {
    let f = d.stop();
    f.assert_exact_tampered(n);
    f
}

#[test]
fn self_tgid_changed_is_raised_once_and_restored() {
    let d = start("tamper-tgid", "file");
    let daemon = d.pid();
    let probe = d.dir.join("probe-tgid");
    let cfg = map(&daemon_maps(daemon), "rw_config");
    assert_eq!(
        config(&cfg).0,
        daemon,
        "the daemon's own tgid to begin with"
    );

    let before = opens(&probe, 5);
    // The programs now take this test process for the daemon and skip it.
    let me = std::process::id();
    let t = Instant::now();
    set_config(&cfg, me, 0);
    wait_tamper(&d, 1, t);
    assert_eq!(config(&cfg).0, daemon, "self_tgid restored");
    let after = opens(&probe, 7);

    let f = finish(d, 1);
    let ev = tamper_events(&f.events);
    let (expected, found) = check_event(ev[0], daemon, "file", "rw_config", "self_tgid");
    assert_eq!((expected, found), (daemon.into(), me.into()));
    // Before and after the change (the window in between is the attack's).
    assert_eq!(opens_of(&f, before, &probe), 5, "opens before");
    assert_eq!(opens_of(&f, after, &probe), 7, "opens after");
}

#[test]
fn stop_flag_set_is_raised_once_and_restored() {
    let d = start("tamper-stop", "file");
    let daemon = d.pid();
    let probe = d.dir.join("probe-stop");
    let cfg = map(&daemon_maps(daemon), "rw_config");

    let t = Instant::now();
    set_config(&cfg, daemon, STOPPED);
    wait_tamper(&d, 1, t);
    assert_eq!(config(&cfg).1, 0, "the stop flag is cleared again");
    let after = opens(&probe, 9);

    let f = finish(d, 1);
    let ev = tamper_events(&f.events);
    let (expected, found) = check_event(ev[0], daemon, "file", "rw_config", "flags");
    assert_eq!((expected, found), (0, u64::from(STOPPED)));
    assert_eq!(opens_of(&f, after, &probe), 9, "reporting resumed");
}

/// A ring put in the programs' slot takes the events: the daemon puts its own back, and
/// the books show exactly what the thief took (produced = received + dropped + stolen).
#[test]
fn ring_swapped_in_is_raised_once_and_replaced() {
    let d = start("tamper-ring", "file");
    let daemon = d.pid();
    let probe = d.dir.join("probe-ring");
    let maps = daemon_maps(daemon);
    let outer = map(&maps, "file_rings");
    let ours = map(&maps, "file_ring");
    let our_id = ours.info().expect("ring info").info.id;
    let slot = |m: &MapHandle| {
        let v = m
            .lookup(&KEY, MapFlags::ANY)
            .expect("lookup")
            .expect("slot");
        u32::from_ne_bytes(v[..4].try_into().expect("id"))
    };
    assert_eq!(slot(&outer), our_id);

    let opts = libbpf_rs::libbpf_sys::bpf_map_create_opts {
        sz: size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
        ..Default::default()
    };
    let thief = MapHandle::create(
        MapType::RingBuf,
        Some("thief"),
        0,
        0,
        ours.max_entries(),
        &opts,
    )
    .expect("create the thief's ring");
    let thief_id = thief.info().expect("thief info").info.id;
    // Its records: (seq, tid) of each, read from the header.
    let stolen = Rc::new(RefCell::new(Vec::new()));
    let mut rb = RingBufferBuilder::new();
    let s = stolen.clone();
    rb.add(&thief, move |data: &[u8]| {
        let seq = u64::from_ne_bytes(data[0..8].try_into().expect("seq"));
        let tid = u32::from_ne_bytes(data[32..36].try_into().expect("tid"));
        s.borrow_mut().push((seq, tid));
        0
    })
    .expect("consumer");
    let rb = rb.build().expect("consumer");

    let fd = std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&thief)) as u32;
    let t = Instant::now();
    outer
        .update(&KEY, &fd.to_ne_bytes(), MapFlags::ANY)
        .expect("swap the thief's ring in");
    let during = opens(&probe, 4); // into the thief's ring
    // Still the thief's slot after the opens: all 4 went there. Else (a late test thread
    // on a busy host) the daemon's tick came between: then the split is checked below.
    let whole_theft = slot(&outer) == thief_id;
    wait_tamper(&d, 1, t);
    assert_eq!(slot(&outer), our_id, "the daemon's ring is back");
    // Nothing reaches the thief's ring any more: what it holds is final.
    rb.consume().expect("drain the thief's ring");
    let after = opens(&probe, 6);

    let f = d.stop();
    assert!(f.status.success(), "{}", f.stderr);
    let ev = tamper_events(&f.events);
    assert_eq!(ev.len(), 1, "{ev:?}");
    let (expected, found) = check_event(ev[0], daemon, "file", "file_rings", "ring_id");
    assert_eq!((expected, found), (our_id.into(), thief_id.into()));
    assert_eq!(u(&f.stats["tamper"]), 1);
    assert_eq!(
        opens_of(&f, after, &probe),
        6,
        "the opens after the restore"
    );
    let stolen = stolen.borrow();
    let (theirs, ours) = (
        stolen.iter().filter(|(_, t)| *t == during).count(),
        opens_of(&f, during, &probe),
    );
    assert_eq!(theirs + ours, 4, "each open of the theft once: thief or us");
    if whole_theft {
        assert_eq!(theirs, 4, "the opens during the theft went to the thief");
    } else {
        eprintln!("the restore came amid the opens: {theirs} stolen, {ours} ours");
    }
    // The books: every seq is in the output, in the thief's ring, or dropped.
    let r = f.ring("file");
    let (p, rx, dr) = (u(&r["produced"]), u(&r["received"]), u(&r["dropped"]));
    assert_eq!(p, rx + dr + stolen.len() as u64, "{r}");
    let ours: HashSet<u64> = f.read_from("file").map(|e| u(&e["seq"])).collect();
    assert_eq!(ours.len() as u64, rx, "lines written = received");
    assert!(stolen.iter().all(|(s, _)| *s < p && !ours.contains(s)));
}

/// The syscall family's filter is the daemon's: a syscall switched off is switched on
/// again, reported by name.
#[test]
fn syscall_filter_entry_switched_off_is_raised_once_and_restored() {
    let d = start("tamper-filter", "syscall");
    let daemon = d.pid();
    let filter = map(&daemon_maps(daemon), "syscall_filter");
    let nr = (libc::SYS_personality as u32).to_ne_bytes();
    let on = |m: &MapHandle| {
        m.lookup(&nr, MapFlags::ANY)
            .expect("lookup")
            .expect("entry")[0]
    };
    assert_eq!(on(&filter), 1, "personality is in the default set");

    let t = Instant::now();
    filter
        .update(&nr, &[0], MapFlags::ANY)
        .expect("switch personality off");
    wait_tamper(&d, 1, t);
    assert_eq!(on(&filter), 1, "switched on again");
    let tid = std::thread::spawn(|| {
        for _ in 0..8 {
            // SAFETY: 0xffffffff only queries the persona.
            unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu64) };
        }
        gettid()
    })
    .join()
    .expect("syscall thread");

    let f = finish(d, 1);
    let ev = tamper_events(&f.events);
    let (expected, found) = check_event(ev[0], daemon, "syscall", "syscall_filter", "personality");
    assert_eq!((expected, found), (1, 0));
    let mine = f
        .of_type("syscall")
        .filter(|e| u(&e["tid"]) == u64::from(tid) && e["name"] == "personality")
        .count();
    assert_eq!(mine, 8, "reported again");
}

/// In a PID namespace the programs learn the daemon's real tgid themselves: that write
/// is not tampering; changing the learned value afterwards is.
#[test]
fn learned_tgid_is_not_tampering_but_changing_it_is() {
    let d = Daemon::builder("tamper-pidns")
        .args(&args("file"))
        .pid_namespace()
        .start();
    let daemon = d.pid();
    let cfg = map(&daemon_maps(daemon), "rw_config");
    // The daemon's stats writes (every second) are its first events: learned then.
    let t = Instant::now();
    while config(&cfg).0 != daemon {
        assert!(
            t.elapsed() < 10 * TICK,
            "tgid not learned: {:?}",
            config(&cfg)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(2 * TICK);
    assert_eq!(
        d.count_lines_with("\"rule\":\"tamper\""),
        0,
        "learning is no tamper"
    );

    let t = Instant::now();
    set_config(&cfg, std::process::id(), 0);
    wait_tamper(&d, 1, t);
    assert_eq!(config(&cfg).0, daemon, "the learned tgid restored");

    let f = finish(d, 1);
    let ev = tamper_events(&f.events);
    let e = ev[0];
    assert_eq!(e["field"], "self_tgid", "{e}");
    assert_eq!(u(&e["expected"]), u64::from(daemon), "{e}");
    assert_eq!(u(&e["found"]), u64::from(std::process::id()), "{e}");
}

/// The `rw_config` of `family` among the daemon's maps. Every family's object has its
/// own `rw_config`; the daemon loads objects one after another and each object's maps get
/// ascending ids, so the k-th `rw_config` by id goes with the k-th `FAMILY_rings` by id.
fn config_of(maps: &[(String, MapHandle)], family: &str) -> MapHandle {
    let ids = |pick: &dyn Fn(&str) -> bool| {
        let mut v: Vec<(u32, &MapHandle)> = maps
            .iter()
            .filter(|(n, _)| pick(n))
            .map(|(_, m)| (m.info().expect("map info").info.id, m))
            .collect();
        v.sort_by_key(|&(id, _)| id);
        v
    };
    let configs = ids(&|n| n == "rw_config");
    let rings = ids(&|n| n.ends_with("_rings"));
    assert_eq!(configs.len(), rings.len(), "one rw_config per family");
    let want = format!("{family}_rings");
    let k = rings
        .iter()
        .position(|&(_, m)| m.name().to_string_lossy() == want)
        .unwrap_or_else(|| panic!("no map {want}"));
    MapHandle::try_from(configs[k].1).expect("dup map fd")
}

/// In a PID namespace only the families that see the daemon's own activity (file,
/// syscall) learn its tgid; the daemon then writes it into every other family's config.
/// A tgid someone wrote into one of those (their own, to hide their events) is not
/// "learned": it is raised once and replaced by the daemon's.
#[test]
fn foreign_tgid_in_a_family_that_never_learns_is_raised() {
    let d = Daemon::builder("tamper-pidns-process")
        .args(&[
            // The configs as the test writes them (no context flag).
            "--no-context",
            "--only",
            "process,file",
            "--ring-size",
            "file=8MiB",
            "--adaptive",
            "off",
            "--wakeup",
            "every",
        ])
        .pid_namespace()
        .start();
    let daemon = d.pid();
    let maps = daemon_maps(daemon);
    let (file, process) = (config_of(&maps, "file"), config_of(&maps, "process"));
    let t = Instant::now();
    while (config(&file).0, config(&process).0) != (daemon, daemon) {
        assert!(
            t.elapsed() < 10 * TICK,
            "tgid not learned by file and written into process: {:?} {:?}",
            config(&file).0,
            config(&process).0
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        d.count_lines_with("\"rule\":\"tamper\""),
        0,
        "learning is no tamper"
    );

    set_config(&process, std::process::id(), 0);
    wait_tamper(&d, 1, Instant::now());
    assert_eq!(config(&process).0, daemon, "the daemon's tgid restored");
    assert_eq!(config(&file).0, daemon, "file untouched");

    let f = finish(d, 1);
    let ev = tamper_events(&f.events);
    let e = ev[0];
    assert_eq!(
        (&e["family"], &e["map"], &e["field"]),
        (&"process".into(), &"rw_config".into(), &"self_tgid".into()),
        "{e}"
    );
    assert_eq!(u(&e["expected"]), u64::from(daemon), "{e}");
    assert_eq!(u(&e["found"]), u64::from(std::process::id()), "{e}");
}

/// With `--output journal` the event is a journal entry of priority crit (2), with the
/// same fields and no seq; here the journal is a socket bound by the test.
#[test]
fn journal_entry_is_priority_crit() {
    let dir = common::temp_dir("tamper-journal");
    let path = dir.join("journal.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).expect("bind the journal socket");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut a = args("file");
    a[2] = "cgroup"; // a quiet family: few entries besides ours
    a[4] = "cgroup=1MiB";
    a.extend(["--output", "journal"]);
    let d = Daemon::builder("tamper-journal")
        .in_dir(&dir)
        .args(&a)
        .env(
            "RINGWARDEN_JOURNAL_SOCKET",
            path.to_str().expect("utf-8 path"),
        )
        .start();
    let daemon = d.pid();
    let cfg = map(&daemon_maps(daemon), "rw_config");

    let t = Instant::now();
    set_config(&cfg, daemon, STOPPED);
    let mut buf = vec![0u8; 1 << 16];
    let entry = loop {
        assert!(t.elapsed() < 10 * TICK, "no tamper entry within ten ticks");
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.contains("\nRINGWARDEN_RULE=tamper\n") {
            break text;
        }
    };
    let f = d.stop();
    assert!(f.status.success(), "{}", f.stderr);
    let lines: Vec<&str> = entry.lines().collect();
    for want in [
        "MESSAGE=anomaly critical tamper: cgroup rw_config.flags was changed behind ringwarden's back: 1 instead of 0 (restored)",
        "PRIORITY=2",
        "SYSLOG_IDENTIFIER=ringwarden",
        "RINGWARDEN_TYPE=anomaly",
        "RINGWARDEN_ORIGIN=daemon",
        "RINGWARDEN_SEVERITY=critical",
        "RINGWARDEN_FAMILY=cgroup",
        "RINGWARDEN_MAP=rw_config",
        "RINGWARDEN_FIELD=flags",
        "RINGWARDEN_EXPECTED=0",
        "RINGWARDEN_FOUND=1",
        &format!("RINGWARDEN_PID={daemon}"),
    ] {
        assert!(lines.contains(&want), "{want:?} not in {entry:?}");
    }
    assert!(!entry.contains("RINGWARDEN_SEQ="), "{entry:?}");
    assert_eq!(u(&f.stats["tamper"]), 1, "{}", f.stats);
    assert_eq!(f.stderr.matches("tamper: ").count(), 1, "{}", f.stderr);
    let r = f.ring("cgroup");
    assert_eq!(
        u(&r["produced"]),
        u(&r["received"]) + u(&r["dropped"]),
        "{r}"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// The filter maps every family shares: a rule switched on behind the daemon's back
/// (here include_uid with an empty list, which would leave out every event as
/// "filtered") is raised, one finding per field, and undone.
#[test]
fn a_filter_rule_switched_on_is_raised_and_undone() {
    const INCLUDE_UID: u32 = 1 << 2;
    const ACTIVE: u32 = 2;
    let d = start("tamper-filter", "file");
    let daemon = d.pid();
    let probe = d.dir.join("probe-filter");
    let maps = daemon_maps(daemon);
    let gen_map = map(&maps, "rw_filter_gen");
    let sets = map(&maps, "rw_filter_sets");
    let word = |m: &MapHandle, key: u32| {
        let v = m
            .lookup(&key.to_ne_bytes(), MapFlags::ANY)
            .expect("lookup")
            .expect("entry");
        (u32::from_ne_bytes(v[..4].try_into().expect("4 bytes")), v)
    };
    let (gen_word, _) = word(&gen_map, 0);
    assert_eq!(gen_word & ACTIVE, 0, "no rule to begin with");
    let cur = gen_word & 1;
    let (bits, mut set) = word(&sets, cur);
    assert_eq!(bits, 0);

    let t = Instant::now();
    set[..4].copy_from_slice(&INCLUDE_UID.to_ne_bytes());
    sets.update(&cur.to_ne_bytes(), &set, MapFlags::ANY)
        .expect("tamper with the set");
    gen_map
        .update(
            &0u32.to_ne_bytes(),
            &(gen_word | ACTIVE).to_ne_bytes(),
            MapFlags::ANY,
        )
        .expect("tamper with the generation");
    wait_tamper(&d, 2, t);
    assert_eq!(word(&gen_map, 0).0, gen_word, "generation restored");
    assert_eq!(word(&sets, cur).0, 0, "rule bits restored");
    let after = opens(&probe, 6);

    let f = finish(d, 2);
    let ev = tamper_events(&f.events);
    let mut got: Vec<(String, u64, u64)> = ev
        .iter()
        .map(|e| {
            let field = e["field"].as_str().expect("field").to_string();
            let map = if field == "gen" {
                "rw_filter_gen"
            } else {
                "rw_filter_sets"
            };
            let (x, y) = check_event(e, daemon, "filters", map, &field);
            (field, x, y)
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "gen".to_string(),
                u64::from(gen_word),
                u64::from(gen_word | ACTIVE)
            ),
            (format!("set{cur}.bits"), 0, u64::from(INCLUDE_UID)),
        ]
    );
    // (What the rule left out until the tick undid it is on the books as `filtered`.)
    assert_eq!(opens_of(&f, after, &probe), 6, "reported again");
}
