//! Process family against the real kernel: N children -> exactly N exec, exit and fork events.
mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;

use common::{Daemon, i, u};

#[test]
fn two_hundred_children_give_exact_exec_exit_fork() {
    let d = Daemon::start("process", &["--only", "process"]);
    let me = std::process::id() as u64;
    let pids = common::true_false_children(200, &["second arg"]);
    let f = d.stop();
    f.assert_exact();

    let mine = |e: &&serde_json::Value| pids.contains_key(&u(&e["pid"]));
    let execs: Vec<_> = f.of_type("exec").filter(mine).collect();
    let exits: Vec<_> = f.of_type("exit").filter(mine).collect();
    assert_eq!(execs.len(), 200, "exec events for our children");
    assert_eq!(exits.len(), 200, "exit events for our children");
    let mut seen = HashSet::new();
    for e in &execs {
        let pid = u(&e["pid"]);
        let (prog, n, _) = pids[&pid];
        assert!(seen.insert(pid), "one exec per child");
        assert_eq!(e["filename"], prog);
        assert_eq!(
            e["argv"],
            serde_json::json!([prog, format!("arg-{n}"), "second arg"])
        );
        assert_eq!(u(&e["argc"]), 3);
        assert_eq!(u(&e["ppid"]), me);
        assert_eq!(e["ring"], "process");
        assert!(
            e["ts"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z') && t.len() == 30)
        );
    }
    for e in &exits {
        let (_, _, code) = pids[&u(&e["pid"])];
        assert_eq!(i(&e["exit_code"]), i64::from(code));
        assert_eq!(u(&e["signal"]), 0);
    }
    let forks: Vec<_> = f
        .of_type("fork")
        .filter(|e| pids.contains_key(&u(&e["child_pid"])))
        .collect();
    assert_eq!(forks.len(), 200, "fork events naming our children");
    for e in forks {
        assert_eq!(u(&e["pid"]), me, "the parent of a fork is the test process");
    }
}

#[test]
fn killed_child_reports_its_signal() {
    let d = Daemon::start("process-signal", &["--only", "process"]);
    let mut c = Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let pid = c.id() as u64;
    // Let it exec before the kill so the exec event exists too.
    std::thread::sleep(std::time::Duration::from_millis(100));
    c.kill().expect("kill");
    c.wait().expect("wait");
    let f = d.stop();
    f.assert_exact();
    let exits: Vec<_> = f.of_type("exit").filter(|e| u(&e["pid"]) == pid).collect();
    assert_eq!(exits.len(), 1);
    assert_eq!(u(&exits[0]["signal"]), 9);
    assert!(u(&exits[0]["lifetime_ns"]) >= 100_000_000);
}

const RACE_THREADS: usize = 8;

/// With RW_EXIT_RACE_HELPER=1 (the test below runs this binary so): RACE_THREADS threads
/// (the test's thread and spawned ones) call exit_group(3) at the same moment, so several
/// threads of the process run through do_exit concurrently. libtest's main thread is
/// killed by the group exit.
#[test]
#[ignore = "helper process for concurrent_thread_exits_give_one_exit_per_process"]
fn exit_race_helper() {
    if std::env::var_os("RW_EXIT_RACE_HELPER").is_none() {
        return;
    }
    let go = std::sync::Arc::new(std::sync::Barrier::new(RACE_THREADS));
    let race = |go: std::sync::Arc<std::sync::Barrier>| {
        go.wait();
        // SAFETY: exit_group ends the process; nothing after it runs.
        unsafe { libc::syscall(libc::SYS_exit_group, 3) };
    };
    for _ in 1..RACE_THREADS {
        let go = go.clone();
        std::thread::spawn(move || race(go));
    }
    race(go);
    std::process::exit(97);
}

#[test]
fn concurrent_thread_exits_give_one_exit_per_process() {
    const PROCS: usize = 1000;
    let d = Daemon::start("process-exit-race", &["--only", "process"]);
    let exe = std::env::current_exe().expect("test binary");
    let mut pids = HashSet::new();
    // A few at a time: the process starts are what takes long.
    for _ in 0..PROCS / 4 {
        let kids: Vec<_> = (0..4)
            .map(|_| {
                Command::new(&exe)
                    .args(["--ignored", "--exact", "exit_race_helper"])
                    .env("RW_EXIT_RACE_HELPER", "1")
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("spawn helper")
            })
            .collect();
        for mut c in kids {
            pids.insert(u64::from(c.id()));
            assert_eq!(c.wait().expect("wait helper").code(), Some(3));
        }
    }
    let f = d.stop();
    f.assert_exact();
    let mut per_pid: HashMap<u64, usize> = HashMap::new();
    for e in f.of_type("exit").filter(|e| pids.contains(&u(&e["pid"]))) {
        *per_pid.entry(u(&e["pid"])).or_default() += 1;
        assert_eq!(i(&e["exit_code"]), 3, "{e}");
        assert_eq!(u(&e["signal"]), 0, "{e}");
    }
    let twice: Vec<_> = per_pid.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "processes with several exits: {twice:?}");
    assert_eq!(per_pid.len(), PROCS, "one exit event per process");
}

/// argv of exactly the buffer size is whole; one byte more is cut at the buffer size.
#[test]
fn argv_at_the_buffer_size() {
    const ARGS_LEN: usize = 1024;
    let d = Daemon::start("process-argv", &["--only", "process"]);
    let prog = "/bin/true";
    // argv bytes: "/bin/true\0" + arg + "\0".
    let fits = "a".repeat(ARGS_LEN - prog.len() - 2);
    let over = "b".repeat(ARGS_LEN - prog.len() - 1);
    let mut pids = HashMap::new();
    for arg in [&fits, &over] {
        let mut c = Command::new(prog).arg(arg).spawn().expect("spawn");
        pids.insert(u64::from(c.id()), arg.clone());
        assert!(c.wait().expect("wait").success());
    }
    let f = d.stop();
    f.assert_exact();
    let execs: Vec<_> = f
        .of_type("exec")
        .filter(|e| pids.contains_key(&u(&e["pid"])))
        .collect();
    assert_eq!(execs.len(), 2);
    for e in execs {
        let arg = &pids[&u(&e["pid"])];
        assert_eq!(u(&e["argc"]), 2);
        if *arg == fits {
            assert_eq!(e["argv"], serde_json::json!([prog, fits]), "{e}");
            assert_eq!(e["argv_truncated"], false, "{e}");
        } else {
            // The last byte kept is the argument's last: its NUL did not fit.
            assert_eq!(e["argv"], serde_json::json!([prog, over]), "{e}");
            assert_eq!(e["argv_truncated"], true, "{e}");
        }
    }
}

/// Runs as an unprivileged user: exec through a symlink named like a daemon with a lying
/// argv[0], a script (the kernel runs its interpreter), and a copy of a binary unlinked
/// before it is executed through /proc/self/fd. Prints one JSON line: the children's pids.
const EXE_LIES: &str = r#"
import json, os, shutil, sys
d = sys.argv[1]
out = {}
def run(key, path, argv):
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(path, argv)
        finally:
            os._exit(127)
    out[key] = pid
    os.waitpid(pid, 0)
run("symlink", d + "/sshd", ["/usr/sbin/sshd", "-D"])
run("script", d + "/job.sh", ["job.sh"])
fd = os.open(d + "/copy", os.O_RDONLY)
os.unlink(d + "/copy")
run("deleted", "/proc/self/fd/%d" % fd, ["copy"])
print(json.dumps(out), flush=True)
"#;

/// `exe` is the file the kernel executed, named from its dentry and mounts, whatever the
/// caller said: not the symlink or argv[0], the interpreter of a script, and a binary
/// unlinked before its exec flagged deleted.
#[test]
fn exe_is_what_the_kernel_ran_not_what_the_caller_said() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = common::temp_dir("process-exe");
    let real = std::fs::canonicalize(&dir).expect("canonical");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod dir");
    let true_bin = std::fs::canonicalize("/bin/true").expect("/bin/true");
    let sh = std::fs::canonicalize("/bin/sh").expect("/bin/sh");
    symlink(&true_bin, dir.join("sshd")).expect("symlink");
    std::fs::write(dir.join("job.sh"), "#!/bin/sh\nexit 0\n").expect("script");
    std::fs::copy(&true_bin, dir.join("copy")).expect("copy");
    for f in ["job.sh", "copy"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
    }
    let d = Daemon::start("process-exe", &["--only", "process"]);
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["/usr/bin/python3", "-c", EXE_LIES])
        .arg(&dir)
        .output()
        .expect("run python3 as nobody");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f = d.stop();
    f.assert_exact();
    let pids: serde_json::Value = serde_json::from_slice(&o.stdout).expect("the children's pids");
    let exec_of = |key: &str| {
        let pid = u(&pids[key]);
        let v: Vec<_> = f.of_type("exec").filter(|e| u(&e["pid"]) == pid).collect();
        assert_eq!(v.len(), 1, "{key}: one exec: {v:?}");
        v[0].clone()
    };
    let s = exec_of("symlink");
    assert_eq!(
        s["argv"],
        serde_json::json!(["/usr/sbin/sshd", "-D"]),
        "{s}"
    );
    assert_eq!(s["exe"], true_bin.to_str().expect("utf-8"), "{s}");
    assert!(s.get("exe_deleted").is_none(), "{s}");
    let s = exec_of("script");
    assert_eq!(
        s["exe"],
        sh.to_str().expect("utf-8"),
        "the interpreter: {s}"
    );
    let s = exec_of("deleted");
    assert_eq!(
        s["exe"],
        real.join("copy").to_str().expect("utf-8"),
        "the name it had: {s}"
    );
    assert_eq!(s["exe_deleted"], true, "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sets its own audit login uid (as pam_loginuid does at login: the kernel then gives it a
/// new session), then runs /bin/true through setpriv to uid 65534 and through su to
/// nobody. Prints one JSON line: the login uid and session it got.
const LOGIN: &str = r#"
import json, subprocess, sys
with open("/proc/self/loginuid", "w") as f:
    f.write(sys.argv[1])
session = int(open("/proc/self/sessionid").read())
subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/true"], check=True)
subprocess.run(["su", "nobody", "-s", "/bin/true"], check=True)
print(json.dumps({"session": session}), flush=True)
"#;

/// The login uid and session a login set are on the execs of everything run from it,
/// through setpriv and su; a process of no login has neither field.
#[test]
fn login_uid_and_session_survive_setpriv_and_su() {
    // Unique per test process, so that no other test's execs can carry it.
    let login = 3_900_000_000 + std::process::id() % 100_000;
    let d = Daemon::start("process-login", &["--only", "process"]);
    let o = Command::new("/usr/bin/python3")
        .args(["-c", LOGIN, &login.to_string()])
        .output()
        .expect("run python3");
    let mut plain = Command::new("/bin/true").spawn().expect("spawn");
    let plain_pid = u64::from(plain.id());
    plain.wait().expect("wait");
    let f = d.stop();
    f.assert_exact();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).expect("the session");
    let session = u(&got["session"]);
    let of_login: Vec<_> = f
        .of_type("exec")
        .filter(|e| e["login_uid"].as_u64() == Some(u64::from(login)))
        .collect();
    // setpriv, the /bin/true it runs, su, the /bin/true su runs.
    let mut names: Vec<String> = of_login
        .iter()
        .map(|e| format!("{}:{}", e["exe"].as_str().unwrap_or("?"), u(&e["uid"])))
        .collect();
    names.sort();
    let true_bin = std::fs::canonicalize("/bin/true").expect("/bin/true");
    let t = true_bin.to_str().expect("utf-8");
    assert!(
        names.contains(&format!("{t}:65534")),
        "/bin/true as 65534 (setpriv, then su to nobody): {names:?}"
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with(&format!("{t}:")))
            .count(),
        2,
        "{names:?}"
    );
    assert_eq!(of_login.len(), 4, "{names:?}");
    for e in &of_login {
        assert_eq!(u(&e["session_id"]), session, "{e}");
    }
    let plain: Vec<_> = f
        .of_type("exec")
        .filter(|e| u(&e["pid"]) == plain_pid)
        .collect();
    assert_eq!(plain.len(), 1);
    // The test runs from no login (CI, a service); where it has one, the field is its.
    let own = std::fs::read_to_string("/proc/self/loginuid").expect("loginuid");
    if own.trim() == "4294967295" {
        assert!(plain[0].get("login_uid").is_none(), "{}", plain[0]);
    } else {
        assert_eq!(plain[0]["login_uid"].to_string(), own.trim());
    }
}
