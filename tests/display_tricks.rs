//! Characters that change how text looks on a screen cannot make an event read like
//! another (issue 10, attack 8). An unprivileged user (uid 65534) runs a program whose
//! arguments hold C1 controls, the line and paragraph separators and bidirectional
//! overrides, e.g. `evil\u{202e}txt.exe` that a terminal shows reversed: the JSON line
//! holds them as `\u` escapes (plain ASCII on a screen) and still decodes to the exact
//! argument.
mod common;

use common::{Daemon, u};

#[test]
fn display_tricks_in_argv_are_escaped_and_lossless() {
    let d = Daemon::start("display-tricks", &["--only", "process"]);
    let args = [
        "invoice\u{202e}fdp.exe",
        "line\u{2028}break\u{2029}para",
        "c1\u{85}\u{9b}31m",
        "iso\u{2066}late\u{2069}\u{200f}\u{61c}",
    ];
    let mut c = common::as_nobody("/bin/true")
        .args(args)
        .spawn()
        .expect("spawn");
    // setpriv execs /bin/true in the same process: its pid is the exec event's.
    let pid = u64::from(c.id());
    assert!(c.wait().expect("wait").success());
    let f = d.stop();
    f.assert_exact();
    let execs: Vec<_> = f
        .of_type("exec")
        .filter(|e| u(&e["pid"]) == pid && e["filename"] == "/bin/true")
        .collect();
    assert_eq!(execs.len(), 1, "one exec of /bin/true by {pid}");
    let e = execs[0];
    assert_eq!(u(&e["uid"]), 65534);
    let mut want = vec!["/bin/true"];
    want.extend(args);
    assert_eq!(
        e["argv"],
        serde_json::json!(want),
        "decodes to the exact bytes"
    );
    let line = f
        .raw
        .lines()
        .find(|l| l.contains("\"type\":\"exec\"") && l.contains(&format!("\"pid\":{pid},")))
        .filter(|l| l.contains("/bin/true"))
        .expect("the raw line");
    assert!(line.is_ascii(), "no raw display trick on the line: {line}");
    for esc in [
        r"\u202e", r"\u2028", r"\u2029", r"\u0085", r"\u009b", r"\u2066", r"\u2069", r"\u200f",
        r"\u061c",
    ] {
        assert!(line.contains(esc), "{esc} in {line}");
    }
}
