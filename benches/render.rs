//! Decode + JSON render cost per record, by record type: the consumer's share of the
//! per-event cost (`cargo bench --bench render`), and the same for a journal entry
//! (`--output journal`, encoding only: the send is journald's cost). Under `cargo test`
//! it runs a few records only, to check it still works. Prints ns per record (best of 5
//! runs).
use std::hint::black_box;
use std::time::Instant;

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
        ppid: 1,
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
}
