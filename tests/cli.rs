//! The command line: help, version, one-line errors with the right exit codes, `check`.
mod common;

#[test]
fn version_and_help() {
    let (code, out, _) = common::run_cli(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(out, format!("ringwarden {}\n", env!("CARGO_PKG_VERSION")));
    let (code, out, _) = common::run_cli(&["--help"]);
    assert_eq!(code, 0);
    for opt in [
        "--output",
        "--only",
        "--ring-size",
        "--syscalls",
        "--stats-interval",
        "--stats-json",
        "--config",
        "--adaptive",
        "--help",
        "--version",
        "check",
        "config default",
        "config check PATH",
        "size",
        "--event-size",
        "--rate",
        "--buffer-time",
        "--safety",
        "SIGHUP",
        "--metrics-listen",
        "--metrics-allow-remote",
        "--control-socket",
        "--no-context",
        "status [--json]",
    ] {
        assert!(out.contains(opt), "--help does not document {opt}");
    }
}

#[test]
fn bad_input_is_one_line_with_sysexits_code() {
    for (args, code, word) in [
        (&["--bogus"][..], 64, "--bogus"),
        (&["--only", "disk"][..], 78, "disk"),
        (&["--ring-size", "file=100000"][..], 78, "power of two"),
        (&["--stats-interval", "soon"][..], 78, "soon"),
        (&["--syscalls", "nosuchcall"][..], 78, "nosuchcall"),
        (&["--config"][..], 64, "--config"),
        (
            &["--config", "/nonexistent.toml"][..],
            78,
            "/nonexistent.toml",
        ),
        (&["config"][..], 64, "config"),
        (&["--adaptive", "smart"][..], 78, "smart"),
        (&["--no-context=yes"][..], 64, "--no-context"),
        (&["size", "--rate", "1"][..], 64, "--event-size"),
    ] {
        let (c, out, err) = common::run_cli(args);
        assert_eq!(c, code, "{args:?}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(word), "{args:?}: {err}");
    }
}

#[test]
fn check_reports_every_program_and_passes_here() {
    common::ensure_tracefs();
    let (code, out, err) = common::run_cli(&["check"]);
    assert_eq!(code, 0, "check failed here:\n{out}\n{err}");
    for word in [
        "kernel:",
        "btf:",
        "ring buffer: supported",
        "tracefs:",
        "result: ok",
    ] {
        assert!(out.contains(word), "check output lacks {word:?}:\n{out}");
    }
    for fam in ["process", "file", "network", "syscall", "cgroup", "anomaly"] {
        assert!(
            out.contains(&format!("program {fam}/")),
            "no {fam} programs in:\n{out}"
        );
    }
    assert!(!out.contains("FAILED"));
}
