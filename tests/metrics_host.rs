//! The metrics endpoint on loopback answers only requests that name it by address or as
//! `localhost` (issue 10, attack 9: DNS rebinding). A page a browser on this host loaded
//! from attacker.example can make that name resolve to 127.0.0.1 and fetch /metrics; the
//! browser still sends `Host: attacker.example`, which is answered 421 without the data.
//! The requests are sent by an unprivileged process (uid 65534), as a browser's would be.
mod common;

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
    let o = common::as_nobody("/usr/bin/python3")
        .args(["-c", script])
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

/// A client that sends its request one byte at a time, never idle long enough to be cut
/// off as idle, loses its slot once the request is not complete 5 s after it connected
/// (it held it for 10 s before).
#[test]
fn a_trickling_client_is_closed_after_five_seconds() {
    let d = Daemon::start(
        "metrics-trickle",
        &["--only", "process", "--metrics-listen", "127.0.0.1:0"],
    );
    let port = metrics_port(&d);
    let script = "import socket, sys, time\n\
                  s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
                  t = time.monotonic()\n\
                  try:\n\
                  \x20   for b in b'GET /metrics HTTP/1.1\\r\\nX-Slow: ' + b'a' * 100:\n\
                  \x20       s.send(bytes([b]))\n\
                  \x20       time.sleep(0.25)\n\
                  \x20       s.settimeout(0.01)\n\
                  \x20       try:\n\
                  \x20           if s.recv(1) == b'': break\n\
                  \x20       except socket.timeout:\n\
                  \x20           pass\n\
                  except OSError:\n\
                  \x20   pass\n\
                  print(round(time.monotonic() - t, 1))\n";
    let o = common::as_nobody("/usr/bin/python3")
        .args(["-c", script])
        .arg(port.to_string())
        .output()
        .expect("run the client");
    let held: f64 = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    // Closed by the sweep of the tick after the deadline (1 s ticks).
    assert!((4.5..7.5).contains(&held), "held its slot {held} s");
    d.stop().assert_exact();
}

/// `[metrics] allow_hosts` names the server may also be called by (a name in
/// /etc/hosts or the LAN's DNS); others still get 421, and SIGHUP changes the names.
#[test]
fn configured_names_are_answered_and_sighup_changes_them() {
    let dir = common::temp_dir("metrics-names");
    let cfg = dir.join("ringwarden.toml");
    let write_cfg = |names: &str| {
        std::fs::write(
            &cfg,
            format!(
                "families = [\"cgroup\"]\n[metrics]\nlisten = \"127.0.0.1:0\"\nallow_hosts = [{names}]\n[control]\nsocket = \"off\"\n"
            ),
        )
        .expect("write config");
    };
    write_cfg("\"metrics.example.lan\"");
    let d = Daemon::start("metrics-names", &["--config", cfg.to_str().expect("utf-8")]);
    let port = metrics_port(&d);
    let status = |host: &str| {
        split_answer(&as_nobody(
            port,
            &format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        ))
        .status
    };
    let named = format!("Metrics.Example.LAN:{port}");
    let other = format!("other.lan:{port}");
    assert_eq!(status(&named), "HTTP/1.1 200 OK");
    assert_eq!(status(&other), "HTTP/1.1 421 Misdirected Request");
    assert_eq!(
        status("attacker.example"),
        "HTTP/1.1 421 Misdirected Request"
    );
    assert_eq!(status("localhost"), "HTTP/1.1 200 OK");

    write_cfg("\"other.lan\"");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    d.wait_for_log(
        "SIGHUP: metrics Host names besides addresses and localhost: other.lan",
        std::time::Duration::from_secs(5),
    );
    assert_eq!(status(&named), "HTTP/1.1 421 Misdirected Request");
    assert_eq!(status(&other), "HTTP/1.1 200 OK");
    d.stop().assert_exact();

    // A name with a port (or any non-name) stops the daemon: one line, exit 78.
    write_cfg("\"other.lan:9731\"");
    let (code, _, err) = common::run_cli(&["--config", cfg.to_str().expect("utf-8")]);
    assert_eq!(code, 78, "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("metrics.allow_hosts: \"other.lan:9731\" is not a host name"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
