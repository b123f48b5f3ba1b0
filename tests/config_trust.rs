//! A daemon running as root takes its configuration only from a file root alone can change
//! (issue 10, item 10). An unprivileged user (uid 65534) who can write the file, or who
//! owns it, could point `output` at any file or switch the watching off; the daemon refuses
//! such a file with one line and exit 78, and a reload from one keeps what runs.
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Daemon, run_cli, sh_as_nobody, temp_dir};

fn refused(config: &str) -> String {
    let (code, _, err) = run_cli(&["run", "--only", "process", "--config", config]);
    assert_eq!(code, 78, "exit code; stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    lines[0].to_string()
}

#[test]
fn a_config_another_user_owns_or_can_write_is_refused() {
    let d = temp_dir("config-trust");
    fs::set_permissions(&d, fs::Permissions::from_mode(0o1777)).expect("chmod dir");
    let stolen = d.join("stolen.json");
    let theirs = d.join("theirs.toml");
    sh_as_nobody(&format!(
        "printf 'output = \"{}\"\\n' > {}",
        stolen.display(),
        theirs.display()
    ));
    let line = refused(theirs.to_str().expect("utf-8"));
    assert!(line.contains("owned by uid 65534"), "{line}");
    assert!(line.contains("chown root"), "{line}");
    assert!(!stolen.exists(), "nothing written where their file said");

    // Root's file, but anyone may edit it.
    let open = d.join("open.toml");
    fs::write(&open, format!("output = \"{}\"\n", stolen.display())).expect("write");
    fs::set_permissions(&open, fs::Permissions::from_mode(0o666)).expect("chmod");
    let line = refused(open.to_str().expect("utf-8"));
    assert!(
        line.contains("writable by group or others (mode 0666)"),
        "{line}"
    );
    assert!(line.contains("chmod go-w"), "{line}");
    assert!(!stolen.exists());

    // `config check` says the same of it.
    let (code, _, err) = run_cli(&["config", "check", open.to_str().expect("utf-8")]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("writable by group or others"), "{err}");
}

#[test]
fn a_reload_from_a_file_that_became_writable_keeps_what_runs() {
    let d = temp_dir("config-trust-reload");
    let cfg = d.join("ringwarden.toml");
    fs::write(&cfg, "families = [\"process\"]\n").expect("write");
    let daemon = Daemon::start(
        "config-trust-reload",
        &["--config", cfg.to_str().expect("utf-8")],
    );
    fs::write(&cfg, "families = [\"process\", \"file\"]\n").expect("rewrite");
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o666)).expect("chmod");
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log("keeping the running configuration", Duration::from_secs(10));
    let f = daemon.stop();
    f.assert_exact();
    assert!(
        f.stderr.contains("writable by group or others"),
        "{}",
        f.stderr
    );
    assert!(
        !f.stderr.contains("family file switched on"),
        "{}",
        f.stderr
    );
}
