//! The configuration file, `config default|check`, `size`, and the daemon running on a file
//! with the command line over it.
mod common;

use std::fs;

use common::{Daemon, temp_dir};

#[test]
fn the_printed_default_validates_and_check_shows_every_ring() {
    let (code, text, err) = common::run_cli(&["config", "default"]);
    assert_eq!(code, 0, "{err}");
    for key in [
        "[rings.process]",
        "[rings.file]",
        "[rings.network]",
        "[rings.syscall]",
        "[rings.cgroup]",
        "[rings.anomaly]",
        "[sizing]",
        "buffer_time",
        "safety_factor",
        "[adaptive]",
        "policy = \"dynamic\"",
        "target_utilization",
        "grow_above",
        "shrink_below",
        "adjustment_factor",
        "cooldown",
        "stats_interval",
        "[metrics]",
        "# listen = \"127.0.0.1:9731\"",
        "# textfile = ",
        "[control]",
        "socket = \"/run/ringwarden/control.sock\"",
        "[context]",
        "enabled = true",
        "ancestors = 4",
        "max_processes = 32768",
        "max_cgroups = 4096",
    ] {
        assert!(text.contains(key), "default lacks {key}:\n{text}");
    }
    let dir = temp_dir("config-default");
    let path = dir.join("ringwarden.toml");
    fs::write(&path, &text).expect("write");
    let (code, out, err) =
        common::run_cli(&["config", "check", path.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ok"), "{out}");
    assert!(
        out.contains("context: on, 4 ancestors, up to 32768 processes and 4096 cgroups"),
        "{out}"
    );
    for fam in [
        "process", "file", "network", "syscall", "cgroup", "anomaly", "tls",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(fam)),
            "no {fam} row:\n{out}"
        );
    }
    // The built-in start sizes suit a small host.
    assert!(out.contains("start: 3.50 MiB"), "{out}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn size_prints_the_working() {
    let (code, out, _) = common::run_cli(&[
        "size",
        "--event-size",
        "104",
        "--rate",
        "10000",
        "--buffer-time",
        "2s",
        "--safety",
        "3",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "104 B × 10000/s × 2 s × 3 = 6240000 B (5.95 MiB) -> 8 MiB (power of two, page-aligned)\n"
    );
    // Spec §1.4 example 2, with defaults for nothing and a bare number of seconds.
    let (code, out, _) = common::run_cli(&[
        "size",
        "--event-size=1056",
        "--rate=100",
        "--buffer-time=3",
        "--safety=2",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.ends_with("-> 1 MiB (power of two, page-aligned)\n"),
        "{out}"
    );
    for (args, code, word) in [
        (&["size", "--rate", "1"][..], 64, "--event-size"),
        (&["size", "--event-size", "1KiB"][..], 64, "--rate"),
        (
            &["size", "--event-size", "x", "--rate", "1"][..],
            78,
            "not a size",
        ),
        (
            &["size", "--event-size", "8", "--rate", "0"][..],
            78,
            "--rate",
        ),
        (
            &[
                "size",
                "--event-size",
                "8",
                "--rate",
                "1",
                "--buffer-time",
                "soon",
            ][..],
            78,
            "soon",
        ),
    ] {
        let (c, out, err) = common::run_cli(args);
        assert_eq!(c, code, "{args:?}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(word), "{args:?}: {err}");
    }
}

#[test]
fn bad_files_are_one_line_naming_the_key_and_exit_78() {
    let dir = temp_dir("config-errors");
    let path = dir.join("bad.toml");
    let p = path.to_str().expect("utf-8 path");
    for (text, word) in [
        ("[rings.file]\nsise = \"1MiB\"\n", "rings.file.sise"),
        ("verbose = true\n", "verbose"),
        ("[rings.disk]\nsize = \"1MiB\"\n", "rings.disk"),
        ("[rings.file]\nsize = \"3MiB\"\n", "2MiB or 4MiB"),
        ("[rings.file]\nsize = \"1KiB\"\n", "smaller than a page"),
        (
            "[rings.file]\nmin = \"8MiB\"\nmax = \"4MiB\"\n",
            "rings.file.min",
        ),
        ("[rings.file]\nsize = \"512KiB\"\n", "below min"),
        (
            "[rings.file]\nsize = \"1MiB\"\nrate = 5\n",
            "both size and rate",
        ),
        ("[rings.file]\nrate = 0\n", "rings.file.rate"),
        ("[rings.file]\nsize = true\n", "rings.file.size"),
        ("[adaptive]\nenabled = \"yes\"\n", "adaptive.enabled"),
        ("[adaptive]\npolicy = \"smart\"\n", "adaptive.policy"),
        ("[adaptive]\ngrow_above = 1.5\n", "adaptive.grow_above"),
        ("[adaptive]\nshrink_below = 0.95\n", "adaptive.shrink_below"),
        (
            "[adaptive]\nadjustment_factor = 4\n",
            "adaptive.adjustment_factor",
        ),
        ("[adaptive]\ncooldown = \"soon\"\n", "adaptive.cooldown"),
        ("[sizing]\nbuffer_time = \"2 s x\"\n", "sizing.buffer_time"),
        ("[sizing]\nsafety_factor = 0\n", "sizing.safety_factor"),
        ("syscalls = [\"nosuchcall\"]\n", "nosuchcall"),
        ("families = [\"disk\"]\n", "families"),
        ("stats_interval = \"0s\"\n", "stats_interval"),
        ("output = 7\n", "output"),
        ("[context]\nancestors = 17\n", "context.ancestors"),
        ("[context]\nmax_processes = 5000000\n", "pid_max"),
        ("[context]\nmax_processes = 10\n", "context.max_processes"),
        ("[context]\nmax_cgroups = 8\n", "context.max_cgroups"),
        ("[context]\nenabled = \"no\"\n", "context.enabled"),
        ("[context]\ndepth = 2\n", "context.depth"),
        ("[adaptive\n", "line 1"),
    ] {
        fs::write(&path, text).expect("write");
        for args in [&["config", "check", p][..], &["run", "--config", p][..]] {
            let (code, out, err) = common::run_cli(args);
            assert_eq!(code, 78, "{text:?} {args:?}: {err}");
            assert!(out.is_empty(), "{out}");
            assert_eq!(err.lines().count(), 1, "{text:?}: {err}");
            assert!(err.contains(word), "{text:?}: {err}");
            assert!(err.contains(p), "{text:?}: {err}");
        }
    }
    let (code, _, err) = common::run_cli(&["run", "--config", "/nonexistent/ringwarden.toml"]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("/nonexistent/ringwarden.toml"), "{err}");
    let (code, _, err) = common::run_cli(&["config", "check", "/nonexistent/ringwarden.toml"]);
    assert_eq!(code, 78, "{err}");
    // --ring-size outside the file's bounds names both.
    fs::write(&path, "[rings.file]\nmin = \"2MiB\"\n").expect("write");
    let (code, _, err) = common::run_cli(&["--config", p, "--ring-size", "file=1MiB"]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("file=1MiB") && err.contains("min 2MiB"),
        "{err}"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn the_daemon_runs_on_the_file_with_the_command_line_over_it() {
    let dir = temp_dir("config-daemon");
    let path = dir.join("ringwarden.toml");
    // cgroup by size, anomaly by rate: 10/s × record × 2 s × 3 is below anomaly's 64 KiB
    // min, so 64 KiB; network is loaded by the file but --ring-size sets its size.
    fs::write(
        &path,
        "families = [\"cgroup\", \"anomaly\", \"network\"]\nstats_interval = \"30s\"\n\
         [rings.cgroup]\nsize = \"256KiB\"\n[rings.anomaly]\nrate = 10\n\
         [adaptive]\nenabled = false\n",
    )
    .expect("write");
    let d = Daemon::start(
        "config-daemon",
        &[
            "--config",
            path.to_str().expect("utf-8 path"),
            "--ring-size",
            "network=2MiB",
        ],
    );
    let f = d.stop();
    f.assert_exact();
    let rings = f.stats["rings"].as_object().expect("rings");
    let mut names: Vec<&str> = rings.keys().map(String::as_str).collect();
    names.sort_unstable();
    // The process family too: context is on, and its records keep the process table.
    assert_eq!(
        names,
        ["anomaly", "cgroup", "network", "process"],
        "{}",
        f.stderr
    );
    assert_eq!(f.read_from("process").count(), 0, "not written out");
    assert_eq!(rings["cgroup"]["size"], 256 * 1024);
    assert_eq!(rings["anomaly"]["size"], 64 * 1024);
    assert_eq!(rings["network"]["size"], 2 * 1024 * 1024);
    let _ = fs::remove_dir_all(&dir);
}
