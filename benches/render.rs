//! Decode + JSON render cost per record, by record type: the consumer's share of the
//! per-event cost (`cargo bench --bench render`), and the same for a journal entry
//! (`--output journal`, encoding only: the send is journald's cost). Under `cargo test`
//! it runs a few records only, to check it still works. Prints ns per record (best of 5
//! runs).
use std::cell::RefCell;
use std::hint::black_box;
use std::time::Instant;

use ringwarden::context::{Change, Context, ContextSettings};
use ringwarden::family::{
    DecodeError, Header, file::OpenEvent, kind, process::ExecEvent, syscall::SyscallEvent,
};
use ringwarden::output::{journal, json};
use ringwarden::sys::clock::WallClock;

fn header(k: u32) -> Header {
    let mut comm = [0u8; 16];
    comm[..13].copy_from_slice(b"ringwarden-lo");
    Header {
        seq: 123_456_789,
        ts_ns: 1_234_567_890_123,
        cgroup_id: 4242,
        kind: k,
        pid: 31337,
        tid: 31338,
        ppid: 1001,
        uid: 1000,
        gid: 1000,
        comm,
    }
}

fn bytes<T: plain::Plain>(v: &T) -> Vec<u8> {
    // SAFETY: the record types are repr(C) plain data; their bytes are a ring record.
    unsafe { plain::as_bytes(v) }.to_vec()
}

fn records() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut sc = SyscallEvent {
        hdr: header(kind::SYSCALL),
        nr: 110,
        ret: 1,
        latency_ns: 412,
        ..SyscallEvent::default()
    };
    sc.args = [0, 140_737_488_355_328, 3, 0, 0, 0];
    let path = b"/usr/lib/x86_64-linux-gnu/libc.so.6";
    let mut op = OpenEvent {
        hdr: header(kind::OPEN),
        ret: 3,
        flags: 0o2_000_000,
        ino: 326_974,
        mode: 0,
        dfd: -100,
        path_len: path.len() as u32,
        syscall: 2,
        path_flags: 0,
        resolved_len: path.len() as u32,
        path: [0; 512],
        resolved: [],
    };
    op.path[..path.len()].copy_from_slice(path);
    // The record goes on with its resolved path (here the same 35 bytes).
    let mut open_rec = bytes(&op);
    open_rec.extend_from_slice(path);
    let args = b"/bin/sh\0-c\0echo hello world\0";
    let mut ex = ExecEvent {
        hdr: header(kind::EXEC),
        filename_len: 7,
        args_len: args.len() as u32,
        argc: 3,
        flags: 0,
        exe_len: 9,
        exe_flags: 0,
        login_uid: 1000,
        session_id: 3,
        filename: [0; 512],
        args: [0; 1024],
        exe: [],
    };
    ex.filename[..7].copy_from_slice(b"/bin/sh");
    ex.args[..args.len()].copy_from_slice(args);
    // The record goes on with the file executed (/bin/sh is a symlink to dash here).
    let mut exec_rec = bytes(&ex);
    exec_rec.extend_from_slice(b"/bin/dash");
    vec![
        ("syscall", "syscall (getppid)", bytes(&sc)),
        ("file", "open (35-byte path)", open_rec),
        ("process", "exec (3 args)", exec_rec),
    ]
}

/// Best of 5 runs of `n` encodings of `rec`: (ns per record, bytes of the last one).
fn time<F>(
    encode: F,
    ring: &str,
    what: &str,
    rec: &[u8],
    n: usize,
    clock: &WallClock,
) -> (f64, usize)
where
    F: Fn(&str, &WallClock, &[u8], &mut Vec<u8>) -> Result<(), DecodeError>,
{
    let mut buf = Vec::with_capacity(1 << 20);
    let mut best = f64::MAX;
    let mut len = 0;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..n {
            // The loop flushes at 64 KiB; clearing per record keeps the buffer hot the
            // same way.
            buf.clear();
            if encode(ring, clock, black_box(rec), &mut buf).is_err() {
                eprintln!("render: {what}: decode error");
                std::process::exit(1);
            }
            len = black_box(buf.len());
        }
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    (best, len)
}

/// A context as a host has it: the bench's pid 31337 under bash, sshd twice and init
/// (four ancestors, the default depth), uid 1000 named, its cgroup a service's.
fn context() -> Context {
    let dir = std::env::temp_dir().join(format!("rw-bench-render-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let passwd = dir.join("passwd");
    let _ = std::fs::write(
        &passwd,
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n",
    );
    let mut c = Context::start(ContextSettings::default(), None, None, &passwd);
    let _ = std::fs::remove_dir_all(&dir);
    let chain: [(u32, u32, &[u8], &[u8]); 5] = [
        (1, 0, b"/usr/lib/systemd/systemd", b"systemd"),
        (900, 1, b"/usr/sbin/sshd", b"sshd"),
        (1000, 900, b"/usr/sbin/sshd", b"sshd"),
        (1001, 1000, b"/usr/bin/bash", b"bash"),
        (
            31337,
            1001,
            b"/usr/local/bin/ringwarden-load",
            b"ringwarden-lo",
        ),
    ];
    for (pid, ppid, exe, comm) in chain {
        c.apply(Change::Exec {
            pid,
            ppid,
            ts: 1,
            exe: Some(exe),
            exe_deleted: false,
            comm,
            login_uid: Some(1000),
            session_id: Some(3),
        });
    }
    c.apply(Change::CgroupMkdir {
        id: 4242,
        path: b"/system.slice/ssh.service",
    });
    c
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = if full { 1_000_000 } else { 1_000 };
    let clock = WallClock::now();
    println!("render: decode + JSON per record ({n} records per run, best of 5)");
    for (ring, what, rec) in records() {
        let (best, len) = time(json::render, ring, what, &rec, n, &clock);
        println!("  {what:<22} {best:7.1} ns/record  {len} bytes of JSON");
    }
    for (ring, what, rec) in records() {
        let (best, len) = time(journal::encode, ring, what, &rec, n, &clock);
        println!("  journal {what:<14} {best:7.1} ns/record  {len} bytes of journal entry");
    }
    // The same with the process context ([context] on, the default): exe, 4 ancestors,
    // login uid, session, user, unit and cgroup looked up and written per record.
    let ctx = RefCell::new(context());
    let with = |r: &str, c: &WallClock, d: &[u8], b: &mut Vec<u8>| {
        json::render_with(r.into(), c, d, Some(&mut ctx.borrow_mut()), b)
    };
    for (ring, what, rec) in records() {
        let (best, len) = time(with, ring, what, &rec, n, &clock);
        println!("  context {what:<14} {best:7.1} ns/record  {len} bytes of JSON");
    }
    let with = |r: &str, c: &WallClock, d: &[u8], b: &mut Vec<u8>| {
        journal::encode_with(r.into(), c, d, Some(&mut ctx.borrow_mut()), b)
    };
    for (ring, what, rec) in records() {
        let (best, len) = time(with, ring, what, &rec, n, &clock);
        println!("  context journal {what:<6} {best:7.1} ns/record  {len} bytes of journal entry");
    }
}
