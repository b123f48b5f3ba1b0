//! `[metrics] program_stats` (`--program-stats`) against the real kernel: the kernel's
//! run statistics of each program, in the status document, `ringwarden status` and the
//! metrics. The cgroup family's programs each send one record a run (none filters here),
//! so their runs add up to the ring's produced, exactly; a test of its own (a binary of
//! its own: no other test's daemon or cgroups meanwhile).
mod common;

use std::collections::HashMap;
use std::fs;
use std::time::Duration;

use common::obs::{metrics_port, num, scrape, status, wait_until};
use common::{Daemon, run_cli, temp_dir, u};
use serde_json::Value;

/// The cgroup family's programs with their runs and ns, from a status document.
fn cgroup_runs(s: &Value) -> HashMap<String, (u64, u64)> {
    s["programs"]
        .as_object()
        .expect("programs")
        .iter()
        .filter(|(_, p)| p["family"] == "cgroup" && p["attached"] == true)
        .map(|(n, p)| (n.clone(), (u(&p["runs"]), u(&p["run_ns"]))))
        .collect()
}

#[test]
fn each_programs_runs_add_up_to_its_rings_produced() {
    const N: usize = 25;
    let dir = temp_dir("program-stats");
    let sock = dir.join("control.sock");
    let sock_arg = sock.to_str().expect("utf-8 path");
    let d = Daemon::start(
        "program-stats",
        &[
            "--no-context",
            "--only",
            "cgroup",
            "--program-stats",
            "--metrics-listen",
            "127.0.0.1:0",
            "--control-socket",
            sock_arg,
        ],
    );
    let port = metrics_port(&d);
    let root = common::cgroup2_root();
    let tag = format!("ringwarden-stats-{}", std::process::id());
    for k in 0..N {
        let p = root.join(format!("{tag}-{k}"));
        fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        fs::remove_dir(&p).unwrap_or_else(|e| panic!("rmdir {}: {e}", p.display()));
    }

    // A quiet moment: two status documents a tick apart with the same books, and the
    // metrics between them saying the same.
    let mut last: Option<Value> = None;
    let mut seen = None;
    wait_until("the books settle", Duration::from_secs(20), || {
        let s = status(&sock);
        let m = scrape(port);
        let ring = &s["rings"]["cgroup"];
        let settled = u(&ring["received"]) == u(&ring["produced"])
            && last.as_ref().is_some_and(|l| {
                l["rings"]["cgroup"]["produced"] == ring["produced"]
                    && cgroup_runs(l) == cgroup_runs(&s)
            });
        if settled {
            seen = Some((s.clone(), m));
        } else {
            std::thread::sleep(Duration::from_millis(1100));
        }
        last = Some(s);
        settled
    });
    let (s, m) = seen.expect("a settled moment");
    let runs = cgroup_runs(&s);
    let produced = u(&s["rings"]["cgroup"]["produced"]);
    assert!(u(&s["program_stats_ms"]) > 0, "{s}");
    let total: u64 = runs.values().map(|r| r.0).sum();
    assert_eq!(total, produced, "every run one record: {runs:?}");
    let (mkdirs, mkdir_ns) = runs["cgroup_mkdir"];
    assert!(mkdir_ns > 0, "time spent: {runs:?}");
    for (name, (n, ns)) in &runs {
        let key = |metric: &str| format!("{metric}{{family=\"cgroup\",program=\"{name}\"}}");
        assert_eq!(num(&m, &key("ebpf_program_runs_total")), *n, "{name}");
        let secs: f64 = m[&key("ebpf_program_run_seconds_total")]
            .parse()
            .expect("seconds");
        assert!(
            (secs * 1e9 - *ns as f64).abs() <= 1.0 + *ns as f64 * 1e-12,
            "{name}: {secs} s, {ns} ns"
        );
    }

    // The table lists them by cost.
    let (code, out, err) = run_cli(&["status", "--control-socket", sock_arg]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("program costs over "), "{out}");
    assert!(
        out.contains(&format!("  cgroup/cgroup_mkdir: {mkdirs} runs, ")),
        "{out}"
    );

    let f = d.stop();
    f.assert_exact();
    let ours = |ty: &str| {
        f.events
            .iter()
            .filter(|e| {
                e["type"] == ty && e["cgroup_path"].as_str().is_some_and(|p| p.contains(&tag))
            })
            .count()
    };
    assert_eq!(ours("cgroup_mkdir"), N);
    assert_eq!(ours("cgroup_rmdir"), N);
}

#[test]
fn without_the_setting_no_program_costs_are_shown() {
    let dir = temp_dir("program-stats-off");
    let sock = dir.join("control.sock");
    let sock_arg = sock.to_str().expect("utf-8 path");
    let d = Daemon::start(
        "program-stats-off",
        &[
            "--no-context",
            "--only",
            "cgroup",
            "--metrics-listen",
            "127.0.0.1:0",
            "--control-socket",
            sock_arg,
        ],
    );
    let s = status(&sock);
    assert!(s.get("program_stats_ms").is_none(), "{s}");
    let attached: Vec<&Value> = s["programs"]
        .as_object()
        .expect("programs")
        .values()
        .filter(|p| p["attached"] == true)
        .collect();
    // cgroup_mkdir, cgroup_rmdir, cgroup_attach, oom_mark_victim.
    assert_eq!(attached.len(), 4, "the cgroup family's programs: {s}");
    assert!(attached.iter().all(|p| p.get("runs").is_none()), "{s}");
    let m = scrape(metrics_port(&d));
    assert!(
        !m.keys().any(|k| k.starts_with("ebpf_program_run")),
        "{m:?}"
    );
    d.stop().assert_exact();
}
