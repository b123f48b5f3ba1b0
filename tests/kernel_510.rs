//! The 5.10 variants (bpf/kernel.h), run here with RINGWARDEN_KERNEL_VARIANT=5.10: the
//! objects a kernel without atomic fetch-and-add or bpf_loop loads, held to the same books.
//! The Debian 11 guest (tests/vm/run --debian 11) runs them on 5.10 itself.
mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use common::{Daemon, bytes_of, u};

use common::V510 as FORCE;

#[test]
fn the_510_variant_gives_exact_exec_exit_fork() {
    let d = Daemon::builder("k510-process")
        .args(&["--only", "process"])
        .env(FORCE.0, FORCE.1)
        .start();
    let pids = common::true_false_children(200, &[]);
    let f = d.stop();
    f.assert_exact();
    assert_eq!(f.ring("process")["variant"], "5.10", "{}", f.stats);

    let mine = |e: &&serde_json::Value| pids.contains_key(&u(&e["pid"]));
    let execs: Vec<_> = f.of_type("exec").filter(mine).collect();
    assert_eq!(execs.len(), 200, "exec events for our children");
    assert_eq!(f.of_type("exit").filter(mine).count(), 200, "exits");
    let forks = f
        .of_type("fork")
        .filter(|e| pids.contains_key(&u(&e["child_pid"])))
        .count();
    assert_eq!(forks, 200, "forks of our children");
    for e in &execs {
        let (prog, n, _) = pids[&u(&e["pid"])];
        assert!(e.get("seq").is_none(), "no seq from the 5.10 variant: {e}");
        assert_eq!(e["argv"], serde_json::json!([prog, format!("arg-{n}")]));
        // The executable's path, walked with the variant's bounded loop: the kernel's
        // name for the file /bin/true or /bin/false resolves to.
        let exe = fs::canonicalize(prog).expect("canonicalize");
        assert_eq!(
            bytes_of(e, "exe"),
            exe.as_os_str().as_encoded_bytes(),
            "{e}"
        );
    }
}

/// A one-page ring under a burst of execs: the variant's drops are counted exactly and
/// reported as `lost` records with a count and no seqs (assert_exact checks both).
#[test]
fn the_510_variant_counts_every_drop() {
    let d = Daemon::builder("k510-drops")
        .args(&[
            "--only",
            "process",
            "--adaptive",
            "off",
            "--ring-size",
            "process=4KiB",
        ])
        .env(FORCE.0, FORCE.1)
        .start();
    let st = Command::new("/bin/sh")
        .args(["-c", "for i in $(seq 400); do /bin/true & done; wait"])
        .status()
        .expect("sh");
    assert!(st.success());
    let f = d.stop();
    f.assert_exact();
    let r = f.ring("process");
    assert_eq!(r["variant"], "5.10");
    assert!(
        u(&r["dropped"]) > 0,
        "400 concurrent execs overflow a one-page ring: {r}"
    );
    assert!(f.of_type("lost").any(|e| e["ring"] == "process"));
}

#[test]
fn the_510_variant_of_cgroup_gives_exact_mkdir_rmdir() {
    let root = common::cgroup2_root();
    let d = Daemon::builder("k510-cgroup")
        .args(&["--only", "cgroup"])
        .env(FORCE.0, FORCE.1)
        .start();
    let names: Vec<String> = (0..20)
        .map(|n| format!("rw-k510-{}-{n}", std::process::id()))
        .collect();
    let mut ids = Vec::new();
    for n in &names {
        let p = root.join(n);
        fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        ids.push(fs::metadata(&p).expect("stat").ino());
        fs::remove_dir(&p).expect("rmdir");
    }
    let f = d.stop();
    f.assert_exact();
    assert_eq!(f.ring("cgroup")["variant"], "5.10");
    for (n, id) in names.iter().zip(&ids) {
        let rel = format!("/{n}");
        for ty in ["cgroup_mkdir", "cgroup_rmdir"] {
            let got: Vec<_> = f
                .of_type(ty)
                .filter(|e| bytes_of(e, "cgroup_path") == rel.as_bytes())
                .collect();
            assert_eq!(got.len(), 1, "{ty} events for {rel}");
            assert_eq!(u(&got[0]["target_cgroup_id"]), *id, "{}", got[0]);
        }
    }
}

/// `check` says which families run their 5.10 variant, and why.
#[test]
fn check_names_the_variant_and_why() {
    let out = Command::new(common::BIN)
        .arg("check")
        .env(FORCE.0, FORCE.1)
        .output()
        .expect("ringwarden check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("atomic fetch-and-add (5.12): yes\n")
            && text.contains("bpf_loop (5.17): yes\n"),
        "{text}"
    );
    assert!(
        text.contains("variant: 5.10 where a family has one (RINGWARDEN_KERNEL_VARIANT=5.10): records carry no seq"),
        "{text}"
    );
    let variants: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("family ")?
                .strip_suffix(": the 5.10 variant runs")
        })
        .collect();
    assert_eq!(
        variants,
        ["process", "file", "network", "syscall", "cgroup", "anomaly"],
        "{text}"
    );
}
