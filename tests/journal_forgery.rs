//! A crafted file name cannot make a journal MESSAGE read like another process's action
//! (issue 10, attack 7). An unprivileged user (uid 65534) opens a file whose name is the
//! tail of a forged message: `x" by "sshd" pid=1 uid=0 O_RDONLY fd=3`. The MESSAGE quotes
//! and escapes the path and the comm, so the only ` by ` outside quotes names the real
//! process, and RINGWARDEN_PATH keeps the exact bytes.
mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::{Daemon, temp_dir};

/// The text outside double quotes, with `\"` inside them skipped.
fn unquoted(m: &str) -> String {
    let (mut out, mut inside, mut escaped) = (String::new(), false, false);
    for c in m.chars() {
        match (inside, escaped, c) {
            (true, false, '\\') => escaped = true,
            (true, true, _) => escaped = false,
            (_, false, '"') => inside = !inside,
            (false, _, c) => out.push(c),
            _ => {}
        }
    }
    out
}

#[test]
fn a_file_name_cannot_forge_who_opened_it() {
    let dir = temp_dir("jforge");
    let sock_path = dir.join("journal.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    // Read while the daemon runs: the whole machine's opens reach the socket.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = stop.clone();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match sock.recv(&mut buf) {
                Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) if done.load(std::sync::atomic::Ordering::SeqCst) => return got,
                Err(_) => {}
            }
        }
    });
    let name = "x\" by \"sshd\" pid=1 uid=0 O_RDONLY fd=3";
    let file = dir.join(name);
    std::fs::write(&file, "").expect("create the file");
    let d = Daemon::builder("jforge")
        .in_dir(&dir)
        .args(&["--only", "file", "--output", "journal"])
        .env(
            "RINGWARDEN_JOURNAL_SOCKET",
            sock_path.to_str().expect("utf-8"),
        )
        .start();
    let mut c = common::as_nobody("/usr/bin/python3")
        .args(["-c", "import sys; open(sys.argv[1]).close()"])
        .arg(&file)
        .spawn()
        .expect("spawn");
    let pid = c.id();
    assert!(c.wait().expect("wait").success());
    let f = d.stop();
    let r = &f.stats["rings"]["file"];
    assert_eq!(
        common::u(&r["produced"]),
        common::u(&r["received"]) + common::u(&r["dropped"]),
        "{r}"
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let ours: Vec<String> = reader
        .join()
        .expect("reader")
        .into_iter()
        .filter(|e| e.contains(&format!("\nRINGWARDEN_PID={pid}\n")) && e.contains("jforge"))
        .collect();
    assert_eq!(
        common::u(&f.stats["sink_errors"]),
        0,
        "every entry delivered"
    );
    assert_eq!(ours.len(), 1, "one open of the crafted file by {pid}");
    let message = ours[0]
        .strip_prefix("MESSAGE=")
        .and_then(|e| e.split('\n').next())
        .expect("MESSAGE first");
    let want_path = format!(
        "open \"{}\" by ",
        file.display().to_string().replace('"', "\\\"")
    );
    assert!(message.starts_with(&want_path), "{message}");
    // Then what the kernel opened, quoted the same way.
    let quoted = file.display().to_string().replace('"', "\\\"");
    assert!(
        message.ends_with(&format!(
            "pid={pid} uid=65534 O_RDONLY|O_CLOEXEC fd=3 file=\"{quoted}\""
        )),
        "{message}"
    );
    let outside = unquoted(message);
    assert_eq!(outside.matches(" by ").count(), 1, "{outside}");
    assert_eq!(outside.matches("pid=").count(), 1, "{outside}");
    assert!(!outside.contains("uid=0"), "{outside}");
    assert!(ours[0].contains(&format!("\nRINGWARDEN_PATH={}\n", file.display())));
    assert!(ours[0].contains(&format!("\nRINGWARDEN_RESOLVED_PATH={}\n", file.display())));
}
