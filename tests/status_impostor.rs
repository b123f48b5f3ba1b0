//! `ringwarden status` asks only a server run by root or by its own user (issue 10, item
//! 10). An unprivileged user (uid 65534) binds a socket where root is told to look and
//! answers with a status of its own, escape sequences included: root's `status` refuses
//! to ask it (the kernel's SO_PEERCRED names the server), one line, exit 1.
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{run_cli, temp_dir};

/// A child killed when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_status_server_of_another_user_is_not_asked() {
    let d = temp_dir("impostor");
    fs::set_permissions(&d, fs::Permissions::from_mode(0o1777)).expect("chmod dir");
    let sock = d.join("control.sock");
    let fake = r#"{"rings":{"file":{"size":1,"produced":0,"received":0,"dropped":0}},"version":"\u001b[2Jall fine"}"#;
    let script = [
        "import socket, sys",
        "s = socket.socket(socket.AF_UNIX)",
        "s.bind(sys.argv[1])",
        "s.listen(4)",
        "while True:",
        "    c, _ = s.accept()",
        "    c.recv(64)",
        "    c.sendall(sys.argv[2].encode())",
        "    c.close()",
    ]
    .join("\n");
    let _server = Server(
        common::as_nobody("/usr/bin/python3")
            .args(["-c", &script])
            .arg(&sock)
            .arg(fake)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fake server"),
    );
    let t = Instant::now();
    while !sock.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the fake server did not bind"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let path = sock.to_str().expect("utf-8");
    let (code, out, err) = run_cli(&["status", "--control-socket", path]);
    assert_eq!(code, 1, "stdout: {out}; stderr: {err}");
    assert!(out.is_empty(), "nothing of its answer is printed: {out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("is served by a process of uid 65534, not by root or by you"),
        "{err}"
    );
}
