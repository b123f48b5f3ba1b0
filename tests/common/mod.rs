//! Test harness: runs the real daemon (real BPF, real tracepoints) and reads what it wrote.
//! Tests filter events by the pids/tids they spawn: the whole machine reaches the programs.
#![allow(dead_code)]

pub mod maps;
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
/// `cargo test --all-targets` (through load/tests/) put it next to BIN. Missing or older
/// than its source: a panic.
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

/// A daemon started by a test (always through [`DaemonBuilder`]).
pub struct Daemon {
    child: Child,
    /// Under `unshare --pid`: the daemon's pid on the host, once known (the child is
    /// unshare, the daemon its child).
    inner: std::cell::Cell<Option<u32>>,
    pid_namespace: bool,
    /// Whether the directory was made for this daemon (removed at stop) or the test's.
    owns_dir: bool,
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
    /// What the daemon wrote to stdout, when it was a pipe ([`DaemonBuilder::stdout_piped`]);
    /// read only after the exit.
    pub stdout: Vec<u8>,
}

/// Environment a daemon must not inherit from whatever runs the tests (a systemd unit, a
/// shell under one): it would talk to the host's systemd or journald. A test sets what it
/// needs with [`DaemonBuilder::env`].
const HOST_ENV: [&str; 5] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
    "RINGWARDEN_JOURNAL_SOCKET",
];

/// The one way tests start the daemon: `ringwarden run ARGS`, isolated from the host's
/// /etc/ringwarden and /run/ringwarden ([`isolation`]) and from its systemd environment
/// ([`HOST_ENV`]), `RUST_LOG=info`, stderr to `DIR/stderr.log`, and by default events to
/// `DIR/events.jsonl`, stats to `DIR/stats.json` every second; [`DaemonBuilder::start`]
/// returns once the log says `ready: ` (not `ready`: a warning may say "already").
/// Options the test passes itself (`--output`, `--stats-json`, `--stats-interval`,
/// `--config`, `--control-socket`) are not added again.
pub struct DaemonBuilder {
    tag: String,
    args: Vec<String>,
    env: Vec<(String, Option<String>)>,
    dir: Option<PathBuf>,
    output: Option<PathBuf>,
    stats_json: bool,
    stats_interval: Option<String>,
    stdout_piped: bool,
    pid_namespace: bool,
    wait_ready: bool,
    ignored: Vec<i32>,
}

impl DaemonBuilder {
    /// Appends arguments after `run`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Sets a variable in the daemon's environment (after [`HOST_ENV`] is cleared).
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), Some(v.to_string())));
        self
    }

    /// The 5.10 variants (bpf/kernel.h) instead of the full objects if `on`, as on a kernel
    /// without atomic fetch-and-add or bpf_loop.
    pub fn variant_510(self, on: bool) -> Self {
        if on { self.env(V510.0, V510.1) } else { self }
    }

    /// Several [`DaemonBuilder::env`] at once.
    pub fn envs(mut self, vars: &[(&str, &str)]) -> Self {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Removes a variable from the daemon's environment.
    pub fn env_remove(mut self, k: &str) -> Self {
        self.env.push((k.to_string(), None));
        self
    }

    /// Files go into `dir`, which the test made and keeps (not removed at stop);
    /// `DIR/stderr.log` may already exist (it is truncated, keeping its inode).
    pub fn in_dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// Events to this file instead of `DIR/events.jsonl`.
    pub fn output(mut self, path: &Path) -> Self {
        self.output = Some(path.to_path_buf());
        self
    }

    /// No `--stats-json`.
    pub fn no_stats_json(mut self) -> Self {
        self.stats_json = false;
        self
    }

    /// `--stats-interval SECS`, or the daemon's own default with `None`.
    pub fn stats_interval(mut self, secs: Option<&str>) -> Self {
        self.stats_interval = secs.map(str::to_string);
        self
    }

    /// stdout is a pipe the harness reads only after the exit ([`Finished::stdout`]), and
    /// no `--output` is added: events go to stdout unless the arguments say otherwise.
    pub fn stdout_piped(mut self) -> Self {
        self.stdout_piped = true;
        self
    }

    /// Runs the daemon as pid 1 of a new PID namespace (`unshare --pid --fork
    /// --kill-child`): what a container looks like to it. [`Daemon::pid`] is its pid on
    /// the host.
    pub fn pid_namespace(mut self) -> Self {
        self.pid_namespace = true;
        self
    }

    /// Starts the daemon with these signals ignored, as a parent may leave them.
    pub fn ignoring(mut self, signals: &[i32]) -> Self {
        self.ignored.extend_from_slice(signals);
        self
    }

    /// Returns at once, without waiting for `ready: `.
    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    /// The daemon's arguments after `ringwarden`: `run`, the test's, isolation, then the
    /// harness's files.
    fn argv(&self, output: &Path, stats: &Path) -> Vec<std::ffi::OsString> {
        let given: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let has = |names: &[&str]| {
            given.iter().any(|a| {
                names
                    .iter()
                    .any(|n| a == n || a.starts_with(&format!("{n}=")))
            })
        };
        let mut v: Vec<std::ffi::OsString> = vec!["run".into()];
        v.extend(given.iter().map(Into::into));
        v.extend(isolation(&given).into_iter().map(Into::into));
        if self.output.is_some() || (!self.stdout_piped && !has(&["--output", "-o"])) {
            v.push("--output".into());
            v.push(output.into());
        }
        if self.stats_json && !has(&["--stats-json"]) {
            v.push("--stats-json".into());
            v.push(stats.into());
        }
        if let Some(s) = &self.stats_interval
            && !has(&["--stats-interval"])
        {
            v.push("--stats-interval".into());
            v.push(s.into());
        }
        v
    }

    pub fn start(self) -> Daemon {
        ensure_tracefs();
        let owns_dir = self.dir.is_none();
        let dir = self.dir.clone().unwrap_or_else(|| temp_dir(&self.tag));
        let output = self
            .output
            .clone()
            .unwrap_or_else(|| dir.join("events.jsonl"));
        let stats = dir.join("stats.json");
        let stderr = dir.join("stderr.log");
        let argv = self.argv(&output, &stats);
        let mut cmd = if self.pid_namespace {
            // unshare forks: its child is pid 1 in the new namespace and execs the daemon;
            // --kill-child: the daemon dies with unshare, never outlives a failed test.
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--kill-child", BIN]);
            c
        } else {
            Command::new(BIN)
        };
        cmd.args(&argv)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(if self.stdout_piped {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(fs::File::create(&stderr).expect("stderr file"));
        for k in HOST_ENV {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if !self.ignored.is_empty() {
            let ignored = self.ignored.clone();
            // SAFETY: signal() is async-signal-safe; nothing else runs in the child.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    for &s in &ignored {
                        libc::signal(s, libc::SIG_IGN);
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "spawn {}: {e}",
                if self.pid_namespace {
                    "unshare (util-linux)"
                } else {
                    BIN
                }
            )
        });
        let d = Daemon {
            child,
            inner: std::cell::Cell::new(None),
            pid_namespace: self.pid_namespace,
            owns_dir,
            dir,
            output,
            stats,
            stderr,
        };
        if self.wait_ready {
            d.wait_for_log("ready: ", Duration::from_secs(30));
        }
        d
    }
}

impl Daemon {
    /// A daemon to be configured, then started with [`DaemonBuilder::start`]. `tag` names
    /// its temporary directory.
    pub fn builder(tag: &str) -> DaemonBuilder {
        DaemonBuilder {
            tag: tag.to_string(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            output: None,
            stats_json: true,
            stats_interval: Some("1".to_string()),
            stdout_piped: false,
            pid_namespace: false,
            wait_ready: true,
            ignored: Vec::new(),
        }
    }

    /// `Daemon::builder(tag).args(args).start()`: `ringwarden run ARGS --output ..
    /// --stats-json .. --stats-interval 1`, isolated, once it is ready.
    pub fn start(tag: &str, args: &[&str]) -> Daemon {
        Daemon::builder(tag).args(args).start()
    }

    /// The daemon's pid (on the host, also in a PID namespace).
    pub fn pid(&self) -> u32 {
        if !self.pid_namespace {
            return self.child.id();
        }
        if let Some(p) = self.inner.get() {
            return p;
        }
        let children = format!("/proc/{0}/task/{0}/children", self.child.id());
        let t = Instant::now();
        let p = loop {
            let text = fs::read_to_string(&children).unwrap_or_default();
            if let Ok(p) = text.trim().parse() {
                break p;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "unshare has no child (the daemon): {text:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        self.inner.set(Some(p));
        p
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill with a valid pid (our child, or its child) and signal.
        unsafe {
            libc::kill(self.pid() as i32, sig);
        }
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

    /// Events written so far (the daemon flushes after every loop pass). Only whole
    /// lines: a flush of a full buffer may end mid-line, and the rest is still to come.
    pub fn events_now(&self) -> Vec<Value> {
        let raw = fs::read_to_string(&self.output).unwrap_or_default();
        let whole = raw.rfind('\n').map_or("", |n| &raw[..n]);
        parse_lines(whole)
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
    pub fn stop(self) -> Finished {
        self.signal(libc::SIGTERM);
        self.finish()
    }

    /// Waits for the exit (must come within 5 s: the caller has asked for it) and reads
    /// everything; a directory the harness made is removed.
    pub fn finish(mut self) -> Finished {
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
        // Gone: its pid may be reused, Drop must not signal it.
        self.inner.set(None);
        let mut stdout = Vec::new();
        if let Some(mut out) = self.child.stdout.take() {
            use std::io::Read;
            out.read_to_end(&mut stdout)
                .expect("read the daemon's stdout");
        }
        let raw = fs::read_to_string(&self.output).unwrap_or_default();
        let stats = serde_json::from_str(&fs::read_to_string(&self.stats).unwrap_or_default())
            .unwrap_or(Value::Null);
        let f = Finished {
            status,
            events: parse_lines(&raw),
            stats,
            stderr: self.log(),
            raw,
            stdout,
        };
        if self.owns_dir {
            let _ = fs::remove_dir_all(&self.dir);
        }
        f
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(p) = self.inner.get() {
            // SAFETY: kill with a valid pid and signal.
            unsafe { libc::kill(p as i32, libc::SIGKILL) };
        }
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
    /// Asserts a clean exit and exact books on every ring, and returns self. Nobody
    /// tampers with a test's daemon, so none of its own map writes (wake-ups, resizes,
    /// reloads, the tgid learned in a PID namespace) may be taken for tampering.
    pub fn assert_exact(&self) -> &Self {
        self.assert_exact_tampered(0)
    }

    /// [`Finished::assert_exact`] for a daemon the test tampered with `n` times: exactly
    /// `n` `tamper` events, log lines and counts in the stats.
    pub fn assert_exact_tampered(&self, n: u64) -> &Self {
        let tamper = self
            .events
            .iter()
            .filter(|e| e["type"] == "anomaly" && e["rule"] == "tamper")
            .count() as u64;
        assert_eq!(tamper, n, "tamper events; log:\n{}", self.stderr);
        assert_eq!(
            self.stderr.matches("tamper: ").count() as u64,
            n,
            "tamper log lines; log:\n{}",
            self.stderr
        );
        assert_eq!(
            self.stats["tamper"].as_u64(),
            Some(n),
            "tamper in the stats: {}",
            self.stats
        );
        assert!(
            self.status.success(),
            "exit {:?}; log:\n{}",
            self.status,
            self.stderr
        );
        // Every program of the families it ran loaded (a verifier rejection only shows as a
        // warning and a family that reports less).
        assert!(
            !self.stderr.contains("skipped: load failed"),
            "a program failed to load; log:\n{}",
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
            // Records kept for the process context alone are received, not written.
            let seen = self.read_from(name).count() as u64;
            let context_only = u(&r["context_only"]);
            assert_eq!(
                seen,
                rx - context_only,
                "ring {name}: lines written != received - context_only"
            );
            self.assert_lost_are_the_drops(name);
        }
        assert!(
            self.stderr.contains("final ring") && self.stderr.contains("exact=yes"),
            "no final stats line; log:\n{}",
            self.stderr
        );
        self
    }

    /// The records read from ring `name` (not the `lost` and `throttle` records the
    /// daemon raises about it: those say `"origin":"daemon"`).
    pub fn read_from<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events
            .iter()
            .filter(move |e| e["ring"] == name && e["origin"] != "daemon")
    }

    /// The `lost` records of ring `name`: (first_seq, last_seq, count), in stream order.
    pub fn lost_of(&self, name: &str) -> Vec<(u64, u64, u64)> {
        self.of_type("lost")
            .filter(|e| e["ring"] == name)
            .map(|e| (u(&e["first_seq"]), u(&e["last_seq"]), u(&e["count"])))
            .collect()
    }

    /// After a clean stop: ring `name`'s `lost` records name exactly the seqs it dropped.
    /// Each is a well-formed range; together they count `dropped`, none overlaps another
    /// or holds a seq that was received, and the stats count the same.
    pub fn assert_lost_are_the_drops(&self, name: &str) -> &Self {
        let r = self.ring(name);
        if r["variant"] == "5.10" {
            return self.assert_counted_lost_are_the_drops(name);
        }
        match r["shards"].as_array() {
            // A sharded ring: seqs count per shard, and so do the drops.
            Some(shards) => {
                let lost: u64 = self.of_type("lost").filter(|e| e["ring"] == name).count() as u64;
                assert_eq!(u(&r["lost_records"]), lost, "ring {name}: {r}");
                assert_eq!(u(&r["lost"]), u(&r["dropped"]), "ring {name}: {r}");
                for (i, sh) in shards.iter().enumerate() {
                    let (p, rx, d) = (u(&sh["produced"]), u(&sh["received"]), u(&sh["dropped"]));
                    assert_eq!(p, rx + d, "ring {name} shard {i}: {sh}");
                    assert_eq!(
                        self.read_from(name).filter(|e| e["shard"] == i).count() as u64,
                        rx,
                        "ring {name} shard {i}: records with its shard != received"
                    );
                    self.assert_shard_lost_are_the_drops(name, Some(i as u64), sh);
                }
            }
            None => {
                self.assert_shard_lost_are_the_drops(name, None, r);
                assert_eq!(
                    u(&r["lost_records"]),
                    self.lost_of(name).len() as u64,
                    "ring {name}: {r}"
                );
            }
        }
        self
    }

    /// [`Finished::assert_lost_are_the_drops`] for the records and `lost` records of one
    /// shard (`None`: a ring that has one), whose books are `r`.
    fn assert_shard_lost_are_the_drops(&self, name: &str, shard: Option<u64>, r: &Value) {
        let dropped = u(&r["dropped"]);
        let of_shard = |e: &Value| match shard {
            Some(i) => e["shard"] == i,
            None => e.get("shard").is_none(),
        };
        let mut lost: Vec<(u64, u64, u64)> = self
            .of_type("lost")
            .filter(|e| e["ring"] == name && of_shard(e))
            .map(|e| (u(&e["first_seq"]), u(&e["last_seq"]), u(&e["count"])))
            .collect();
        for &(f, l, n) in &lost {
            assert!(
                f <= l && n == l - f + 1,
                "ring {name}: bad lost range {f}..{l} count {n}"
            );
        }
        let sum: u64 = lost.iter().map(|x| x.2).sum();
        assert_eq!(
            sum, dropped,
            "ring {name} {shard:?}: lost counts != dropped: {r}"
        );
        assert_eq!(
            u(&r["lost"]),
            dropped,
            "ring {name} {shard:?}: stats lost: {r}"
        );
        lost.sort_unstable();
        for w in lost.windows(2) {
            assert!(
                w[0].1 < w[1].0,
                "ring {name} {shard:?}: lost ranges overlap: {w:?}"
            );
        }
        let mut seqs: Vec<u64> = self
            .read_from(name)
            .filter(|e| of_shard(e))
            .map(|e| u(&e["seq"]))
            .collect();
        seqs.sort_unstable();
        for &(f, l, _) in &lost {
            let i = seqs.partition_point(|&s| s < f);
            assert!(
                seqs.get(i).is_none_or(|&s| s > l),
                "ring {name} {shard:?}: seq {} was received but is in lost {f}..{l}",
                seqs[i]
            );
        }
    }

    /// [`Finished::assert_lost_are_the_drops`] for a ring of a 5.10 variant, whose records
    /// carry no seq: no record has one, each `lost` record has only a count, and the
    /// counts sum to `dropped`, as the stats say.
    pub fn assert_counted_lost_are_the_drops(&self, name: &str) -> &Self {
        let r = self.ring(name);
        let dropped = u(&r["dropped"]);
        assert!(
            self.read_from(name).all(|e| e.get("seq").is_none()),
            "ring {name}: a record of the 5.10 variant has a seq"
        );
        let lost: Vec<&Value> = self.of_type("lost").filter(|e| e["ring"] == name).collect();
        for e in &lost {
            assert!(
                e.get("first_seq").is_none() && e.get("last_seq").is_none() && u(&e["count"]) > 0,
                "ring {name}: a lost record of the 5.10 variant: {e}"
            );
        }
        let sum: u64 = lost.iter().map(|e| u(&e["count"])).sum();
        assert_eq!(sum, dropped, "ring {name}: lost counts != dropped: {r}");
        assert_eq!(u(&r["lost"]), dropped, "ring {name}: stats lost: {r}");
        assert_eq!(u(&r["lost_records"]), lost.len() as u64, "ring {name}: {r}");
        self
    }

    pub fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |e| e["type"] == ty)
    }

    pub fn ring(&self, name: &str) -> &Value {
        &self.stats["rings"][name]
    }

    /// Ring `name` ran the 5.10 variant if `v510`, the full object if not; and the
    /// variant's records carry no seq.
    pub fn assert_variant(&self, name: &str, v510: bool) -> &Self {
        let got = self.ring(name)["variant"].as_str().unwrap_or("");
        assert_eq!(got, if v510 { "5.10" } else { "" }, "{}", self.stats);
        if v510 {
            assert!(
                self.read_from(name).all(|e| e.get("seq").is_none()),
                "no seq from the 5.10 variant"
            );
        }
        self
    }
}

/// The variable that makes the daemon load the 5.10 variants on any kernel (the same code
/// as on 5.10 itself, where the Debian 11 guest runs it).
pub const V510: (&str, &str) = ("RINGWARDEN_KERNEL_VARIANT", "5.10");

/// Two tests from one body taking `v510`: the full objects, then the 5.10 variant. The
/// attributes before each name (docs, cfg) go to that test.
#[macro_export]
macro_rules! variant_twins {
    ($(#[$a:meta])* $full:ident, $(#[$b:meta])* $variant:ident => $body:path) => {
        $(#[$a])*
        #[test]
        fn $full() {
            $body(false)
        }

        $(#[$b])*
        #[test]
        fn $variant() {
            $body(true)
        }
    };
}

/// The tids holding an entry in the daemon's map `name`: a 5.10 variant's per-thread hash,
/// whose values end with the tid of the thread that made them, 8 bytes (bpf/kernel.h
/// RW_THREAD_MAP; the kernel keeps 15 bytes of a map's name).
pub fn map_tids(daemon_pid: u32, name: &str) -> std::collections::HashSet<u32> {
    use libbpf_rs::{MapCore as _, MapFlags};
    let maps = maps::daemon_maps(daemon_pid);
    let m = maps::map(&maps, name);
    m.keys()
        .filter_map(|k| m.lookup(&k, MapFlags::ANY).ok().flatten())
        .filter_map(|v| {
            let at = v.len().checked_sub(8)?;
            v.get(at..at + 4).and_then(|b| b.try_into().ok())
        })
        .map(u32::from_ne_bytes)
        .collect()
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

/// Runs `n` children one after the other, every tenth `/bin/false` (exit 1) and the rest
/// `/bin/true` (exit 0), each with `arg-N` and then `extra` as arguments: by pid, the program,
/// N and the exit code, so exec and exit events are checked both ways.
pub fn true_false_children(
    n: u32,
    extra: &[&str],
) -> std::collections::HashMap<u64, (&'static str, u32, i32)> {
    let mut pids = std::collections::HashMap::new();
    for k in 0..n {
        let (prog, code) = if k % 10 == 9 {
            ("/bin/false", 1)
        } else {
            ("/bin/true", 0)
        };
        let mut c = Command::new(prog)
            .arg(format!("arg-{k}"))
            .args(extra)
            .spawn()
            .expect("spawn");
        pids.insert(u64::from(c.id()), (prog, k, code));
        assert_eq!(c.wait().expect("wait").code(), Some(code));
    }
    pids
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
    let given = |name: &str| {
        args.iter()
            .any(|a| *a == name || a.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
    };
    let mut v = Vec::new();
    if !given("--config") && !given("-c") {
        v.extend(["--config", "/dev/null"]);
    }
    if !given("--control-socket") {
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

/// Runs `ringwarden ARGS` to completion: (exit code, stdout, stderr). Isolated like a
/// daemon ([`cli_isolation`]) and with the same environment.
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(cli_isolation(args)).stdin(Stdio::null());
    for k in HOST_ENV {
        cmd.env_remove(k);
    }
    let o = cmd.output().expect("run ringwarden");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A short CLI run's arguments with [`isolation`] where the command would read the host's
/// configuration or control socket: `run` (said or implied: the first argument is an
/// option) gets it right after the command, before the test's own arguments, so that an
/// option the test leaves without a value still fails the same way; `status` without
/// `--config` or `--control-socket` gets `--config /dev/null`. `check`, `config` and
/// `size` read neither and are left as they are.
pub fn cli_isolation<'a>(args: &[&'a str]) -> Vec<&'a str> {
    match args.first() {
        Some(&"run") => {
            let mut v = vec!["run"];
            v.extend(isolation(&args[1..]));
            v.extend_from_slice(&args[1..]);
            v
        }
        None => isolation(args),
        Some(a) if a.starts_with('-') => {
            let mut v = isolation(args);
            v.extend_from_slice(args);
            v
        }
        Some(&"status")
            if !args
                .iter()
                .any(|a| ["--config", "-c", "--control-socket"].contains(a)) =>
        {
            let mut v = args.to_vec();
            v.extend(["--config", "/dev/null"]);
            v
        }
        _ => args.to_vec(),
    }
}

/// `program` as an unprivileged attacker: uid/gid 65534, no groups, no capabilities
/// (`setpriv` execs it in the same process, so the child's pid is the program's).
pub fn as_nobody(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        program,
    ]);
    c
}

/// Runs `sh -c script` as uid 65534; it must succeed.
pub fn sh_as_nobody(script: &str) {
    let s = as_nobody("sh")
        .args(["-c", script])
        .status()
        .expect("run setpriv");
    assert!(s.success(), "as uid 65534: {script}");
}

/// Runs ringwarden-load (as `cmd` starts it, e.g. through [`as_nobody`]) with `args` and
/// `--quiet` to completion; its stdout, after checking that it succeeded.
pub fn run_load(mut cmd: Command, args: &[&str]) -> String {
    let o = cmd
        .args(args)
        .arg("--quiet")
        .output()
        .expect("run ringwarden-load");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "ringwarden-load {args:?}: {:?}\nstdout: {stdout}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

/// Mount point of the cgroup v2 hierarchy (`/sys/fs/cgroup/unified` on a hybrid host).
pub fn cgroup2_root() -> PathBuf {
    let mounts = fs::read_to_string("/proc/mounts").expect("read /proc/mounts");
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[2] == "cgroup2").then(|| PathBuf::from(f[1]))
        })
        .expect("a cgroup2 mount")
}
