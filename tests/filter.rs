//! In-kernel filters against the real kernel: each kind of rule with a real workload and
//! exact numbers. A worker runs as a uid no one else uses, so that the daemon's per-uid
//! count of what it filtered (the stats file's `losses`) is the worker's alone: N events
//! kept -> exactly N events for its pid; M left out -> its filtered count grew by
//! exactly M, read before and after the work.
mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, Finished, i, run_cli, temp_dir, u};
use serde_json::Value;

/// A uid no other test (and no account) uses: `k` tells a test's workers apart.
fn test_uid(k: u32) -> u32 {
    3_000_000_000 + (std::process::id() % 100_000) * 64 + k
}

/// A Python worker as `uid` (gid the same, no groups): runs `setup`, says ready and
/// waits; [`Worker::go`] runs `work` and returns when it is done. Python as the plain
/// interpreter (-I -S): nothing it does but the workload touches files afterwards.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    out: BufReader<ChildStdout>,
}

impl Worker {
    fn spawn(uid: u32, setup: &str, work: &str) -> Worker {
        let script = format!(
            "import os, sys, socket, time\n{setup}\nprint('ready', flush=True)\nsys.stdin.readline()\n{work}\nprint('done', flush=True)\nsys.stdin.readline()\n"
        );
        let mut child = Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                "--inh-caps=-all",
                "/usr/bin/python3",
                "-I",
                "-S",
                "-c",
                &script,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the worker");
        let stdin = child.stdin.take();
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut w = Worker { child, stdin, out };
        w.expect("ready");
        w
    }

    fn expect(&mut self, word: &str) {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("read the worker");
        assert_eq!(line.trim(), word, "worker {}", self.child.id());
    }

    fn pid(&self) -> u64 {
        u64::from(self.child.id())
    }

    fn go(&mut self) {
        let s = self.stdin.as_mut().expect("stdin");
        s.write_all(b"go\n").expect("tell the worker");
        s.flush().expect("flush");
        self.expect("done");
    }

    fn finish(mut self) {
        drop(self.stdin.take());
        let st = self.child.wait().expect("wait");
        assert!(st.success(), "worker failed: {st:?}");
    }
}

/// The stats file as the daemon last wrote it.
fn stats_now(d: &Daemon) -> Value {
    serde_json::from_str(&fs::read_to_string(&d.stats).unwrap_or_default()).unwrap_or(Value::Null)
}

/// The first stats the daemon writes from now on: it counts everything done before.
fn next_stats(d: &Daemon) -> Value {
    let up = |v: &Value| v["uptime_ms"].as_u64();
    let before = up(&stats_now(d));
    let t = Instant::now();
    loop {
        let s = stats_now(d);
        if up(&s).is_some() && up(&s) != before {
            return s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no stats written");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the daemon counted of `uid`'s events in `ring` under `what` (filtered, dropped).
fn lost_of(stats: &Value, ring: &str, uid: u32, what: &str) -> u64 {
    stats["losses"]
        .as_array()
        .expect("losses in the stats")
        .iter()
        .filter(|l| l["ring"] == ring && u(&l["uid"]) == u64::from(uid))
        .map(|l| u(&l[what]))
        .sum()
}

fn filtered_of(stats: &Value, ring: &str, uid: u32) -> u64 {
    lost_of(stats, ring, uid, "filtered")
}

/// Runs the worker's work between two stats writes: how many of `uid`'s `ring` events
/// the filters rejected meanwhile.
fn filtered_during(d: &Daemon, w: &mut Worker, ring: &str, uid: u32) -> u64 {
    let before = filtered_of(&next_stats(d), ring, uid);
    w.go();
    let after = filtered_of(&next_stats(d), ring, uid);
    after - before
}

fn events_of<'a>(f: &'a Finished, ty: &'a str, pid: u64) -> Vec<&'a Value> {
    f.of_type(ty).filter(|e| u(&e["pid"]) == pid).collect()
}

/// The worker's opens of paths it gave under `dir` (not its interpreter's start-up, nor
/// setpriv's own opens as root before it becomes the worker).
fn opens_under<'a>(f: &'a Finished, pid: u64, dir: &Path) -> Vec<&'a Value> {
    let prefix = format!("{}/", dir.display());
    events_of(f, "open", pid)
        .into_iter()
        .filter(|e| e["path"].as_str().unwrap_or("").starts_with(&prefix))
        .collect()
}

/// A directory every uid can read and write (the workers are not root).
fn open_dir(p: &Path) -> PathBuf {
    fs::create_dir_all(p).expect("mkdir");
    fs::set_permissions(p, fs::Permissions::from_mode(0o777)).expect("chmod");
    p.to_path_buf()
}

/// `n` files `PREFIXi` in `dir`, readable by all.
fn files(dir: &Path, prefix: &str, n: usize) {
    for i in 0..n {
        let p = dir.join(format!("{prefix}{i}"));
        fs::write(&p, b"x").expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).expect("chmod");
    }
}

/// Python that opens (read-only) and closes `n` files `DIR/PREFIXi`.
fn opens(dir: &Path, prefix: &str, n: usize) -> String {
    format!(
        "for i in range({n}):\n    os.close(os.open('{}/{prefix}%d' % i, os.O_RDONLY))\n",
        dir.display()
    )
}

/// Python that tries to open `n` missing files `DIR/PREFIXi` (each fails, ENOENT).
fn failed_opens(dir: &Path, prefix: &str, n: usize) -> String {
    format!(
        "for i in range({n}):\n    try:\n        os.open('{}/{prefix}%d' % i, os.O_RDONLY)\n    except FileNotFoundError:\n        pass\n",
        dir.display()
    )
}

/// A daemon for `families` with the configuration `text` (in `dir`).
fn daemon_with(tag: &str, families: &str, dir: &Path, text: &str) -> Daemon {
    let cfg = config(dir, text);
    Daemon::start(
        tag,
        &["--only", families, "--config", cfg.to_str().expect("utf8")],
    )
}

/// A configuration file the daemon trusts (root's, 0600).
fn config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("ringwarden.toml");
    fs::write(&p, text).expect("write config");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

#[test]
fn include_path_keeps_only_opens_under_the_prefix() {
    const N: usize = 40;
    const M: usize = 25;
    const K: usize = 7;
    let dir = temp_dir("filter-include-path");
    let keep = open_dir(&dir.join("keep"));
    let other = open_dir(&dir.join("other"));
    files(&keep, "f", N);
    files(&other, "g", M);
    let prefix = format!("{}/", keep.display());
    let d = Daemon::start(
        "filter-include-path",
        &["--only", "file", "--include-path", &prefix],
    );
    let uid = test_uid(1);
    let work = [
        opens(&keep, "f", N),
        opens(&other, "g", M),
        failed_opens(&keep, "missing", K),
        failed_opens(&other, "missing", K),
    ]
    .concat();
    let mut w = Worker::spawn(uid, "", &work);
    let filtered = filtered_during(&d, &mut w, "file", uid);
    let pid = w.pid();
    w.finish();
    let f = d.stop();
    f.assert_exact();
    let ev = opens_under(&f, pid, &dir);
    // Kept: the N opens under the prefix, judged by the path the kernel resolved, and the
    // K failed ones under it, judged by the absolute path given (no file to resolve).
    let ok: Vec<_> = ev.iter().filter(|e| e["ret"].as_i64() >= Some(0)).collect();
    assert_eq!(ok.len(), N, "opens under {prefix}: {ev:?}");
    for e in &ok {
        assert!(
            e["resolved_path"]
                .as_str()
                .unwrap_or("")
                .starts_with(&prefix),
            "{e}"
        );
    }
    assert_eq!(ev.len() - ok.len(), K, "failed opens under {prefix}");
    // Left out: the M opens elsewhere and the K failed ones elsewhere; not one more.
    assert_eq!(filtered, (M + K) as u64, "filtered for uid {uid}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn exclude_path_and_only_writes() {
    const N: usize = 30;
    const M: usize = 20;
    const P: usize = 15;
    let dir = temp_dir("filter-exclude-path");
    let keep = open_dir(&dir.join("keep"));
    let skip = open_dir(&dir.join("skip"));
    files(&keep, "r", M);
    let d = daemon_with(
        "filter-exclude-path",
        "file",
        &dir,
        &format!(
            "[filter.file]\nexclude_path = [\"{}/\"]\nonly_writes = true\n",
            skip.display()
        ),
    );
    let uid = test_uid(2);
    let write = |dir: &Path, n: usize| {
        format!(
            "for i in range({n}):\n    os.close(os.open('{}/w%d' % i, os.O_WRONLY | os.O_CREAT, 0o644))\n",
            dir.display()
        )
    };
    let work = [write(&keep, N), opens(&keep, "r", M), write(&skip, P)].concat();
    let mut w = Worker::spawn(uid, "", &work);
    let filtered = filtered_during(&d, &mut w, "file", uid);
    let pid = w.pid();
    w.finish();
    let f = d.stop();
    f.assert_exact();
    let ev = opens_under(&f, pid, &dir);
    assert_eq!(ev.len(), N, "writes outside the excluded prefix: {ev:?}");
    for e in &ev {
        assert!(
            e["resolved_path"]
                .as_str()
                .unwrap_or("")
                .starts_with(&format!("{}/w", keep.display())),
            "{e}"
        );
    }
    // M read-only opens (only_writes) and P writes under the excluded prefix.
    assert_eq!(filtered, (M + P) as u64, "filtered for uid {uid}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn comm_and_uid_rules() {
    const N: usize = 20;
    let dir = temp_dir("filter-comm-uid");
    let files_dir = open_dir(&dir.join("files"));
    files(&files_dir, "f", N);
    let (u_comm, u_excluded, u_kept) = (test_uid(3), test_uid(4), test_uid(5));
    let d = daemon_with(
        "filter-comm-uid",
        "file",
        &dir,
        &format!("[filter]\nexclude_comm = [\"rwf-x*\"]\nexclude_uid = [{u_excluded}]\n"),
    );
    let work = opens(&files_dir, "f", N);
    // PR_SET_NAME (15): the name the kernel keeps, which the rule matches by prefix.
    let rename = "import ctypes\nctypes.CDLL(None).prctl(15, b'rwf-xa', 0, 0, 0)";
    let mut by_comm = Worker::spawn(u_comm, rename, &work);
    let mut by_uid = Worker::spawn(u_excluded, "", &work);
    let mut kept = Worker::spawn(u_kept, "", &work);
    let f_comm = filtered_during(&d, &mut by_comm, "file", u_comm);
    let f_uid = filtered_during(&d, &mut by_uid, "file", u_excluded);
    let f_kept = filtered_during(&d, &mut kept, "file", u_kept);
    let pids = [by_comm.pid(), by_uid.pid(), kept.pid()];
    by_comm.finish();
    by_uid.finish();
    kept.finish();
    let f = d.stop();
    f.assert_exact();
    assert_eq!(
        opens_under(&f, pids[0], &dir).len(),
        0,
        "comm rwf-xa excluded"
    );
    assert_eq!(f_comm, N as u64);
    assert_eq!(
        opens_under(&f, pids[1], &dir).len(),
        0,
        "uid {u_excluded} excluded"
    );
    assert_eq!(f_uid, N as u64);
    assert_eq!(opens_under(&f, pids[2], &dir).len(), N, "uid {u_kept} kept");
    assert_eq!(f_kept, 0);
    let _ = fs::remove_dir_all(&dir);
}

/// The slot of rw_uid_loss_slots a uid's counts go to (bpf/filter.h, rw_loss_count).
fn loss_slot(uid: u32) -> u32 {
    uid.wrapping_mul(2_654_435_769) >> 24
}

/// Two uids whose counts would share a slot: the first one counted takes it, the other is
/// counted in the hash map, and each one's count is its own, exactly.
#[test]
fn uids_sharing_a_count_slot_are_counted_apart() {
    const N: usize = 20;
    const M: usize = 7;
    let dir = temp_dir("filter-loss-slot");
    let files_dir = open_dir(&dir.join("files"));
    files(&files_dir, "f", N);
    let first = test_uid(19);
    // Outside every test's window of uids (test_uid), unique to this process.
    let base = 3_500_000_000 + (std::process::id() % 100_000) * 1000;
    let second = (base..base + 1000)
        .find(|&u| loss_slot(u) == loss_slot(first))
        .expect("a uid with the same slot among 1000");
    let d = daemon_with(
        "filter-loss-slot",
        "file",
        &dir,
        &format!("[filter]\nexclude_uid = [{first}, {second}]\n"),
    );
    let mut a = Worker::spawn(first, "", &opens(&files_dir, "f", N));
    let mut b = Worker::spawn(second, "", &opens(&files_dir, "f", M));
    let f_a = filtered_during(&d, &mut a, "file", first);
    let f_b = filtered_during(&d, &mut b, "file", second);
    a.finish();
    b.finish();
    let f = d.stop();
    f.assert_exact();
    assert_eq!(f_a, N as u64, "uid {first} (holds the slot)");
    assert_eq!(f_b, M as u64, "uid {second} (counted in the hash map)");
    let _ = fs::remove_dir_all(&dir);
}

/// --include-uid: a child run as uid 65534 is left out, one run as the included uid kept.
#[test]
fn include_uid_leaves_out_nobody() {
    const N: usize = 20;
    let dir = temp_dir("filter-include-uid");
    let files_dir = open_dir(&dir.join("files"));
    files(&files_dir, "f", N);
    let uid = test_uid(6);
    let d = Daemon::start(
        "filter-include-uid",
        &[
            "--only",
            "file,process",
            "--include-uid",
            &format!("{}-{}", uid, uid + 1),
        ],
    );
    let work = opens(&files_dir, "f", N);
    let mut nobody = Worker::spawn(65534, "", &work);
    let mut kept = Worker::spawn(uid, "", &work);
    let f_nobody = filtered_during(&d, &mut nobody, "file", 65534);
    let f_kept = filtered_during(&d, &mut kept, "file", uid);
    let pids = [nobody.pid(), kept.pid()];
    nobody.finish();
    kept.finish();
    let f = d.stop();
    f.assert_exact();
    assert_eq!(opens_under(&f, pids[0], &dir).len(), 0);
    assert_eq!(f_nobody, N as u64, "uid 65534's opens filtered");
    assert_eq!(opens_under(&f, pids[1], &dir).len(), N);
    assert_eq!(f_kept, 0);
    // The worker's exit is a process event of an included uid; 65534's is not.
    assert_eq!(events_of(&f, "exit", pids[1]).len(), 1);
    assert_eq!(events_of(&f, "exit", pids[0]).len(), 0);
    let _ = fs::remove_dir_all(&dir);
}

/// A cgroup directory removed at the end, also when the test fails.
struct Cgroup(PathBuf);

impl Cgroup {
    fn create(p: PathBuf) -> Cgroup {
        fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        Cgroup(p)
    }

    fn enter(&self, pid: u64) {
        fs::write(self.0.join("cgroup.procs"), pid.to_string()).expect("move into the cgroup");
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let t = Instant::now();
        while fs::remove_dir(&self.0).is_err() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn include_cgroup_keeps_the_cgroup_and_children_made_later() {
    const N: usize = 20;
    let dir = temp_dir("filter-cgroup");
    let files_dir = open_dir(&dir.join("files"));
    files(&files_dir, "f", N);
    let name = format!("ringwarden-filter-{}", std::process::id());
    let top = Cgroup::create(common::cgroup2_root().join(&name));
    let d = Daemon::start(
        "filter-cgroup",
        &["--only", "file", "--include-cgroup", &format!("/{name}")],
    );
    // Made after the daemon started: judged by its path when its first event comes.
    let child = Cgroup::create(top.0.join("later"));
    let (u_top, u_child, u_out) = (test_uid(7), test_uid(8), test_uid(9));
    let work = opens(&files_dir, "f", N);
    let mut in_top = Worker::spawn(u_top, "", &work);
    let mut in_child = Worker::spawn(u_child, "", &work);
    let mut outside = Worker::spawn(u_out, "", &work);
    top.enter(in_top.pid());
    child.enter(in_child.pid());
    let f_top = filtered_during(&d, &mut in_top, "file", u_top);
    let f_child = filtered_during(&d, &mut in_child, "file", u_child);
    let f_out = filtered_during(&d, &mut outside, "file", u_out);
    let pids = [in_top.pid(), in_child.pid(), outside.pid()];
    in_top.finish();
    in_child.finish();
    outside.finish();
    let f = d.stop();
    f.assert_exact();
    assert_eq!(opens_under(&f, pids[0], &dir).len(), N, "in /{name}");
    assert_eq!(f_top, 0);
    assert_eq!(opens_under(&f, pids[1], &dir).len(), N, "in /{name}/later");
    assert_eq!(f_child, 0);
    assert_eq!(opens_under(&f, pids[2], &dir).len(), 0, "outside");
    assert_eq!(f_out, N as u64);
    drop(child);
    drop(top);
    let _ = fs::remove_dir_all(&dir);
}

/// A cgroup deeper than the levels the kernel names is judged from the root down: a level
/// far below the top named like an excluded cgroup does not make it that cgroup (a user
/// with a delegated subtree could otherwise pass for any cgroup), and the include rule for
/// its top still holds.
#[test]
fn deep_cgroups_are_judged_from_the_root() {
    const N: usize = 12;
    let dir = temp_dir("filter-deep-cgroup");
    let files_dir = open_dir(&dir.join("files"));
    files(&files_dir, "f", N);
    let top = format!("ringwarden-filter-deep-{}", std::process::id());
    let spoof = format!("ringwarden-filter-spoof-{}", std::process::id());
    // /top/l2/l3/l4/l5/spoof/l7/.../l21: 21 levels, the spoof at the 6th (the 16th from the
    // bottom).
    let mut chain = vec![Cgroup::create(common::cgroup2_root().join(&top))];
    for level in 2..=21 {
        let name = if level == 6 {
            spoof.clone()
        } else {
            format!("l{level}")
        };
        let next = chain.last().expect("a level").0.join(name);
        chain.push(Cgroup::create(next));
    }
    let d = Daemon::start(
        "filter-deep-cgroup",
        &[
            "--only",
            "file",
            "--include-cgroup",
            &format!("/{top}"),
            "--config",
            config(
                &dir,
                &format!("[filter]\nexclude_cgroup = [\"/{spoof}\"]\n"),
            )
            .to_str()
            .expect("utf8"),
        ],
    );
    let uid = test_uid(18);
    let mut w = Worker::spawn(uid, "", &opens(&files_dir, "f", N));
    chain.last().expect("the leaf").enter(w.pid());
    let filtered = filtered_during(&d, &mut w, "file", uid);
    let pid = w.pid();
    w.finish();
    let f = d.stop();
    f.assert_exact();
    assert_eq!(
        opens_under(&f, pid, &dir).len(),
        N,
        "kept: under /{top}, not /{spoof}"
    );
    assert_eq!(filtered, 0);
    while let Some(c) = chain.pop() {
        drop(c);
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn include_pid_tree_follows_forks_to_grandchildren() {
    const N: usize = 10;
    let dir = temp_dir("filter-tree");
    let files_dir = open_dir(&dir.join("files"));
    files(&files_dir, "f", N);
    let (u_tree, u_out) = (test_uid(10), test_uid(11));
    let one = opens(&files_dir, "f", N).replace('\n', "\n    ");
    // The root forks a child that forks a grandchild and exits at once (the grandchild
    // is reparented: still in the tree); each of the three opens N files.
    let work = format!(
        "def opens():\n    {one}\npid = os.fork()\nif pid == 0:\n    g = os.fork()\n    if g == 0:\n        time.sleep(0.2)\n        opens()\n        os._exit(0)\n    opens()\n    os._exit(0)\nos.waitpid(pid, 0)\nopens()\ntime.sleep(0.5)\n"
    );
    let mut root = Worker::spawn(u_tree, "", &work);
    let cfg = config(
        &dir,
        &format!("[filter]\ninclude_pid_tree = [{}]\n", root.pid()),
    );
    let d = Daemon::start(
        "filter-tree",
        &[
            "--only",
            "file,process",
            "--config",
            cfg.to_str().expect("utf8"),
        ],
    );
    let mut outside = Worker::spawn(u_out, "", &opens(&files_dir, "f", N));
    let f_tree = filtered_during(&d, &mut root, "file", u_tree);
    let f_out = filtered_during(&d, &mut outside, "file", u_out);
    let (root_pid, out_pid) = (root.pid(), outside.pid());
    root.finish();
    outside.finish();
    let f = d.stop();
    f.assert_exact();
    let forks: Vec<u64> = events_of(&f, "fork", root_pid)
        .iter()
        .map(|e| u(&e["child_pid"]))
        .collect();
    assert_eq!(forks.len(), 1, "the root's fork");
    let grand: Vec<u64> = events_of(&f, "fork", forks[0])
        .iter()
        .map(|e| u(&e["child_pid"]))
        .collect();
    assert_eq!(grand.len(), 1, "the child's fork");
    for pid in [root_pid, forks[0], grand[0]] {
        assert_eq!(
            opens_under(&f, pid, &dir).len(),
            N,
            "opens of {pid} in the tree"
        );
        // Its exit too: the process is still in the tree when its exit is judged.
        assert_eq!(events_of(&f, "exit", pid).len(), 1, "exit of {pid}");
    }
    assert_eq!(f_tree, 0);
    assert_eq!(opens_under(&f, out_pid, &dir).len(), 0);
    assert_eq!(f_out, N as u64);
    let _ = fs::remove_dir_all(&dir);
}

/// A port free right now on 127.0.0.1 (and ::1).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Python that makes `n` connections to `host`:`port` on its own listener: connect,
/// accept, the client closes, then the server; waits for both sockets to be closed.
fn connections(host: &str, port: u16, n: usize) -> String {
    let fam = if host.contains(':') {
        "socket.AF_INET6"
    } else {
        "socket.AF_INET"
    };
    format!(
        "ls = socket.socket({fam}, socket.SOCK_STREAM)\nls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\nls.bind(('{host}', {port}))\nls.listen(64)\nfor i in range({n}):\n    c = socket.socket({fam}, socket.SOCK_STREAM)\n    c.connect(('{host}', {port}))\n    s, _ = ls.accept()\n    c.close()\n    s.recv(1)\n    s.close()\nls.close()\ntime.sleep(0.3)\n"
    )
}

#[test]
fn port_and_address_rules() {
    const N: usize = 6;
    const M: usize = 5;
    let dir = temp_dir("filter-net");
    let (p_in, p_ex) = (free_port(), free_port());
    let d = daemon_with(
        "filter-net",
        "network",
        &dir,
        &format!("[filter.network]\nexclude_port = [{p_ex}]\ninclude_cidr = [\"127.0.0.0/8\"]\n"),
    );
    let uid = test_uid(12);
    // Kept: 127.0.0.1:p_in. Left out: the excluded port, and ::1 (outside the range).
    let work = [
        connections("127.0.0.1", p_in, N),
        connections("127.0.0.1", p_ex, M),
        connections("::1", p_in, M),
    ]
    .concat();
    let mut w = Worker::spawn(uid, "", &work);
    let filtered = filtered_during(&d, &mut w, "network", uid);
    let pid = w.pid();
    w.finish();
    let f = d.stop();
    f.assert_exact();
    let connects = events_of(&f, "connect", pid);
    assert_eq!(connects.len(), N, "{connects:?}");
    for e in &connects {
        assert_eq!(u(&e["dport"]), u64::from(p_in), "{e}");
        assert_eq!(e["daddr"], "127.0.0.1", "{e}");
    }
    assert_eq!(events_of(&f, "accept", pid).len(), N);
    assert_eq!(
        events_of(&f, "close", pid).len(),
        2 * N,
        "both ends of each"
    );
    // Each listener is a bind and a listen, which have no peer: the address rule does
    // not apply to them, the port rule does.
    for ty in ["bind", "listen"] {
        let kept = events_of(&f, ty, pid);
        assert_eq!(kept.len(), 2, "{ty}: {kept:?}");
        assert!(
            kept.iter().all(|e| u(&e["sport"]) == u64::from(p_in)),
            "{kept:?}"
        );
    }
    // Each connection left out is four events: connect, accept and two closes; the
    // listener on the excluded port two.
    assert_eq!(filtered, 4 * 2 * M as u64 + 2, "filtered for uid {uid}");
    let _ = fs::remove_dir_all(&dir);
}

/// A SIGHUP that changes the rules while a worker opens files: every open is either
/// reported or counted as filtered, never both and never neither, and the new rules
/// hold from the reload on.
#[test]
fn sighup_switches_rules_whole_under_load() {
    const N: usize = 20_000;
    let dir = temp_dir("filter-sighup");
    let a = open_dir(&dir.join("a"));
    let b = open_dir(&dir.join("b"));
    files(&a, "f", 1);
    files(&b, "f", 1);
    let rules = |p: &Path| format!("[filter.file]\ninclude_path = [\"{}/\"]\n", p.display());
    let cfg = config(&dir, &rules(&a));
    let d = Daemon::start(
        "filter-sighup",
        &[
            "--only",
            "file",
            "--ring-size",
            "file=64MiB",
            "--config",
            cfg.to_str().expect("utf8"),
        ],
    );
    let uid = test_uid(13);
    // Alternates between a/f0 and b/f0: under either rule set half are kept.
    let work = format!(
        "for i in range({N}):\n    os.close(os.open('{}/f0' if i % 2 else '{}/f0', os.O_RDONLY))\n",
        a.display(),
        b.display()
    );
    let mut w = Worker::spawn(uid, "", &work);
    let s = next_stats(&d);
    let before = filtered_of(&s, "file", uid) + lost_of(&s, "file", uid, "dropped");
    let pid = w.pid();
    let stdin = w.stdin.as_mut().expect("stdin");
    stdin.write_all(b"go\n").expect("go");
    stdin.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(100));
    config(&dir, &rules(&b));
    d.signal(libc::SIGHUP);
    w.expect("done");
    let s = next_stats(&d);
    let after = filtered_of(&s, "file", uid) + lost_of(&s, "file", uid, "dropped");
    w.finish();
    d.wait_for_log("SIGHUP: filters now", Duration::from_secs(5));
    let f = d.stop();
    f.assert_exact();
    let ev = opens_under(&f, pid, &dir);
    assert_eq!(
        ev.len() as u64 + (after - before),
        N as u64,
        "reported + filtered + dropped = opens made"
    );
    // Once the new rules hold, only b is reported: the reported a-opens come first.
    let a_prefix = format!("{}/", a.display());
    let is_a = |e: &Value| {
        e["resolved_path"]
            .as_str()
            .unwrap_or("")
            .starts_with(&a_prefix)
    };
    let last_a = ev.iter().rposition(|e| is_a(e));
    let first_b = ev.iter().position(|e| !is_a(e));
    if let (Some(la), Some(fb)) = (last_a, first_b) {
        assert!(
            la < fb,
            "an a-open reported after a b-open: the rules were mixed"
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn bad_rules_exit_78_at_start_and_keep_the_running_ones_on_sighup() {
    let dir = temp_dir("filter-bad");
    for (text, key) in [
        (
            "[filter.network]\ninclude_cidr = [\"10.0.0.0/33\"]\n",
            "filter.network.include_cidr",
        ),
        (
            "[filter.file]\ninclude_path = [\"\"]\n",
            "filter.file.include_path",
        ),
        ("[filter]\ninclude_uid = [\"9-3\"]\n", "filter.include_uid"),
    ] {
        let cfg = config(&dir, text);
        let (code, _, err) = run_cli(&["run", "--config", cfg.to_str().expect("utf8")]);
        assert_eq!(code, 78, "{err}");
        assert!(err.contains(key), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    let (code, _, err) = run_cli(&["run", "--include-path", "etc/"]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("--include-path") && err.contains("absolute"),
        "{err}"
    );

    // Running with a rule; a SIGHUP with a bad file changes nothing.
    let files_dir = open_dir(&dir.join("files"));
    files(&files_dir, "f", 10);
    let uid = test_uid(14);
    let d = daemon_with(
        "filter-bad",
        "file",
        &dir,
        &format!("[filter]\nexclude_uid = [{uid}]\n"),
    );
    config(&dir, "[filter]\nexclude_uid = [\"x\"]\n");
    d.signal(libc::SIGHUP);
    d.wait_for_log("keeping the running configuration", Duration::from_secs(5));
    let mut w = Worker::spawn(uid, "", &opens(&files_dir, "f", 10));
    let filtered = filtered_during(&d, &mut w, "file", uid);
    let pid = w.pid();
    w.finish();
    let f = d.stop();
    f.assert_exact();
    assert_eq!(opens_under(&f, pid, &files_dir).len(), 0);
    assert_eq!(filtered, 10);
    let _ = fs::remove_dir_all(&dir);
}

/// The task rules leave anomaly events alone unless `families` names anomaly.
#[test]
fn anomaly_is_filtered_only_when_named() {
    let dir = temp_dir("filter-anomaly");
    let bin_dir = open_dir(&dir.join("bin"));
    let exe = bin_dir.join("rwf-true");
    fs::copy("/bin/true", &exe).expect("copy /bin/true");
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).expect("chmod");
    let uid = test_uid(15);
    let run = format!("os.spawnv(os.P_WAIT, '{}', ['rwf-true'])\n", exe.display());
    for (families, kept) in [("", 1), ("families = [\"file\", \"anomaly\"]\n", 0)] {
        let cfg = config(
            &dir,
            &format!("[filter]\n{families}exclude_uid = [{uid}]\n"),
        );
        let d = Daemon::start(
            "filter-anomaly",
            &[
                "--only",
                "anomaly,process",
                "--config",
                cfg.to_str().expect("utf8"),
            ],
        );
        let mut w = Worker::spawn(uid, "", &run);
        let filtered = filtered_during(&d, &mut w, "anomaly", uid);
        let pid = w.pid();
        w.finish();
        let f = d.stop();
        f.assert_exact();
        let child: Vec<u64> = f
            .of_type("anomaly")
            .filter(|e| e["rule"] == "exec_from_tmp" && u(&e["ppid"]) == pid)
            .map(|e| u(&e["pid"]))
            .collect();
        assert_eq!(child.len(), kept, "families {families:?}");
        assert_eq!(filtered, 1 - kept as u64);
        if kept == 1 {
            // The process family is filtered by default: the uid is excluded.
            assert_eq!(events_of(&f, "exec", child[0]).len(), 0);
        }
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Rate limits: a bucket per uid and one for the family, with the other uids filtered
/// out so that only the workers' events reach the family's bucket. The workers start
/// before the daemon (their interpreter's start-up takes no tokens), then each makes a
/// burst of K opens: exactly the counts the buckets allow are reported, the rest are
/// counted as rate limited, and each bucket says so in one throttle start/stop pair
/// whose `suppressed` is what it refused.
#[test]
fn rate_limits_let_exactly_the_bucket_through() {
    const K: u64 = 250;
    let dir = temp_dir("filter-rate");
    let files_dir = open_dir(&dir.join("files"));
    files(&files_dir, "f", K as usize);
    let (u1, u2) = (test_uid(16), test_uid(17));
    let work = opens(&files_dir, "f", K as usize);
    let mut w1 = Worker::spawn(u1, "", &work);
    let mut w2 = Worker::spawn(u2, "", &work);
    // Per hour: no token comes back during the test.
    let d = daemon_with(
        "filter-rate",
        "file",
        &dir,
        &format!(
            "[filter]\ninclude_uid = [{u1}, {u2}]\n[rate_limit]\nper_uid = \"100/h\"\nfile = \"150/h\"\n"
        ),
    );
    w1.go();
    w2.go();
    let (p1, p2) = (w1.pid(), w2.pid());
    w1.finish();
    w2.finish();
    let f = d.stop();
    f.assert_exact();
    let of_uid = |uid: u32| {
        f.of_type("open")
            .filter(|e| u(&e["uid"]) == u64::from(uid))
            .count() as u64
    };
    // u1: its own bucket lets 100 through (the family's has 150). u2: its bucket lets 100
    // reach the family's, which has 50 left.
    assert_eq!(of_uid(u1), 100);
    assert_eq!(of_uid(u2), 50);
    assert_eq!(opens_under(&f, p1, &dir).len(), 100);
    assert_eq!(opens_under(&f, p2, &dir).len(), 50);
    let limited = |uid| lost_of(&f.stats, "file", uid, "rate_limited");
    assert_eq!(limited(u1), K - 100);
    assert_eq!(limited(u2), K - 50);
    assert_eq!(u(&f.ring("file")["rate_limited"]), 2 * K - 150);
    let pairs = |scope: &str, uid: Option<u32>| {
        let of = |state: &str| -> Vec<&Value> {
            f.of_type("throttle")
                .filter(|e| {
                    e["ring"] == "file"
                        && e["scope"] == scope
                        && e["state"] == state
                        && e["uid"].as_u64() == uid.map(u64::from)
                })
                .collect()
        };
        let (start, stop) = (of("start"), of("stop"));
        assert_eq!(
            (start.len(), stop.len()),
            (1, 1),
            "{scope} {uid:?}: {start:?} {stop:?}"
        );
        u(&stop[0]["suppressed"])
    };
    assert_eq!(pairs("uid", Some(u1)), K - 100);
    assert_eq!(pairs("uid", Some(u2)), K - 100);
    assert_eq!(pairs("family", None), 50);
    assert_eq!(
        f.of_type("throttle").count(),
        6,
        "no other bucket refused anything"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// A change named by a path is never judged by it (the path is the process's word:
/// `/tmp/../etc/x` or a symlink says anything): two chmods by path under an excluded
/// prefix, one spelled through `..`, are reported; a change on an fd, whose file the
/// kernel names, is judged like an open.
#[test]
fn changes_are_judged_by_path_only_when_the_kernel_names_the_file() {
    let dir = temp_dir("filter-change");
    let skip = open_dir(&dir.join("skip"));
    files(&skip, "c", 3);
    let d = daemon_with(
        "filter-change",
        "file",
        &dir,
        &format!("[filter.file]\nexclude_path = [\"{}/\"]\n", skip.display()),
    );
    let uid = test_uid(20);
    let s = skip.display();
    // Not the files' owner: the chmods fail (EPERM) and are still changes attempted.
    let work = format!(
        "fd = os.open('{s}/c0', os.O_RDONLY)\ntry:\n    os.fchmod(fd, 0o600)\nexcept OSError:\n    pass\nfor p in ('{s}/c1', '{s}/../skip/c2'):\n    try:\n        os.chmod(p, 0o600)\n    except OSError:\n        pass\n"
    );
    let mut w = Worker::spawn(uid, "", &work);
    let filtered = filtered_during(&d, &mut w, "file", uid);
    let pid = w.pid();
    w.finish();
    let f = d.stop();
    f.assert_exact();
    let chmods = events_of(&f, "chmod", pid);
    let paths: Vec<&str> = chmods
        .iter()
        .map(|e| e["path"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        paths,
        [format!("{s}/c1"), format!("{s}/../skip/c2")],
        "{chmods:?}"
    );
    for e in &chmods {
        assert_eq!(i(&e["ret"]), -i64::from(libc::EPERM), "{e}");
    }
    // The open of c0 and the fchmod of its fd: both named by the kernel, both excluded.
    assert_eq!(filtered, 2, "filtered for uid {uid}");
    let _ = fs::remove_dir_all(&dir);
}
