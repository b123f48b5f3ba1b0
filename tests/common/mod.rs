//! Test harness: runs the real daemon (real BPF, real tracepoints) and reads what it wrote.
//! Tests filter events by the pids/tids they spawn: the whole machine reaches the programs.
#![allow(dead_code)]

pub mod obs;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_ringwarden");

/// The load generator: its own package in the workspace (load/), so Cargo sets no
/// CARGO_BIN_EXE_ for it and `cargo test --test NAME` does not build it; `cargo build` and
/// `cargo test --all-targets` put it next to BIN. Missing or older than its source: a panic.
pub fn load_bin() -> PathBuf {
    let bin = Path::new(BIN).with_file_name("ringwarden-load");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("load/src/main.rs");
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let (built, edited) = (mtime(&bin), mtime(&src));
    let release = bin.parent().is_some_and(|d| d.ends_with("release"));
    let fix = if release { " --release" } else { "" };
    assert!(
        built.is_some_and(|b| edited.is_none_or(|e| e <= b)),
        "{} is missing or older than {}: build it: cargo build --workspace{fix}",
        bin.display(),
        src.display()
    );
    bin
}

/// A fresh directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "ringwarden-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// Syscall tracepoints need tracefs; CI and fresh machines may not have it mounted.
pub fn ensure_tracefs() {
    if !Path::new("/sys/kernel/tracing/events").is_dir() {
        let _ = Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status();
    }
}

pub struct Daemon {
    child: Child,
    pub dir: PathBuf,
    pub output: PathBuf,
    pub stats: PathBuf,
    pub stderr: PathBuf,
}

pub struct Finished {
    pub status: ExitStatus,
    pub events: Vec<Value>,
    pub stats: Value,
    pub stderr: String,
    pub raw: String,
}

impl Daemon {
    /// Starts `ringwarden run ARGS --output .. --stats-json ..` and waits for `ready`.
    pub fn start(tag: &str, args: &[&str]) -> Daemon {
        ensure_tracefs();
        let dir = temp_dir(tag);
        let output = dir.join("events.jsonl");
        let stats = dir.join("stats.json");
        let stderr = dir.join("stderr.log");
        let child = Command::new(BIN)
            .arg("run")
            .args(args)
            .args(isolation(args))
            .arg("--output")
            .arg(&output)
            .arg("--stats-json")
            .arg(&stats)
            .arg("--stats-interval")
            .arg("1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn ringwarden");
        let d = Daemon {
            child,
            dir,
            output,
            stats,
            stderr,
        };
        // "ready: " and not "ready": a warning before it may say "already".
        d.wait_for_log("ready: ", Duration::from_secs(30));
        d
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn wait_for_log(&self, word: &str, timeout: Duration) {
        let t = Instant::now();
        while !self.log().contains(word) {
            assert!(
                t.elapsed() < timeout,
                "daemon did not log {word:?} within {timeout:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Events written so far (the daemon flushes after every loop pass).
    pub fn events_now(&self) -> Vec<Value> {
        parse_lines(&fs::read_to_string(&self.output).unwrap_or_default())
    }

    /// Lines written so far that contain `needle` (cheap: no JSON parsing).
    pub fn count_lines_with(&self, needle: &str) -> usize {
        fs::read_to_string(&self.output)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// SIGTERM, wait for exit (must be within 5 s), read everything.
    pub fn stop(mut self) -> Finished {
        // SAFETY: kill with a valid pid and signal.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let t = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if t.elapsed() > Duration::from_secs(5) {
                let _ = self.child.kill();
                panic!(
                    "daemon did not exit within 5 s of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let raw = fs::read_to_string(&self.output).unwrap_or_default();
        let stats = serde_json::from_str(&fs::read_to_string(&self.stats).unwrap_or_default())
            .unwrap_or(Value::Null);
        let f = Finished {
            status,
            events: parse_lines(&raw),
            stats,
            stderr: self.log(),
            raw,
        };
        let _ = fs::remove_dir_all(&self.dir);
        f
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every line must be one JSON object.
pub fn parse_lines(raw: &str) -> Vec<Value> {
    raw.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

impl Finished {
    /// Asserts a clean exit and exact books on every ring, and returns self.
    pub fn assert_exact(&self) -> &Self {
        assert!(
            self.status.success(),
            "exit {:?}; log:\n{}",
            self.status,
            self.stderr
        );
        let rings = self.stats["rings"].as_object().expect("stats has rings");
        for (name, r) in rings {
            let (p, rx, d) = (u(&r["produced"]), u(&r["received"]), u(&r["dropped"]));
            assert_eq!(
                p,
                rx + d,
                "ring {name}: produced != received + dropped: {r}"
            );
            assert_eq!(u(&r["decode_errors"]), 0, "ring {name}: decode errors");
            assert_eq!(
                u(&r["untracked"]),
                0,
                "ring {name}: in-flight table overflowed"
            );
            let seen = self
                .events
                .iter()
                .filter(|e| e["ring"] == name.as_str())
                .count() as u64;
            assert_eq!(seen, rx, "ring {name}: lines written != received");
        }
        assert!(
            self.stderr.contains("final ring") && self.stderr.contains("exact=yes"),
            "no final stats line; log:\n{}",
            self.stderr
        );
        self
    }

    pub fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |e| e["type"] == ty)
    }

    pub fn ring(&self, name: &str) -> &Value {
        &self.stats["rings"][name]
    }
}

pub fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

pub fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an i64: {v}"))
}

/// A JSON string field's exact bytes: `k_hex` when present (not UTF-8), else `k`.
pub fn bytes_of(e: &Value, k: &str) -> Vec<u8> {
    let hex = format!("{k}_hex");
    match e.get(&hex).and_then(Value::as_str) {
        Some(h) => (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
            .collect(),
        None => e[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} missing in {e}"))
            .as_bytes()
            .to_vec(),
    }
}

/// The calling thread's id (tests run as threads of one process).
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// `n` raw calls of a no-op syscall (one that only reads the caller's ids, called with 0),
/// so each one really enters the kernel. Tests run in parallel and every daemon sees the
/// whole machine: each test uses a syscall of its own.
pub fn syscall_n(nr: libc::c_long, n: usize) {
    for _ in 0..n {
        // SAFETY: getppid/getpgid(0)/getsid(0)/getuid/... only read the caller's ids.
        unsafe {
            libc::syscall(nr, 0);
        }
    }
}

/// Options that keep a test daemon off the host's own set-up, unless the test sets them:
/// without them it would read /etc/ringwarden/ringwarden.toml (an installed package's
/// file, with its metrics port) and compete for /run/ringwarden/control.sock with the
/// service and with every other test.
pub fn isolation(args: &[&str]) -> Vec<&'static str> {
    let mut v = Vec::new();
    if !args.iter().any(|a| *a == "--config" || *a == "-c") {
        v.extend(["--config", "/dev/null"]);
    }
    if !args.contains(&"--control-socket") {
        v.extend(["--control-socket", "off"]);
    }
    v
}

/// The producer threads' tids in a `ringwarden-load` report.
pub fn load_tids(report: &Value) -> std::collections::HashSet<u64> {
    report["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .map(|t| u(&t["tid"]))
        .collect()
}

/// Runs `ringwarden ARGS` to completion: (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(BIN)
        .args(args)
        .output()
        .expect("run ringwarden");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Waits until the log file at `path` contains `word` (for daemons a test spawns itself).
pub fn wait_for_file(path: &Path, word: &str, timeout: Duration) {
    let t = Instant::now();
    while !fs::read_to_string(path).unwrap_or_default().contains(word) {
        assert!(
            t.elapsed() < timeout,
            "{word:?} not in {path:?} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
