//! Process context on every event (issue 12), against the real kernel and /proc: which
//! program, from which parent chain, for processes older than the daemon too; a table at
//! its bound; a filtered exec that still keeps the chain true; `--no-context`.
mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::symlink;
use std::process::{Command, Stdio};

use common::{Daemon, Finished, temp_dir, u};
use serde_json::Value;

/// The path the kernel names for `p` (symlinks resolved), as `exe` says it.
fn real(p: &str) -> String {
    fs::canonicalize(p)
        .expect("canonicalize")
        .to_string_lossy()
        .into_owned()
}

/// The open events of a path that does not exist (ret -ENOENT): a marker no other
/// process opens.
fn opens_of<'a>(f: &'a Finished, marker: &'a str) -> Vec<&'a Value> {
    f.of_type("open")
        .filter(|e| e["path"].as_str() == Some(marker))
        .collect()
}

/// A daemon on `args` with a file ring room for every test's burst here at once: the
/// tests run in parallel and each daemon sees every process's opens (200 children of the
/// bound test's at once), and the suite runs a debug build, which renders several times
/// slower than the release.
fn daemon(tag: &str, args: &[&str]) -> Daemon {
    let mut a = args.to_vec();
    a.extend(["--ring-size", "file=16MiB"]);
    Daemon::start(tag, &a)
}

/// A config file with `[context]` set as `body` says.
fn config(tag: &str, body: &str) -> String {
    let dir = temp_dir(tag);
    let p = dir.join("ringwarden.toml");
    fs::write(&p, format!("[context]\n{body}\n")).expect("write config");
    p.to_string_lossy().into_owned()
}

/// A process started before the daemon opens a file after it is ready: its event has
/// its exe and parent from the /proc seed (no exec or fork of it was ever seen).
#[test]
fn a_process_older_than_the_daemon_is_known_from_proc() {
    let marker = format!("/nonexistent-rw-ctx-seed-{}", std::process::id());
    let mut child = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys\nsys.stdin.readline()\ntry:\n open(sys.argv[1])\nexcept OSError:\n pass\n",
            &marker,
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let d = daemon("ctx-seed", &["--only", "file"]);
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "go").expect("tell it to open");
    assert!(child.wait().expect("wait").success());
    let f = d.stop();
    f.assert_exact();
    let ev = opens_of(&f, &marker);
    assert_eq!(ev.len(), 1, "one open of the marker");
    let e = ev[0];
    assert_eq!(u(&e["pid"]), u64::from(child.id()));
    assert_eq!(
        e["exe"].as_str(),
        Some(real("/usr/bin/python3").as_str()),
        "{e}"
    );
    let me = std::env::current_exe().expect("current_exe");
    let a = &e["ancestors"][0];
    assert_eq!(u(&a["pid"]), u64::from(std::process::id()), "{e}");
    assert_eq!(a["exe"].as_str(), me.to_str(), "{e}");
    assert!(e.get("context").is_none(), "{e}");
    assert_eq!(e["user"], "root");
    // The process family ran for the context alone: read, never written.
    let p = f.ring("process");
    assert_eq!(u(&p["context_only"]), u(&p["received"]), "{p}");
    assert_eq!(f.read_from("process").count(), 0);
}

/// `sh` five levels deep, each level a fork and exec of its own, the last running `cat`
/// on a marker: the marker's event lists the five shells, nearest first, then this test
/// process, each with its exe and comm.
#[test]
fn ancestors_list_a_fork_exec_chain_of_depth_five() {
    let dir = temp_dir("ctx-chain");
    let marker = format!("/nonexistent-rw-ctx-chain-{}", std::process::id());
    let script = dir.join("chain.sh");
    let pids = dir.join("pids");
    fs::write(
        &script,
        "echo $$ >> \"$2\"\nif [ \"$1\" -gt 1 ]; then /bin/sh \"$0\" $(($1 - 1)) \"$2\" \"$3\"; \
         else /bin/cat \"$3\"; fi\ntrue\n",
    )
    .expect("write script");
    let cfg = config("ctx-chain-cfg", "ancestors = 6");
    let d = daemon("ctx-chain", &["--only", "file", "--config", &cfg]);
    let st = Command::new("/bin/sh")
        .arg(&script)
        .arg("5")
        .arg(&pids)
        .arg(&marker)
        .stderr(Stdio::null())
        .status()
        .expect("run chain");
    assert!(st.success());
    let f = d.stop();
    f.assert_exact();
    let chain: Vec<u64> = fs::read_to_string(&pids)
        .expect("pids")
        .lines()
        .map(|l| l.trim().parse().expect("pid"))
        .collect();
    assert_eq!(chain.len(), 5);
    let ev = opens_of(&f, &marker);
    assert_eq!(ev.len(), 1, "one open of the marker");
    let e = ev[0];
    assert_eq!(e["exe"].as_str(), Some(real("/bin/cat").as_str()), "{e}");
    let got: Vec<(u64, String, String)> = e["ancestors"]
        .as_array()
        .expect("ancestors")
        .iter()
        .map(|a| {
            (
                u(&a["pid"]),
                a["exe"].as_str().unwrap_or("?").to_string(),
                a["comm"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    let sh = real("/bin/sh");
    let mut want: Vec<(u64, String, String)> = chain
        .iter()
        .rev()
        .map(|&p| (p, sh.clone(), "sh".to_string()))
        .collect();
    let me = std::env::current_exe().expect("current_exe");
    let comm = fs::read_to_string("/proc/self/comm").expect("comm");
    want.push((
        u64::from(std::process::id()),
        me.to_string_lossy().into_owned(),
        comm.trim().to_string(),
    ));
    assert_eq!(got, want, "{e}");
}

/// An exec, fork and exit the filters reject still reach the table (marked for it
/// alone), so the child's events name what the shell really ran, not what its parent ran
/// before the exec.
#[test]
fn a_filtered_exec_still_keeps_the_chain_true() {
    let dir = temp_dir("ctx-filtered");
    let name = format!("rwflt{}", std::process::id() % 1_000_000);
    let shell = dir.join(&name);
    symlink("/bin/sh", &shell).expect("symlink");
    let marker = format!("/nonexistent-rw-ctx-filtered-{}", std::process::id());
    let d = daemon(
        "ctx-filtered",
        &["--only", "process,file", "--exclude-comm", &name],
    );
    let mut c = Command::new(&shell)
        .args(["-c", &format!("/bin/cat {marker} 2>/dev/null; true")])
        .spawn()
        .expect("spawn");
    let sh_pid = u64::from(c.id());
    c.wait().expect("wait");
    let f = d.stop();
    f.assert_exact();
    for t in ["exec", "fork", "exit"] {
        assert!(
            f.of_type(t).all(|e| u(&e["pid"]) != sh_pid),
            "the filtered {t} is not written"
        );
    }
    // The shell's exec, its fork of cat and its exit: each filtered, each still sent for
    // the table (a missed fork or exit would leave a reused pid named as the old process).
    let p = f.ring("process");
    assert_eq!(u(&p["context_only"]), 3, "{p}");
    let ev = opens_of(&f, &marker);
    assert_eq!(ev.len(), 1);
    let a = &ev[0]["ancestors"][0];
    assert_eq!(u(&a["pid"]), sh_pid, "{}", ev[0]);
    assert_eq!(
        a["exe"].as_str(),
        Some(real("/bin/sh").as_str()),
        "{}",
        ev[0]
    );
    assert_eq!(a["comm"].as_str(), Some(name.as_str()), "{}", ev[0]);
}

/// With room for 64 processes and 200 children alive at once, the table evicts (at least
/// the 136 that cannot fit, counted in the stats and the metrics) and every child's
/// event is still there, exactly once, with its exe read again on the miss.
#[test]
fn a_table_at_its_bound_evicts_counts_and_events_flow_exactly() {
    let cfg = config("ctx-bound-cfg", "max_processes = 64");
    let d = daemon("ctx-bound", &["--only", "file", "--config", &cfg]);
    let marker = format!("/nonexistent-rw-ctx-bound-{}", std::process::id());
    // Each child waits for a line, then opens the marker and exits: all 200 are alive
    // (and in the table, or evicted from it) before the first opens.
    let mut kids = Vec::new();
    for _ in 0..200 {
        // Without cargo's LD_LIBRARY_PATH, each cat probes a few libc paths, not dozens.
        let c = Command::new("/bin/sh")
            .args([
                "-c",
                &format!("read x; /bin/cat {marker} 2>/dev/null; true"),
            ])
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn");
        kids.push(c);
    }
    // One at a time: a burst of 200 programs starting at once would only test the
    // ring's size.
    let mut sh = std::collections::HashSet::new();
    for mut c in kids {
        writeln!(c.stdin.take().expect("stdin"), "go").expect("go");
        sh.insert(u64::from(c.id()));
        c.wait().expect("wait");
    }
    let f = d.stop();
    f.assert_exact();
    let ev = opens_of(&f, &marker);
    assert_eq!(ev.len(), 200, "one open per child");
    let cat = real("/bin/cat");
    for e in &ev {
        assert!(sh.contains(&u(&e["ppid"])), "{e}");
        // Known (from the exec record or a /proc read) or said to be unknown: never wrong.
        match e["exe"].as_str() {
            Some(x) => assert_eq!(x, cat, "{e}"),
            None => assert_eq!(e["context"], "unknown", "{e}"),
        }
    }
    let c = &f.stats["context"];
    assert!(u(&c["processes"]) <= 64, "{c}");
    assert!(u(&c["evictions"]["processes"]) >= 136, "{c}");
}

/// `--no-context`: no table, no process family behind the scenes, no context field.
#[test]
fn no_context_leaves_events_as_they_were() {
    let marker = format!("/nonexistent-rw-ctx-off-{}", std::process::id());
    let d = daemon("ctx-off", &["--only", "file", "--no-context"]);
    let st = Command::new("/bin/cat")
        .arg(&marker)
        .stderr(Stdio::null())
        .status()
        .expect("cat");
    assert!(!st.success());
    let f = d.stop();
    f.assert_exact();
    let ev = opens_of(&f, &marker);
    assert_eq!(ev.len(), 1);
    for k in ["exe", "ancestors", "user", "cgroup", "context"] {
        assert!(ev[0].get(k).is_none(), "{k}: {}", ev[0]);
    }
    assert!(f.stats["rings"].get("process").is_none(), "{}", f.stats);
    assert!(f.stats.get("context").is_none());
}

/// The log line of the seed, so a reader of the journal knows what context started
/// from.
#[test]
fn the_seed_is_logged() {
    let d = daemon("ctx-log", &["--only", "file"]);
    let f = d.stop();
    let line = BufReader::new(f.stderr.as_bytes())
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("context: "))
        .unwrap_or_default();
    assert!(line.contains("processes known from /proc"), "{line}");
}
