//! Process family against the real kernel: N children -> exactly N exec, exit and fork events.
mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;

use common::{Daemon, i, u};

#[test]
fn two_hundred_children_give_exact_exec_exit_fork() {
    let d = Daemon::start("process", &["--only", "process"]);
    let me = std::process::id() as u64;
    let mut pids = HashMap::new();
    for n in 0..200u32 {
        // Every tenth child fails, so exit codes are checked both ways.
        let (prog, code) = if n % 10 == 9 {
            ("/bin/false", 1)
        } else {
            ("/bin/true", 0)
        };
        let mut c = Command::new(prog)
            .arg(format!("arg-{n}"))
            .arg("second arg")
            .spawn()
            .expect("spawn");
        pids.insert(c.id() as u64, (prog, n, code));
        let st = c.wait().expect("wait");
        assert_eq!(st.code(), Some(code));
    }
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
