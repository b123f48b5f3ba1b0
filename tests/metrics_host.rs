//! The metrics endpoint on loopback answers only requests that name it by address or as
//! `localhost` (issue 10, attack 9: DNS rebinding). A page a browser on this host loaded
//! from attacker.example can make that name resolve to 127.0.0.1 and fetch /metrics; the
//! browser still sends `Host: attacker.example`, which is answered 421 without the data.
//! The requests are sent by an unprivileged process (uid 65534), as a browser's would be.
mod common;

use std::process::Command;

use common::Daemon;
use common::obs::{metrics_port, split_answer};

/// One raw request over TCP to 127.0.0.1:port, sent by uid 65534; the whole answer.
fn as_nobody(port: u16, request: &str) -> Vec<u8> {
    let script = "import socket, sys\n\
                  s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
                  s.sendall(sys.argv[2].encode())\n\
                  out = b''\n\
                  while True:\n\
                  \x20   b = s.recv(65536)\n\
                  \x20   if not b: break\n\
                  \x20   out += b\n\
                  sys.stdout.buffer.write(out)\n";
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "/usr/bin/python3",
            "-c",
            script,
        ])
        .arg(port.to_string())
        .arg(request)
        .output()
        .expect("run the client");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

#[test]
fn a_rebound_name_gets_421_and_no_metrics() {
    let d = Daemon::start(
        "metrics-host",
        &["--only", "process", "--metrics-listen", "127.0.0.1:0"],
    );
    let port = metrics_port(&d);
    let ask = |host: &str| {
        let a = split_answer(&as_nobody(
            port,
            &format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        ));
        (a.status, a.body)
    };
    for host in [
        "attacker.example",
        &format!("attacker.example:{port}"),
        "ringwarden.lan",
    ] {
        let (status, body) = ask(host);
        assert_eq!(status, "HTTP/1.1 421 Misdirected Request", "{host}");
        assert!(!body.contains("ebpf_"), "no metrics for {host}: {body}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "LOCALHOST".to_string(),
        "127.0.0.1".to_string(),
    ] {
        let (status, body) = ask(&host);
        assert_eq!(status, "HTTP/1.1 200 OK", "{host}");
        assert!(body.contains("ebpf_events_received_total"), "{host}");
    }
    d.stop().assert_exact();
}
