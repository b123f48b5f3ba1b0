//! The built generator answers `--help` and refuses a bad command line with exit 64.
//! Also why it exists: an integration test makes `cargo test` build this package's binary
//! (target/*/ringwarden-load), which the daemon's integration tests run; without one,
//! `cargo test --all-targets` on a clean checkout would build only the unit-test harness.
use std::process::Command;

const LOAD: &str = env!("CARGO_BIN_EXE_ringwarden-load");

#[test]
fn help_and_a_bad_command_line() {
    let help = Command::new(LOAD)
        .arg("--help")
        .output()
        .expect("run ringwarden-load");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("ringwarden-load - "));
    let bad = Command::new(LOAD)
        .arg("--bogus")
        .output()
        .expect("run ringwarden-load");
    assert_eq!(bad.status.code(), Some(64));
}
