//! The event archive (issue 16): `--output FILE` with rotation by size and by time,
//! retention by count, age and total size, gzip, reopening on SIGUSR1 after `mv`, and a
//! full disk that is freed. Every line is accounted for: the lines of every file plus
//! what retention deleted (`expired_events`) equal `written`, and `received` equals
//! `written` plus `sink_errors`. The events are this thread's `getegid` calls (no other
//! test makes them), counted exactly.
mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, Finished, gettid, parse_lines, run_cli, temp_dir, u};
use serde_json::Value;

const BASE: [&str; 8] = [
    "--only",
    "syscall",
    "--syscalls",
    "getegid",
    "--no-context",
    "--ring-size",
    "syscall=8MiB",
    "--adaptive=off",
];

/// The daemon writing its archive into `dir` (its log and stats stay in a directory of
/// the harness's: `dir` may be a file system that fills up).
fn start(tag: &str, dir: &Path, extra: &[&str]) -> Daemon {
    let mut args: Vec<&str> = BASE.to_vec();
    args.extend_from_slice(extra);
    Daemon::builder(tag)
        .output(&dir.join("events.jsonl"))
        .args(&args)
        .start()
}

fn calls(n: usize) {
    common::syscall_n(libc::SYS_getegid, n);
}

/// The archive's files, oldest first (rotated by name, then the active one), each
/// decompressed: (name, text).
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("events-") && (n.ends_with(".jsonl") || n.ends_with(".gz")))
        .collect();
    names.sort();
    // Caught between a file's .gz and the removal of its plain copy: the .gz only.
    let gz: Vec<String> = names
        .iter()
        .filter_map(|n| n.strip_suffix(".gz").map(str::to_string))
        .collect();
    names.retain(|n| !gz.contains(n));
    names.push("events.jsonl".into());
    names
        .into_iter()
        .filter_map(|n| {
            let p = dir.join(&n);
            let text = if n.ends_with(".gz") {
                let o = Command::new("gzip")
                    .arg("-dc")
                    .arg(&p)
                    .output()
                    .expect("gzip");
                assert!(o.status.success(), "gzip -dc {n}");
                String::from_utf8(o.stdout).expect("utf-8")
            } else {
                fs::read_to_string(&p).ok()?
            };
            Some((n, text))
        })
        .collect()
}

/// Every line of the archive (each must be a whole JSON object).
fn lines(dir: &Path) -> Vec<Value> {
    files(dir)
        .iter()
        .flat_map(|(_, t)| parse_lines(t))
        .collect()
}

fn mine(lines: &[Value], tid: u32) -> Vec<u64> {
    lines
        .iter()
        .filter(|e| e["type"] == "syscall" && u(&e["tid"]) == u64::from(tid))
        .map(|e| u(&e["seq"]))
        .collect()
}

/// Waits until the archive holds `n` of this thread's events.
fn wait_mine(dir: &Path, tid: u32, n: usize) {
    let t = Instant::now();
    loop {
        let whole: Vec<Value> = files(dir)
            .iter()
            .flat_map(|(_, t)| {
                let w = t.rfind('\n').map_or("", |i| &t[..i]);
                parse_lines(w)
            })
            .collect();
        let m = mine(&whole, tid).len();
        if m >= n {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{m} of {n} events in the archive after 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The books: every line is written, every event received is written or a sink error,
/// and the archive's lines plus the expired ones are what was written.
fn books(f: &Finished, dir: &Path) -> (u64, u64, u64) {
    let written = u(&f.stats["written"]);
    let errors = u(&f.stats["sink_errors"]);
    let expired = f.stats["expired_events"].as_u64().unwrap_or(0);
    let ring = f.ring("syscall");
    assert_eq!(u(&ring["dropped"]), 0, "no drops in an 8 MiB ring: {ring}");
    // The daemon's own records: those still there, and those that went with the deleted
    // files (their lines less their events; the latest `expired` record has the events
    // of every deletion).
    let all = lines(dir);
    let present = all.iter().filter(|e| e["origin"] == "daemon").count() as u64;
    let expired_events = all
        .iter()
        .filter(|e| e["type"] == "expired")
        .map(|e| u(&e["total_events"]))
        .max()
        .unwrap_or(0);
    let raised = present + expired - expired_events;
    assert_eq!(
        u(&ring["received"]) + raised,
        written + errors,
        "received + raised = written + sink_errors"
    );
    let on_disk = lines(dir).len() as u64;
    assert_eq!(on_disk + expired, written, "lines + expired = written");
    (written, errors, expired)
}

/// `ringwarden archive verify DIR`: (exit code, its report).
fn verify(dir: &Path) -> (i32, String) {
    let (code, out, err) = run_cli(&["archive", "verify", dir.to_str().expect("utf-8")]);
    assert!(err.is_empty(), "{err}");
    (code, out)
}

fn verified_exactly(dir: &Path) -> String {
    let (code, out) = verify(dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("lines: every line is a whole JSON object"),
        "{out}"
    );
    assert!(
        out.contains("verdict: ok: every gap is accounted for exactly"),
        "{out}"
    );
    out
}

fn rotated(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| {
            let e = e.ok()?;
            let n = e.file_name().into_string().ok()?;
            n.starts_with("events-")
                .then(|| (n, e.metadata().map_or(0, |m| m.len())))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn rotation_by_size_keeps_every_event_once_and_in_order() {
    let dir = temp_dir("archive-size");
    let d = start("archive-size", &dir, &["--rotate-size", "64KiB"]);
    let tid = gettid();
    calls(3000);
    wait_mine(&dir, tid, 3000);
    let f = d.stop();
    let r = rotated(&dir);
    assert!(r.len() >= 3, "rotated: {r:?}");
    for (n, size) in &r {
        assert!(*size <= 64 << 10, "{n}: {size} bytes");
        assert!(n.ends_with(".jsonl"), "{n}");
    }
    let all = lines(&dir);
    let seqs = mine(&all, tid);
    assert_eq!(seqs.len(), 3000);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in order across files"
    );
    let (_, errors, expired) = books(&f, &dir);
    assert_eq!((errors, expired), (0, 0));
    assert_eq!(f.stats["expired_events"], 0);
}

#[test]
fn rotation_by_time() {
    let dir = temp_dir("archive-time");
    let d = start("archive-time", &dir, &["--rotate-interval", "1s"]);
    let tid = gettid();
    for _ in 0..3 {
        calls(400);
        std::thread::sleep(Duration::from_millis(2200));
    }
    wait_mine(&dir, tid, 1200);
    let f = d.stop();
    let r = rotated(&dir);
    assert!(r.len() >= 2, "rotated: {r:?}");
    let per_file: Vec<usize> = files(&dir)
        .iter()
        .map(|(_, t)| mine(&parse_lines(t), tid).len())
        .collect();
    assert_eq!(per_file.iter().sum::<usize>(), 1200, "{per_file:?}");
    books(&f, &dir);
}

#[test]
fn retention_by_count_deletes_the_oldest_and_counts_them() {
    let dir = temp_dir("archive-count");
    let d = start(
        "archive-count",
        &dir,
        &["--rotate-size", "16KiB", "--keep-files", "3"],
    );
    let tid = gettid();
    calls(3000);
    // The newest events stay: wait for the last one.
    let t = Instant::now();
    while !d.log().contains("for keep_files") && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let f = d.stop();
    let r = rotated(&dir);
    assert_eq!(r.len(), 3, "{r:?}");
    let (_, _, expired) = books(&f, &dir);
    assert!(expired > 0);
    // What is left is the newest, without a hole: a run of seqs up to the last one
    // produced (every daemon of this binary sees every test's calls: not only ours).
    let seqs: Vec<u64> = lines(&dir)
        .iter()
        .filter(|e| e["type"] == "syscall")
        .map(|e| u(&e["seq"]))
        .collect();
    // Exactly the events not expired: the latest `expired` record counts every deletion.
    let expired_events = lines(&dir)
        .iter()
        .filter(|e| e["type"] == "expired")
        .map(|e| u(&e["total_events"]))
        .max()
        .expect("an expired record");
    assert_eq!(
        seqs.len() as u64 + expired_events,
        u(&f.ring("syscall")["produced"])
    );
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "a contiguous tail"
    );
    assert_eq!(
        seqs.last().copied(),
        Some(u(&f.ring("syscall")["produced"]) - 1)
    );
    let _ = tid;
    // The events missing at the start are the expired ones, exactly.
    let out = verified_exactly(&dir);
    assert!(!out.contains("the archive starts 0 events"), "{out}");
}

#[test]
fn retention_by_total_size_is_a_ceiling() {
    let dir = temp_dir("archive-total");
    let d = start(
        "archive-total",
        &dir,
        &["--rotate-size", "16KiB", "--max-total", "96KiB"],
    );
    let tid = gettid();
    let mut biggest = 0u64;
    for _ in 0..10 {
        calls(300);
        std::thread::sleep(Duration::from_millis(100));
        let total: u64 = fs::read_dir(&dir)
            .expect("dir")
            .filter_map(|e| {
                let e = e.ok()?;
                let n = e.file_name().into_string().ok()?;
                n.starts_with("events")
                    .then(|| e.metadata().map_or(0, |m| m.len()))
            })
            .sum();
        biggest = biggest.max(total);
    }
    let _ = tid;
    std::thread::sleep(Duration::from_millis(500));
    let f = d.stop();
    assert!(biggest <= 96 << 10, "the archive took {biggest} bytes");
    let (_, _, expired) = books(&f, &dir);
    assert!(expired > 0);
}

#[test]
fn retention_by_age() {
    let dir = temp_dir("archive-age");
    let d = start(
        "archive-age",
        &dir,
        &["--rotate-interval", "1s", "--keep-age", "2s"],
    );
    for _ in 0..5 {
        calls(200);
        std::thread::sleep(Duration::from_millis(1100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let f = d.stop();
    let now = std::time::SystemTime::now();
    for (n, _) in rotated(&dir) {
        let age = fs::metadata(dir.join(&n))
            .and_then(|m| m.modified())
            .map(|m| now.duration_since(m).unwrap_or_default())
            .expect("mtime");
        // Deleted within a tick of passing 2 s (and the stop took a moment).
        assert!(age < Duration::from_millis(4500), "{n} is {age:?} old");
    }
    let (_, _, expired) = books(&f, &dir);
    assert!(expired > 0, "{}", f.stderr);
}

/// Compression runs in the loop's spare time: waits until no rotated file is plain.
fn wait_compressed(dir: &Path) {
    let t = Instant::now();
    while rotated(dir).iter().any(|(n, _)| !n.ends_with(".gz")) {
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", rotated(dir));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A daemon on `extra` into a fresh directory, `n` of this thread's events, every rotated
/// file compressed, then stopped: (directory, what it left, this thread).
fn compressed_run(tag: &str, extra: &[&str], n: usize) -> (PathBuf, Finished, u32) {
    let dir = temp_dir(tag);
    let d = start(tag, &dir, extra);
    let tid = gettid();
    calls(n);
    wait_mine(&dir, tid, n);
    wait_compressed(&dir);
    (dir, d.stop(), tid)
}

#[test]
fn compression_round_trip() {
    let (dir, f, tid) = compressed_run(
        "archive-gzip",
        &["--rotate-size", "64KiB", "--compress"],
        4000,
    );
    let r = rotated(&dir);
    assert!(r.len() >= 3, "{r:?}");
    for (n, size) in &r {
        let ok = Command::new("gzip")
            .arg("-t")
            .arg(dir.join(n))
            .status()
            .expect("gzip -t");
        assert!(ok.success(), "gzip -t {n}");
        assert!(*size < 64 << 10, "{n}: {size}");
    }
    // Whatever the umask: the events hold every command line and path.
    for (n, _) in r.iter().chain(&[("events.jsonl".to_string(), 0)]) {
        let mode = fs::metadata(dir.join(n)).expect("stat").mode() & 0o777;
        assert_eq!(mode, 0o600, "{n}: {mode:o}");
    }
    let seqs = mine(&lines(&dir), tid);
    assert_eq!(seqs.len(), 4000);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    books(&f, &dir);
    verified_exactly(&dir);
}

#[test]
fn archive_verify_names_a_truncated_line_and_a_cut_gzip() {
    let (dir, _, _) = compressed_run(
        "archive-verify",
        &["--rotate-size", "16KiB", "--compress"],
        600,
    );
    verified_exactly(&dir);
    // A line cut off at the end of the active file.
    let active = dir.join("events.jsonl");
    let mut text = fs::read_to_string(&active).expect("active");
    text.push_str("{\"type\":\"syscall\",\"ri");
    fs::write(&active, &text).expect("write");
    let (code, out) = verify(&dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("events.jsonl: line "), "{out}");
    assert!(out.contains("cut off: no end of line"), "{out}");
    assert!(out.contains("verdict: FAILED: damaged lines"), "{out}");
    // A gzip file cut short.
    fs::write(&active, &text[..text.rfind('\n').expect("a line") + 1]).expect("write");
    let (n, _) = rotated(&dir).into_iter().next().expect("a rotated file");
    let gz = dir.join(&n);
    let bytes = fs::read(&gz).expect("gz");
    fs::write(&gz, &bytes[..bytes.len() / 2]).expect("cut");
    let (code, out) = verify(&dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("{n}: line ")), "{out}");
    assert!(out.contains("truncated gzip data"), "{out}");
    // A directory that is not there: exit 66, one line.
    let (code, out, err) = run_cli(&["archive", "verify", "/nonexistent/rw-archive"]);
    assert_eq!(code, 66, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn archive_options_that_cannot_work_exit_78_with_one_line() {
    for (args, says) in [
        (
            vec!["run", "--output", "-", "--rotate-size", "1MiB"],
            "not a regular file",
        ),
        (
            vec!["run", "--output", "/tmp/rw-x.jsonl", "--keep-files", "3"],
            "nothing rotates",
        ),
        (
            vec![
                "run",
                "--output",
                "/tmp/rw-x.jsonl",
                "--rotate-size",
                "1MiB",
                "--max-total",
                "1MiB",
            ],
            "make max_total at least 2 MiB",
        ),
        (vec!["run", "--rotate-interval", "0s"], "--rotate-interval"),
    ] {
        let (code, _, err) = run_cli(&args);
        assert_eq!(code, 78, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn reopen_after_mv_and_sigusr1() {
    let dir = temp_dir("archive-reopen");
    let d = start("archive-reopen", &dir, &[]);
    let tid = gettid();
    calls(300);
    wait_mine(&dir, tid, 300);
    let old = dir.join("events.old");
    fs::rename(dir.join("events.jsonl"), &old).expect("mv");
    // Still the open file: these go to the old one.
    calls(200);
    let t = Instant::now();
    while mine(
        &parse_lines(&fs::read_to_string(&old).unwrap_or_default()),
        tid,
    )
    .len()
        < 500
    {
        assert!(t.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    d.signal(libc::SIGUSR1);
    d.wait_for_log("reopened", Duration::from_secs(10));
    calls(100);
    wait_mine(&dir, tid, 100);
    let f = d.stop();
    let old_lines = parse_lines(&fs::read_to_string(&old).expect("old"));
    let new_lines = parse_lines(&fs::read_to_string(dir.join("events.jsonl")).expect("new"));
    assert_eq!(mine(&old_lines, tid).len(), 500);
    assert_eq!(mine(&new_lines, tid).len(), 100);
    let written = u(&f.stats["written"]);
    assert_eq!(old_lines.len() as u64 + new_lines.len() as u64, written);
}

/// A tmpfs of `kib` KiB, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(tag: &str, kib: u32) -> Tmpfs {
        let d = temp_dir(tag);
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k,mode=0755"),
                "tmpfs",
            ])
            .arg(&d)
            .status()
            .expect("mount");
        assert!(ok.success(), "mount tmpfs");
        Tmpfs(d)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Events until the daemon logs `word` (a full file system: the output held, or the
/// oldest file deleted to make room).
fn fill_until(d: &Daemon, word: &str) {
    let t = Instant::now();
    while !d.log().contains(word) {
        calls(200);
        assert!(t.elapsed() < Duration::from_secs(30), "{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `lost` records with `reason: "sink"`: their counts.
fn sink_lost(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .filter(|e| e["type"] == "lost" && e["reason"] == "sink")
        .map(|e| u(&e["count"]))
        .collect()
}

#[test]
fn a_full_disk_is_held_counted_and_resumed_when_freed() {
    let fs_ = Tmpfs::new("archive-full", 256);
    let dir = fs_.0.clone();
    // Room for ~100 KiB of events.
    fs::write(dir.join("filler"), vec![0u8; 150 << 10]).expect("filler");
    let d = start("archive-full", &dir, &[]);
    let tid = gettid();
    fill_until(&d, "holding the output");
    // Lost while full: counted.
    calls(500);
    std::thread::sleep(Duration::from_millis(300));
    fs::remove_file(dir.join("filler")).expect("free");
    d.wait_for_log("writing again", Duration::from_secs(10));
    calls(100);
    wait_mine(&dir, tid, 1);
    std::thread::sleep(Duration::from_millis(500));
    let f = d.stop();
    let all = lines(&dir);
    let lost = sink_lost(&all);
    let errors = u(&f.stats["sink_errors"]);
    assert!(errors >= 500, "{errors}");
    assert_eq!(
        lost,
        vec![errors],
        "one window, every sink error in its record"
    );
    let raised = lost.len() as u64;
    let ring = f.ring("syscall");
    assert_eq!(
        u(&ring["received"]) + raised,
        u(&f.stats["written"]) + errors
    );
    assert_eq!(all.len() as u64, u(&f.stats["written"]));
    // The last 100 came after the resume: all there, after the lost record.
    let after: Vec<&Value> = all
        .iter()
        .skip_while(|e| e["reason"] != "sink")
        .filter(|e| e["type"] == "syscall" && u(&e["tid"]) == u64::from(tid))
        .collect();
    assert!(after.len() >= 100, "{}", after.len());
    let log = &f.stderr;
    assert_eq!(log.matches("holding the output").count(), 1, "{log}");
    assert_eq!(log.matches("writing again").count(), 1, "{log}");
    // The gap in the seqs is exactly what the lost record counts.
    let out = verified_exactly(&dir);
    assert!(
        out.contains(&format!("output: {errors} events lost at the output")),
        "{out}"
    );
}

#[test]
fn a_full_disk_frees_the_oldest_rotated_files() {
    let fs_ = Tmpfs::new("archive-full-rot", 256);
    let dir = fs_.0.clone();
    let d = start("archive-full-rot", &dir, &["--rotate-size", "32KiB"]);
    fill_until(&d, "for a full disk");
    d.wait_for_log("writing again", Duration::from_secs(10));
    calls(100);
    std::thread::sleep(Duration::from_millis(1500));
    let f = d.stop();
    let all = lines(&dir);
    let errors = u(&f.stats["sink_errors"]);
    let lost = sink_lost(&all);
    // Every window that ended has its record (an older one may have gone with the files
    // deleted to make room); one still open at the stop has none.
    assert!(lost.iter().sum::<u64>() <= errors);
    // Each resume logged its count; the records still present are the newest of them,
    // count for count.
    let logged: Vec<u64> = f
        .stderr
        .lines()
        .filter_map(|l| {
            l.split("writing again; ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .filter(|&n| n > 0)
        .collect();
    assert_eq!(lost, logged[logged.len() - lost.len()..], "{}", f.stderr);
    let written = u(&f.stats["written"]);
    let expired = u(&f.stats["expired_events"]);
    assert!(expired > 0);
    assert_eq!(
        all.len() as u64 + expired,
        written,
        "lines + expired = written"
    );
}

#[test]
fn a_full_disk_whose_file_is_removed_resumes_and_counts_both() {
    // As an admin would: a small file system fills, the events file is removed.
    let fs_ = Tmpfs::new("archive-rm", 256);
    let dir = fs_.0.clone();
    let d = start("archive-rm", &dir, &[]);
    let tid = gettid();
    fill_until(&d, "holding the output");
    calls(300);
    fs::remove_file(dir.join("events.jsonl")).expect("rm");
    d.wait_for_log("writing again", Duration::from_secs(10));
    calls(100);
    wait_mine(&dir, tid, 100);
    let f = d.stop();
    let all = lines(&dir);
    let errors = u(&f.stats["sink_errors"]);
    assert_eq!(sink_lost(&all), vec![errors], "{}", f.stderr);
    let gone: Vec<&Value> = all
        .iter()
        .filter(|e| e["type"] == "expired" && e["reason"] == "deleted by another process")
        .collect();
    assert_eq!(gone.len(), 1, "{}", f.stderr);
    let expired = u(&f.stats["expired_events"]);
    assert_eq!(u(&gone[0]["lines"]), expired);
    assert_eq!(all.len() as u64 + expired, u(&f.stats["written"]));
    let raised = all.iter().filter(|e| e["origin"] == "daemon").count() as u64 + expired
        - u(&gone[0]["total_events"]);
    assert_eq!(
        u(&f.ring("syscall")["received"]) + raised,
        u(&f.stats["written"]) + errors
    );
}

#[test]
fn a_deleted_active_file_is_replaced_and_its_lines_counted() {
    let dir = temp_dir("archive-deleted");
    let d = start("archive-deleted", &dir, &[]);
    let tid = gettid();
    calls(300);
    wait_mine(&dir, tid, 300);
    fs::remove_file(dir.join("events.jsonl")).expect("rm");
    calls(200);
    d.wait_for_log("deleted by another process", Duration::from_secs(10));
    calls(100);
    wait_mine(&dir, tid, 100);
    let f = d.stop();
    let all = lines(&dir);
    let gone: Vec<&Value> = all.iter().filter(|e| e["type"] == "expired").collect();
    assert_eq!(gone.len(), 1);
    let expired = u(&f.stats["expired_events"]);
    assert!(expired >= 300, "{expired}");
    assert_eq!(u(&gone[0]["lines"]), expired);
    assert_eq!(all.len() as u64 + expired, u(&f.stats["written"]));
}
