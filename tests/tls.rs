//! The tls family against the real kernel and the host's libssl (Debian's OpenSSL 3):
//! Python's `ssl` module on loopback, a server (root) and its client (uid 65534) ->
//! exactly one `tls_handshake` per session on each side with the SNI the client sent
//! (set by the client, asked for by the server), and one `tls_close` with the exact
//! bytes each side read and wrote; a session whose process exits without freeing it is
//! closed at the exit; a handshake with a peer that speaks no TLS is reported failed.
//! The byte counts come with `[tls] count_bytes = true`; without it the same records come
//! without them.
//! `lib_load`: `import ssl` maps libssl and libcrypto once each, and a file made
//! executable with mprotect after a read-only mmap (a way around watching mmap alone) is
//! reported as such, by an unprivileged process.
mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Daemon, as_nobody, i, temp_dir, u};
use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";
const SNI: &str = "svc.example.test";

/// Server: N sessions; each reads K bytes (or to EOF), answers M bytes and shuts down
/// both ways, unless the peer went away first. Client: N sessions writing K and reading
/// M, then one it abandons (the process exits without SSL_free) after writing 100.
/// Fail: one handshake against a peer that is no TLS server.
const SCRIPT: &str = r#"
import json, os, socket, ssl, sys
mode = sys.argv[1]
if mode == "server":
    cert, key, n, k, m = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    seen = []
    ctx.sni_callback = lambda sslobj, name, c: seen.append(name)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    print(json.dumps({"port": ls.getsockname()[1]}), flush=True)
    for _ in range(n):
        c, _ = ls.accept()
        s = ctx.wrap_socket(c, server_side=True)
        got = 0
        while got < k:
            b = s.recv(65536)
            if not b:
                break
            got += len(b)
        if got < k:
            s.close()
            continue
        s.sendall(b"y" * m)
        s.unwrap().close()
    print(json.dumps({"sni": seen}), flush=True)
elif mode == "client":
    port, sni, n, k, m = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for _ in range(n):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname=sni)
        s.sendall(b"x" * k)
        got = 0
        while got < m:
            got += len(s.recv(65536))
        s.unwrap().close()
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname=sni)
    s.sendall(b"z" * 100)
    os._exit(0)
elif mode == "execs":
    port = int(sys.argv[2])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="exec.test")
    s.sendall(b"e" * 10)
    os.execv("/bin/true", ["true"])
elif mode == "held":
    port, k, m = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="held.test")
    print("ready", flush=True)
    sys.stdin.readline()
    s.sendall(b"x" * k)
    got = 0
    while got < m:
        got += len(s.recv(65536))
    s.unwrap().close()
else:
    port = int(sys.argv[2])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="plain.test")
        sys.exit("a handshake with a plain TCP peer succeeded")
    except ssl.SSLError:
        pass
"#;

/// A throwaway certificate and key, readable by uid 65534.
fn certificate(dir: &Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let st = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args([
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=test",
        ])
        .args(["-days", "2", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl req");
    assert!(st.success(), "openssl req failed");
    for p in [&cert, &key] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .expect("chmod");
    }
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod dir");
    let s = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    (s(&cert), s(&key))
}

fn of<'a>(events: &'a [Value], ty: &str, pid: u64) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == ty && u(&e["pid"]) == pid)
        .collect()
}

#[test]
fn sessions_report_handshake_sni_and_exact_bytes_once() {
    sessions(true);
}

/// By default reads and writes are not probed: the same sessions, the same handshakes
/// and closes, without byte counts.
#[test]
fn sessions_without_count_bytes_have_no_byte_fields() {
    sessions(false);
}

fn sessions(count_bytes: bool) {
    let (n, k, m) = (3u64, 5000u64, 70_000u64);
    let dir = temp_dir("tls");
    let (cert, key) = certificate(&dir);
    let cfg = dir.join("ringwarden.toml");
    // Capturing the first 16 bytes of each direction turns the read and write probes on,
    // and with them the byte counts (count_bytes itself is left at false).
    let capture = if count_bytes { 16 } else { 0 };
    std::fs::write(
        &cfg,
        format!("[tls]\ncount_bytes = false\ncapture_bytes = {capture}\n"),
    )
    .expect("config");
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod config");
    let cfg = cfg.to_str().expect("utf-8 path");
    let d = Daemon::start("tls", &["--only", "tls", "--config", cfg]);

    let mut server = Command::new(PYTHON)
        .args(["-c", SCRIPT, "server", &cert, &key])
        .args([(n + 1).to_string(), k.to_string(), m.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python server");
    let mut out = server.stdout.take().expect("server stdout");
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while out.read(&mut b).expect("server output") == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    let v: Value = serde_json::from_slice(&line).expect("server printed its port");
    let port = u(&v["port"]).to_string();
    let client = as_nobody(PYTHON)
        .args(["-c", SCRIPT, "client", &port, SNI])
        .args([n.to_string(), k.to_string(), m.to_string()])
        .spawn()
        .expect("python client as nobody");
    let client_pid = u64::from(client.id());
    let st = client.wait_with_output().expect("client");
    assert!(st.status.success(), "client failed: {st:?}");
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("server output");
    assert!(server.wait().expect("server").success(), "server failed");
    let seen: Value = serde_json::from_str(rest.trim()).expect("server printed the SNI");
    assert_eq!(seen["sni"].as_array().map(Vec::len), Some(n as usize + 1));
    let server_pid = u64::from(server.id());

    // A peer that answers the ClientHello with no TLS at all.
    let plain = TcpListener::bind("127.0.0.1:0").expect("plain listener");
    let plain_port = plain.local_addr().expect("addr").port().to_string();
    let peer = std::thread::spawn(move || {
        if let Ok((mut c, _)) = plain.accept() {
            let _ = c.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
        }
    });
    let failing = as_nobody(PYTHON)
        .args(["-c", SCRIPT, "fail", &plain_port])
        .spawn()
        .expect("python failing client");
    let fail_pid = u64::from(failing.id());
    let st = failing.wait_with_output().expect("failing client");
    assert!(st.status.success(), "failing client: {st:?}");
    peer.join().expect("plain peer");

    let f = d.stop();
    f.assert_exact();
    let ev = &f.events;

    for (pid, uid, role, sni_from) in [
        (client_pid, 65534, "client", "set"),
        (server_pid, 0, "server", "asked"),
    ] {
        let hs = of(ev, "tls_handshake", pid);
        let closes = of(ev, "tls_close", pid);
        assert_eq!(hs.len() as u64, n + 1, "{role} handshakes: {hs:#?}");
        assert_eq!(closes.len() as u64, n + 1, "{role} closes: {closes:#?}");
        for e in hs.iter().chain(&closes) {
            assert_eq!(u(&e["uid"]), uid, "{e}");
            assert_eq!(e["role"], role, "{e}");
            assert_eq!(e["sni"], SNI, "{e}");
            assert_eq!(e["sni_from"], sni_from, "{e}");
            assert_eq!(e["handshake_done"], true, "{e}");
            assert_eq!(i(&e["handshake_result"]), 1, "{e}");
            assert_eq!(e["handshake_call"], "SSL_do_handshake", "{e}");
        }
        // Each session's handshake comes before its close, and each object is one session.
        for c in &closes {
            let before = hs
                .iter()
                .filter(|h| h["ssl"] == c["ssl"] && u(&h["seq"]) < u(&c["seq"]))
                .count();
            assert!(before >= 1, "no handshake before {c}");
        }
        let (whole, cut): (Vec<&&Value>, Vec<&&Value>) =
            closes.iter().partition(|c| c["ended"] == "shutdown");
        assert_eq!(whole.len() as u64, n, "{role}: {closes:#?}");
        assert_eq!(cut.len(), 1, "{role}: {closes:#?}");
        if !count_bytes {
            for c in &closes {
                assert!(c.get("bytes_read").is_none(), "{c}");
                assert!(c.get("captured_sent").is_none(), "{c}");
            }
            let ended = if role == "client" { "exit" } else { "free" };
            assert_eq!(cut[0]["ended"], ended, "{}", cut[0]);
            continue;
        }
        let (read, written) = if role == "client" { (m, k) } else { (k, m) };
        let (sent, received) = if role == "client" {
            ("x", "y")
        } else {
            ("y", "x")
        };
        for c in &whole {
            assert_eq!(
                (u(&c["bytes_read"]), u(&c["bytes_written"])),
                (read, written),
                "{c}"
            );
            assert_eq!(c["captured_sent"], sent.repeat(16), "{c}");
            assert_eq!(c["captured_received"], received.repeat(16), "{c}");
            assert!(u(&c["writes"]) >= 1 && u(&c["reads"]) >= 1, "{c}");
        }
        // The abandoned session: the client exited without SSL_free after writing 100
        // bytes; the server read those and freed it at the EOF.
        let c = cut[0];
        if role == "client" {
            assert_eq!(c["ended"], "exit", "{c}");
            assert_eq!(
                (u(&c["bytes_read"]), u(&c["bytes_written"])),
                (0, 100),
                "{c}"
            );
        } else {
            assert_eq!(c["ended"], "free", "{c}");
            assert_eq!(
                (u(&c["bytes_read"]), u(&c["bytes_written"])),
                (100, 0),
                "{c}"
            );
        }
    }

    // The failed handshake: reported once, not done, with libssl's failure result.
    let hs = of(ev, "tls_handshake", fail_pid);
    let closes = of(ev, "tls_close", fail_pid);
    assert_eq!((hs.len(), closes.len()), (1, 1), "{hs:#?} {closes:#?}");
    let h = hs[0];
    assert_eq!(h["handshake_done"], false, "{h}");
    assert!(i(&h["handshake_result"]) <= 0, "{h}");
    assert_eq!(
        (h["role"].as_str(), h["sni"].as_str()),
        (Some("client"), Some("plain.test"))
    );
    // It never read or wrote: no byte counts, whichever the setting.
    assert!(closes[0].get("bytes_read").is_none(), "{}", closes[0]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `import ssl`, then a file mapped read-only and made executable with mprotect, then
/// mapped executable at once; an anonymous executable mapping and a failed one are no
/// library. Run as uid 65534.
const LOADS: &str = r#"
import ctypes, os, ssl, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
R, W, X, PRIVATE, ANON = 1, 2, 4, 2, 0x20
fd = os.open(sys.argv[1], os.O_RDONLY)
a = libc.mmap(None, 4096, R, PRIVATE, fd, 0)
assert a not in (None, ctypes.c_void_p(-1).value)
assert libc.mprotect(a, 4096, R | X) == 0
b = libc.mmap(None, 8192, R | X, PRIVATE, fd, 4096)
assert b not in (None, ctypes.c_void_p(-1).value)
anon = libc.mmap(None, 4096, R | W | X, PRIVATE | ANON, -1, 0)
bad = libc.mmap(None, 4096, R | X, PRIVATE, 999, 0)
assert bad == ctypes.c_void_p(-1).value
"#;

#[test]
fn lib_load_of_libssl_and_of_a_file_made_executable_later() {
    let dir = temp_dir("tls-lib");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod dir");
    let file = dir.join("payload.bin");
    std::fs::write(&file, vec![0xc3u8; 3 * 4096]).expect("payload");
    let d = Daemon::start("tls-lib", &["--only", "tls"]);
    let child = as_nobody(PYTHON)
        .args(["-c", LOADS])
        .arg(&file)
        .spawn()
        .expect("python as nobody");
    let pid = u64::from(child.id());
    let st = child.wait_with_output().expect("python");
    assert!(st.status.success(), "python failed: {st:?}");
    let f = d.stop();
    f.assert_exact();
    let loads = of(&f.events, "lib_load", pid);
    let named = |end: &str| -> Vec<&&Value> {
        loads
            .iter()
            .filter(|e| e["path"].as_str().is_some_and(|p| p.ends_with(end)))
            .collect()
    };
    for lib in ["/libssl.so.3", "/libcrypto.so.3"] {
        let l = named(lib);
        assert_eq!(l.len(), 1, "{lib}: {l:#?}");
        assert_eq!(l[0]["crypto"], "openssl", "{}", l[0]);
        assert_eq!(l[0]["via"], "mmap", "{}", l[0]);
        assert_eq!(u(&l[0]["uid"]), 65534);
    }
    let p = file.canonicalize().expect("canonical path");
    let payload: Vec<&&Value> = loads
        .iter()
        .filter(|e| e["path"].as_str() == p.to_str())
        .collect();
    assert_eq!(payload.len(), 2, "{payload:#?}");
    let via: Vec<(&str, u64, u64)> = payload
        .iter()
        .map(|e| {
            (
                e["via"].as_str().unwrap_or(""),
                u(&e["len"]),
                u(&e["offset"]),
            )
        })
        .collect();
    assert_eq!(via, [("mprotect", 4096, 0), ("mmap", 8192, 4096)]);
    for e in &payload {
        assert!(e.get("crypto").is_none(), "{e}");
    }
    // Every lib_load names a file: the anonymous mapping is none.
    assert!(
        loads
            .iter()
            .all(|e| !e["path"].as_str().unwrap_or("").is_empty())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A session open before the daemon starts: no handshake is made up for it; its close
/// says it was joined midway, with the bytes moved since.
#[test]
fn a_session_older_than_the_daemon_is_joined_not_invented() {
    let (k, m) = (3000u64, 9000u64);
    let dir = temp_dir("tls-joined");
    let (cert, key) = certificate(&dir);
    let cfg = dir.join("ringwarden.toml");
    std::fs::write(&cfg, "[tls]\ncount_bytes = true\n").expect("config");
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod config");
    let mut server = Command::new(PYTHON)
        .args(["-c", SCRIPT, "server", &cert, &key, "1"])
        .args([k.to_string(), m.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python server");
    let mut out = server.stdout.take().expect("server stdout");
    let line = read_line(&mut out);
    let v: Value = serde_json::from_str(&line).expect("server printed its port");
    let port = u(&v["port"]).to_string();
    let mut client = Command::new(PYTHON)
        .args(["-c", SCRIPT, "held", &port])
        .args([k.to_string(), m.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python client");
    let mut cout = client.stdout.take().expect("client stdout");
    assert_eq!(read_line(&mut cout), "ready");
    let d = Daemon::start(
        "tls-joined",
        &[
            "--only",
            "tls",
            "--config",
            cfg.to_str().expect("utf-8 path"),
        ],
    );
    client
        .stdin
        .take()
        .expect("client stdin")
        .write_all(b"go\n")
        .expect("tell the client");
    assert!(client.wait().expect("client").success(), "client failed");
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("server output");
    assert!(server.wait().expect("server").success(), "server failed");
    let f = d.stop();
    f.assert_exact();
    // The server sat in SSL_read when the probes came: a return probe goes on at a call's
    // entry, so that one call is not seen at all (docs/events.md says so).
    for (pid, read, written) in [
        (u64::from(client.id()), m, k),
        (u64::from(server.id()), 0, m),
    ] {
        assert!(of(&f.events, "tls_handshake", pid).is_empty());
        let closes = of(&f.events, "tls_close", pid);
        assert_eq!(closes.len(), 1, "{closes:#?}");
        let c = closes[0];
        assert_eq!(c["joined"], true, "{c}");
        assert!(c.get("handshake_done").is_none(), "{c}");
        assert_eq!(c["ended"], "shutdown", "{c}");
        assert_eq!(
            (u(&c["bytes_read"]), u(&c["bytes_written"])),
            (read, written),
            "{c}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// One line of a child's output, without its newline.
fn read_line(r: &mut impl Read) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while r.read(&mut b).expect("child output") == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    String::from_utf8(line).expect("utf-8 line")
}

/// A process that execs with a session open: its close says `exec`, once; the server's
/// side ends at its free.
#[test]
fn a_session_left_open_across_exec_ends_there() {
    let dir = temp_dir("tls-exec");
    let (cert, key) = certificate(&dir);
    let d = Daemon::start("tls-exec", &["--only", "tls"]);
    let mut server = Command::new(PYTHON)
        .args(["-c", SCRIPT, "server", &cert, &key, "1", "1000", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python server");
    let mut out = server.stdout.take().expect("server stdout");
    let v: Value = serde_json::from_str(&read_line(&mut out)).expect("server printed its port");
    let port = u(&v["port"]).to_string();
    let client = as_nobody(PYTHON)
        .args(["-c", SCRIPT, "execs", &port])
        .spawn()
        .expect("python client as nobody");
    let client_pid = u64::from(client.id());
    let st = client.wait_with_output().expect("client");
    assert!(st.status.success(), "client: {st:?}");
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("server output");
    assert!(server.wait().expect("server").success(), "server failed");
    let f = d.stop();
    f.assert_exact();
    for (pid, ended) in [(client_pid, "exec"), (u64::from(server.id()), "free")] {
        let hs = of(&f.events, "tls_handshake", pid);
        let closes = of(&f.events, "tls_close", pid);
        assert_eq!((hs.len(), closes.len()), (1, 1), "{hs:#?} {closes:#?}");
        assert_eq!(closes[0]["ended"], ended, "{}", closes[0]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `systemctl reload` with `capture_bytes = 0` stops the capture at once: the next
/// session has its byte counts (the probes stay until a restart) and no plaintext.
#[test]
fn a_reload_to_capture_bytes_0_stops_capturing_at_once() {
    let dir = temp_dir("tls-reload");
    let (cert, key) = certificate(&dir);
    let cfg = dir.join("ringwarden.toml");
    let write = |n: u32| {
        std::fs::write(&cfg, format!("[tls]\ncapture_bytes = {n}\n")).expect("config");
        std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod config");
    };
    write(32);
    let d = Daemon::start(
        "tls-reload",
        &[
            "--only",
            "tls",
            "--config",
            cfg.to_str().expect("utf-8 path"),
        ],
    );
    write(0);
    d.signal(libc::SIGHUP);
    d.wait_for_log(
        "[tls] capture_bytes is 0 now",
        std::time::Duration::from_secs(10),
    );
    let mut server = Command::new(PYTHON)
        .args(["-c", SCRIPT, "server", &cert, &key, "2", "150", "200"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python server");
    let mut out = server.stdout.take().expect("server stdout");
    let v: Value = serde_json::from_str(&read_line(&mut out)).expect("server printed its port");
    let port = u(&v["port"]).to_string();
    // One whole session, then the abandoned one the client mode always adds.
    let client = as_nobody(PYTHON)
        .args(["-c", SCRIPT, "client", &port, SNI, "1", "150", "200"])
        .spawn()
        .expect("python client");
    let client_pid = u64::from(client.id());
    assert!(client.wait_with_output().expect("client").status.success());
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("server output");
    assert!(server.wait().expect("server").success(), "server failed");
    let f = d.stop();
    f.assert_exact();
    let closes = of(&f.events, "tls_close", client_pid);
    assert_eq!(closes.len(), 2, "{closes:#?}");
    for c in closes {
        let written = if c["ended"] == "shutdown" { 150 } else { 100 };
        assert_eq!(u(&c["bytes_written"]), written, "{c}");
        assert!(c.get("captured_sent").is_none(), "{c}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
