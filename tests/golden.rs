//! Golden output: one synthetic ring record of every record type of every family (and of
//! every branch that renders differently: each anomaly rule and severity, IPv4 and IPv6,
//! failures, truncation flags, unknown numbers) with nasty bytes (not UTF-8, quotes,
//! backslashes, control bytes, newlines, paths that fill their buffer), rendered through
//! the library's public API and compared byte for byte with files under `tests/golden/`:
//!
//! - `json.jsonl`: the JSON line of each record, in the order of [`records`];
//! - `journal.bin`: the native journal entry of each record, framed as
//!   `== NAME LEN\n` + the entry's LEN bytes + `\n`;
//! - `messages.txt`: `NAME<TAB>PRIORITY<TAB>MESSAGE` (the journal summary), one per record,
//!   readable in a diff.
//!
//! The files were written by the code before the module refactor of issue 9; the refactor
//! must leave them unchanged. To (re)write them after an intended output change:
//! `RINGWARDEN_BLESS=1 cargo test --test golden` (then review `git diff tests/golden`).
//! Needs no root. The expected bytes depend on the architecture (syscall numbers,
//! O_LARGEFILE): the files are for x86_64 and the comparison runs there only.
//!
//! When module paths change, only the `use` lines and [`clock`] below need editing: every
//! record is built in [`records`] from the mirror structs.
use std::fs;
use std::path::{Path, PathBuf};

use ringwarden::family::anomaly::{self, AnomalyEvent};
use ringwarden::family::cgroup::{self, CgroupEvent, OomEvent};
use ringwarden::family::file::{self, OpenEvent};
use ringwarden::family::network::{self, NetEvent};
use ringwarden::family::process::{self, ExecEvent, ExitEvent, ForkEvent};
use ringwarden::family::syscall::SyscallEvent;
use ringwarden::family::tls;
use ringwarden::family::{Header, kind};
use ringwarden::output::journal::{encode as encode_journal, summary as journal_summary};
use ringwarden::output::json::render as render_json;
use ringwarden::sys::clock::WallClock;

/// A clock with no offset: `ts` is the record's boot-time ns read as ns since the epoch,
/// the same on every machine.
fn clock() -> WallClock {
    WallClock::default()
}

// ---------------------------------------------------------------------------------
// The records (all construction is here)

/// One test record: a unique name, the ring it came from, its bytes.
struct Case {
    name: String,
    ring: &'static str,
    data: Vec<u8>,
}

fn bytes_of<T: plain::Plain>(v: &T) -> Vec<u8> {
    // SAFETY: the mirrors are repr(C) plain data: their bytes are a ring record.
    unsafe { plain::as_bytes(v) }.to_vec()
}

/// A mirror struct with every byte zero (the big ones have no `Default`).
fn zeroed<T: plain::Plain>() -> T {
    // SAFETY: plain data: every bit pattern, all zeros included, is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Copies `src` into the start of `dst`; returns the length for the `*_len` field.
fn put(dst: &mut [u8], src: &[u8]) -> u32 {
    dst[..src.len()].copy_from_slice(src);
    src.len() as u32
}

fn comm(s: &[u8]) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[..s.len()].copy_from_slice(s);
    c
}

/// A header with ordinary values; `seq` and `ts_ns` vary by record.
fn hdr(k: u32, seq: u64) -> Header {
    Header {
        seq,
        // 2024-05-06T07:08:09 plus a few ms per record: one second holds several records
        // (the clock's cached-second path) and some cross into the next.
        ts_ns: 1_714_979_289_000_000_000 + seq * 150_000_000 + 123,
        cgroup_id: 4242,
        kind: k,
        pid: 31337,
        tid: 31338,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        comm: comm(b"worker"),
    }
}

/// A path of `n` bytes: `/srv/` then `a`..`z` repeated.
fn long_path(n: usize) -> Vec<u8> {
    let mut p = b"/srv/".to_vec();
    let mut c = b'a';
    while p.len() < n {
        p.push(c);
        c = if c == b'z' { b'a' } else { c + 1 };
    }
    p.truncate(n);
    p
}

/// Every control byte, DEL, quotes, backslashes, a non-UTF-8 byte, a 2-byte and a 4-byte
/// UTF-8 character and a cut one: what a hostile process can put in a path.
fn nasty() -> Vec<u8> {
    let mut v = b"/tmp/\"q\" 'a' \\b\\ ".to_vec();
    v.extend(1u8..0x20);
    v.extend_from_slice(b"\x7f \xc3\xa9 \xf0\x9f\x90\x9b \xff\xfe \xe2\x82");
    v
}

fn records() -> Vec<Case> {
    let mut out: Vec<Case> = Vec::new();
    let mut seq = 0u64;
    let mut add = |name: &str, ring: &'static str, data: Vec<u8>| {
        out.push(Case {
            name: name.to_string(),
            ring,
            data,
        });
    };
    let mut next = || {
        seq += 1;
        seq
    };

    // --- process: exec
    let exec = |h: Header, filename: &[u8], args: &[u8], argc: u32, flags: u32| {
        let mut e: ExecEvent = zeroed();
        e.hdr = h;
        e.filename_len = put(&mut e.filename, filename);
        e.args_len = put(&mut e.args, args);
        e.argc = argc;
        e.flags = flags;
        e.login_uid = process::UNSET;
        e.session_id = process::UNSET;
        e
    };
    // The file executed follows the fixed part (exe_len bytes).
    let with_exe = |mut e: ExecEvent, exe: &[u8], flags: u32| {
        e.exe_len = exe.len() as u32;
        e.exe_flags = flags;
        let mut b = bytes_of(&e);
        b.extend_from_slice(exe);
        b
    };
    let e = exec(
        hdr(kind::EXEC, next()),
        b"/usr/bin/ls",
        b"ls\0-l\0/tmp\0",
        3,
        0,
    );
    add("exec", "process", with_exe(e, b"/usr/bin/ls", 0));
    // From a login session: its audit login uid and session.
    let mut e = exec(hdr(kind::EXEC, next()), b"/usr/bin/id", b"id\0", 1, 0);
    e.login_uid = 1000;
    e.session_id = 3;
    add("exec_login", "process", with_exe(e, b"/usr/bin/id", 0));
    // A script: the kernel ran its interpreter, which has since been deleted.
    let e = exec(
        hdr(kind::EXEC, next()),
        b"./deploy.sh",
        b"./deploy.sh\0--now\0",
        2,
        0,
    );
    add(
        "exec_script_deleted_interpreter",
        "process",
        with_exe(
            e,
            b"/usr/bin/bash",
            ringwarden::family::path::RESOLVE_DELETED,
        ),
    );
    // Args with an empty one, spaces, both quotes, a backslash, a newline, a tab; the last
    // cut short (no NUL) and both truncation flags set.
    let e = exec(
        hdr(kind::EXEC, next()),
        b"/opt/my app/run \"x\"\\y",
        b"run\0\0two words\0it's\0say \"hi\"\0back\\slash\0line\nbreak\0tab\there\0cut sh",
        12,
        process::EXEC_FILENAME_TRUNCATED | process::EXEC_ARGS_TRUNCATED,
    );
    add("exec_quotes_truncated", "process", bytes_of(&e));
    // Not UTF-8 in the filename and in one argument (argv_hex), control bytes everywhere.
    let mut h = hdr(kind::EXEC, next());
    h.comm = comm(b"ev\xffil\n\"c\\");
    let e = exec(h, &nasty(), b"a\xff\0\x01\x1b[31m\0ok\0", 3, 0);
    add("exec_not_utf8", "process", bytes_of(&e));
    // A filename filling its buffer, a length past the buffer (clamped), no arguments.
    let mut e = exec(
        hdr(kind::EXEC, next()),
        &long_path(process::FILENAME_LEN),
        b"",
        0,
        process::EXEC_FILENAME_TRUNCATED,
    );
    e.filename_len = 100_000;
    add("exec_long_filename_no_args", "process", bytes_of(&e));
    // Arguments filling their buffer without a final NUL; comm of 16 bytes, no NUL.
    let mut args = Vec::new();
    while args.len() < process::ARGS_LEN {
        args.extend_from_slice(b"--flag=value\0");
    }
    args.truncate(process::ARGS_LEN);
    let mut h = hdr(kind::EXEC, next());
    h.comm = *b"sixteen-byte-cmd";
    let e = exec(h, b"/bin/x", &args, 400, process::EXEC_ARGS_TRUNCATED);
    add("exec_full_args_full_comm", "process", bytes_of(&e));

    // --- process: exit
    let exit = |h: Header, exit_code: i32, signal: u32, core: u32, lifetime_ns: u64| ExitEvent {
        hdr: h,
        exit_code,
        signal,
        lifetime_ns,
        core_dumped: core,
        flags: 0,
    };
    let e = exit(hdr(kind::EXIT, next()), 0, 0, 0, 1_500_000_000);
    add("exit_0", "process", bytes_of(&e));
    let e = exit(hdr(kind::EXIT, next()), 3, 0, 0, 999);
    add("exit_status_3", "process", bytes_of(&e));
    let e = exit(hdr(kind::EXIT, next()), -1, 0, 0, 0);
    add("exit_status_negative", "process", bytes_of(&e));
    let e = exit(hdr(kind::EXIT, next()), 0, 9, 0, 123_456_789_012);
    add("exit_sigkill", "process", bytes_of(&e));
    let e = exit(hdr(kind::EXIT, next()), 0, 11, 1, 4_000_000);
    add("exit_sigsegv_core", "process", bytes_of(&e));
    let e = exit(hdr(kind::EXIT, next()), 0, 77, 0, u64::MAX);
    add("exit_unknown_signal", "process", bytes_of(&e));
    let mut h = hdr(kind::EXIT, next());
    h.comm = comm(b"q\"uo\\te\x07");
    let e = exit(h, 2, 0, 0, 10);
    add("exit_nasty_comm", "process", bytes_of(&e));

    // --- process: fork
    let e = ForkEvent {
        hdr: hdr(kind::FORK, next()),
        child_pid: 31400,
        child_tid: 31400,
        flags: 0,
        pad: 0,
    };
    add("fork", "process", bytes_of(&e));
    let e = ForkEvent {
        hdr: hdr(kind::FORK, next()),
        child_pid: 31337,
        child_tid: u32::MAX,
        flags: 0,
        pad: 0,
    };
    add("fork_thread", "process", bytes_of(&e));

    // --- file: open
    let open = |h: Header, sc: u32, ret: i64, path: &[u8], flags: u64, mode: u32| {
        let mut e: OpenEvent = zeroed();
        e.hdr = h;
        e.syscall = sc;
        e.ret = ret;
        e.path_len = put(&mut e.path, path);
        e.flags = flags;
        e.mode = mode;
        e.dfd = -100;
        e
    };
    let o = |f: i32| f as u32 as u64;
    // A successful open's record goes on with its resolved path.
    let resolved = |mut e: OpenEvent, r: &[u8]| {
        e.resolved_len = r.len() as u32;
        let mut b = bytes_of(&e);
        b.extend_from_slice(r);
        b
    };
    let mut e = open(
        hdr(kind::OPEN, next()),
        file::SYS_OPENAT,
        3,
        b"/etc/hosts",
        o(libc::O_RDONLY | libc::O_CLOEXEC),
        0,
    );
    e.ino = 611;
    add("open_openat_ok", "file", resolved(e, b"/etc/hosts"));
    let mut e = open(
        hdr(kind::OPEN, next()),
        file::SYS_OPEN,
        -2,
        b"/missing\nfile \"x\" \\y",
        o(libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC),
        0o644,
    );
    e.dfd = 7;
    add("open_enoent_newline", "file", bytes_of(&e));
    let e = open(
        hdr(kind::OPEN, next()),
        file::SYS_OPENAT2,
        -13,
        b"/etc/shadow",
        o(libc::O_RDWR | libc::O_APPEND | libc::O_NONBLOCK | libc::O_NOFOLLOW),
        0,
    );
    add("open_openat2_eacces", "file", bytes_of(&e));
    let mut e = open(
        hdr(kind::OPEN, next()),
        file::SYS_OPENAT,
        -4095,
        &nasty(),
        o(libc::O_RDWR | libc::O_SYNC | libc::O_TMPFILE) | 1 << 40,
        0o1777,
    );
    e.path_flags = file::OPEN_PATH_TRUNCATED;
    add(
        "open_not_utf8_composites_unknown_bits",
        "file",
        bytes_of(&e),
    );
    let mut e = open(
        hdr(kind::OPEN, next()),
        file::SYS_OPENAT,
        -14,
        b"",
        3 | 0o100000 | 0o40000000,
        0,
    );
    e.path_flags = file::OPEN_PATH_UNREADABLE;
    add("open_unreadable_accmode_largefile", "file", bytes_of(&e));
    let mut e = open(
        hdr(kind::OPEN, next()),
        99,
        5,
        &long_path(file::PATH_LEN),
        o(libc::O_WRONLY | libc::O_DSYNC | libc::O_DIRECT | libc::O_EXCL | libc::O_NOCTTY),
        0,
    );
    e.path_len = 4096;
    e.path_flags = file::OPEN_PATH_TRUNCATED | file::OPEN_RESOLVED_TRUNCATED;
    add(
        "open_long_path_unknown_syscall",
        "file",
        resolved(e, &long_path(file::RESOLVED_LEN)),
    );
    let mut e = open(
        hdr(kind::OPEN, next()),
        file::SYS_OPENAT,
        5,
        b"/etc/hostname",
        o(libc::O_RDONLY),
        0,
    );
    e.path_flags = file::OPEN_PATH_CHANGED;
    e.ino = 9001;
    add("open_path_changed", "file", resolved(e, b"/tmp/x/fifo"));
    let mut e = open(
        hdr(kind::OPEN, next()),
        file::SYS_OPEN,
        6,
        b"/proc/self/fd/3",
        o(libc::O_WRONLY),
        0,
    );
    e.path_flags = file::OPEN_PATH_UNCHECKED | file::OPEN_RESOLVED_PSEUDO;
    e.ino = 515465;
    add(
        "open_pseudo_unchecked",
        "file",
        resolved(e, b"pipe:[515465]"),
    );
    let mut e = open(
        hdr(kind::OPEN, next()),
        file::SYS_OPENAT,
        7,
        b"../../x",
        o(libc::O_RDONLY),
        0,
    );
    e.path_flags = file::OPEN_RESOLVED_DELETED
        | file::OPEN_RESOLVED_OUTSIDE_ROOT
        | file::OPEN_RESOLVED_UNAVAILABLE;
    add("open_deleted_outside_root", "file", resolved(e, b"/jail/x"));
    let e = open(
        hdr(kind::OPEN, next()),
        file::SYS_OPENAT,
        4,
        b"/",
        o(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOATIME | libc::O_ASYNC),
        0,
    );
    add("open_path_directory", "file", resolved(e, b"/"));

    // --- file changes: each type, a name from the kernel after the fixed part
    use file::change_sys as cs;
    let mut change = |k: u32,
                      sys: u32,
                      ret: i64,
                      p: [&[u8]; 2],
                      names: &[u8],
                      f: &dyn Fn(&mut file::ChangeEvent)| {
        let mut e: file::ChangeEvent = zeroed();
        e.hdr = hdr(k, next());
        e.ret = ret;
        e.syscall = sys;
        e.fd = -100;
        e.fd2 = -100;
        e.path_len = p[0].len() as u32;
        e.path2_len = p[1].len() as u32;
        e.resolved_len = names.len() as u32;
        f(&mut e);
        let mut b = bytes_of(&e);
        b.extend_from_slice(p[0]);
        b.extend_from_slice(p[1]);
        b.extend_from_slice(names);
        b
    };
    let none = |_: &mut file::ChangeEvent| {};
    let b = change(
        kind::UNLINK,
        cs::UNLINKAT,
        0,
        [b"x.tmp", b""],
        b"/home/u",
        &none,
    );
    add("unlink_relative", "file", b);
    let b = change(kind::RMDIR, cs::RMDIR, -2, [b"/gone", b""], b"", &none);
    add("rmdir_enoent", "file", b);
    let b = change(kind::MKDIR, cs::MKDIRAT, 0, [b"/srv/new", b""], b"", &|e| {
        e.mode = 0o750
    });
    add("mkdir_mode", "file", b);
    let b = change(
        kind::RENAME,
        cs::RENAMEAT2,
        0,
        [b"/etc/a", b"/etc/b"],
        b"",
        &|e| {
            e.flags = 2 // RENAME_EXCHANGE
        },
    );
    add("rename_exchange", "file", b);
    let b = change(
        kind::CHMOD,
        cs::FCHMOD,
        0,
        [b"", b""],
        b"/usr/bin/tool",
        &|e| {
            e.mode = 0o4755;
            e.fd = 3;
            e.path_flags = file::CHANGE_R1_FILE;
        },
    );
    add("chmod_fd_setuid", "file", b);
    let b = change(
        kind::CHOWN,
        cs::FCHOWNAT,
        -1,
        [b"/etc/shadow", b""],
        b"",
        &|e| {
            e.uid = 0;
            e.gid = u32::MAX;
        },
    );
    add("chown_eperm_gid_kept", "file", b);
    let b = change(
        kind::LINK,
        cs::LINK,
        0,
        [b"/etc/passwd", b"/tmp/p"],
        b"",
        &none,
    );
    add("link_both_paths", "file", b);
    let b = change(
        kind::SYMLINK,
        cs::SYMLINKAT,
        0,
        [b"../../etc", b"/tmp/l"],
        b"",
        &none,
    );
    add("symlink_target_text", "file", b);
    let b = change(
        kind::TRUNCATE,
        cs::TRUNCATE,
        0,
        [b"/var/log/auth.log", b""],
        b"",
        &none,
    );
    add("truncate_log", "file", b);

    // --- network: connect, accept, close over IPv4 and IPv6
    let v4 = |a: [u8; 4]| {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&a);
        b
    };
    let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().expect("ipv6").octets();
    let net = |k: u32, fam: u16, s: [u8; 16], sp: u16, d: [u8; 16], dp: u16| NetEvent {
        hdr: hdr(k, 0),
        saddr: s,
        daddr: d,
        sport: sp,
        dport: dp,
        family: fam,
        protocol: network::IPPROTO_TCP,
        ..NetEvent::default()
    };
    let mut e = net(
        kind::CONNECT,
        network::AF_INET,
        v4([10, 0, 0, 2]),
        40000,
        v4([93, 184, 216, 34]),
        443,
    );
    e.hdr.seq = next();
    e.ret = -115;
    e.fd = 5;
    e.flags = network::NET_DADDR_FROM_ARGS | network::NET_OWNER_KNOWN;
    add("connect_v4_in_progress", "network", bytes_of(&e));
    let mut e = net(
        kind::CONNECT,
        network::AF_INET,
        v4([127, 0, 0, 1]),
        51000,
        v4([127, 0, 0, 1]),
        1,
    );
    e.hdr.seq = next();
    e.ret = -111;
    e.fd = 6;
    add("connect_v4_refused", "network", bytes_of(&e));
    let mut e = net(
        kind::CONNECT,
        network::AF_INET,
        v4([0, 0, 0, 0]),
        0,
        v4([192, 0, 2, 1]),
        80,
    );
    e.hdr.seq = next();
    e.ret = -4000;
    e.fd = -1;
    e.flags = network::NET_DADDR_FROM_ARGS;
    add("connect_v4_unknown_errno", "network", bytes_of(&e));
    let mut e = net(
        kind::CONNECT,
        network::AF_INET6,
        v6("2001:db8::1"),
        45678,
        v6("2001:db8:0:0:1::2"),
        8443,
    );
    e.hdr.seq = next();
    e.ret = 0;
    e.fd = 7;
    add("connect_v6_ok", "network", bytes_of(&e));
    let mut e = net(
        kind::ACCEPT,
        network::AF_INET,
        v4([10, 1, 2, 3]),
        22,
        v4([10, 9, 8, 7]),
        60000,
    );
    e.hdr.seq = next();
    e.fd = 9;
    add("accept_v4", "network", bytes_of(&e));
    let mut e = net(
        kind::ACCEPT,
        network::AF_INET6,
        v6("::1"),
        8080,
        v6("::ffff:192.0.2.10"),
        50505,
    );
    e.hdr.seq = next();
    e.fd = 10;
    add("accept_v6_mapped", "network", bytes_of(&e));
    let mut e = net(
        kind::CLOSE,
        network::AF_INET,
        v4([10, 0, 0, 2]),
        40000,
        v4([93, 184, 216, 34]),
        443,
    );
    e.hdr.seq = next();
    e.bytes_sent = 1_000_000;
    e.bytes_received = 2_500;
    e.bytes_acked = 1_000_001;
    e.bytes_retrans = 1448;
    e.oldstate = 1;
    e.flags = network::NET_PEER_FIN | network::NET_OWNER_KNOWN;
    add("close_v4_retrans", "network", bytes_of(&e));
    let mut e = net(
        kind::CLOSE,
        network::AF_INET6,
        v6("fe80::1"),
        5000,
        v6("fe80::2"),
        6000,
    );
    e.hdr.seq = next();
    e.oldstate = 8;
    add("close_v6_close_wait", "network", bytes_of(&e));
    let mut e = net(kind::CLOSE, network::AF_INET6, v6("::"), 0, v6("::"), 0);
    e.hdr.seq = next();
    e.oldstate = 200;
    e.bytes_sent = u64::MAX;
    add("close_v6_unknown_state", "network", bytes_of(&e));
    let mut e = net(kind::CLOSE, 0, [0xab; 16], 1, [0xcd; 16], 2);
    e.hdr.seq = next();
    e.protocol = 132;
    e.oldstate = 7;
    add("close_unknown_family_protocol", "network", bytes_of(&e));
    let mut e = net(
        kind::BIND,
        network::AF_INET,
        v4([0, 0, 0, 0]),
        8080,
        [0; 16],
        0,
    );
    e.hdr.seq = next();
    e.fd = 3;
    add("bind_v4_tcp", "network", bytes_of(&e));
    let mut e = net(kind::BIND, network::AF_INET6, v6("::1"), 53, [0; 16], 0);
    e.hdr.seq = next();
    e.protocol = network::IPPROTO_UDP;
    e.ret = -13;
    e.fd = 4;
    e.flags = network::NET_SADDR_FROM_ARGS;
    add("bind_v6_udp_refused", "network", bytes_of(&e));
    let mut e = net(
        kind::LISTEN,
        network::AF_INET,
        v4([127, 0, 0, 1]),
        8080,
        [0; 16],
        0,
    );
    e.hdr.seq = next();
    e.fd = 3;
    e.backlog = 4096;
    add("listen_v4", "network", bytes_of(&e));
    let mut e = net(
        kind::UDP_FLOW,
        network::AF_INET,
        v4([10, 0, 0, 2]),
        53,
        v4([10, 0, 0, 9]),
        40123,
    );
    e.hdr.seq = next();
    e.protocol = network::IPPROTO_UDP;
    e.fd = -1;
    e.bytes_received = 33;
    e.packets_received = 1;
    e.flags = network::NET_FLOW_INBOUND | network::NET_OWNER_KNOWN;
    add("udp_flow_v4_inbound", "network", bytes_of(&e));
    let mut e = net(
        kind::UDP_CLOSE,
        network::AF_INET6,
        v6("2001:db8::1"),
        40000,
        v6("2001:db8::53"),
        53,
    );
    e.hdr.seq = next();
    e.protocol = network::IPPROTO_UDP;
    e.fd = -1;
    e.bytes_sent = 330;
    e.packets_sent = 10;
    e.bytes_received = 1_200;
    e.packets_received = 10;
    e.flags = network::NET_FLOW_EVICTED;
    add("udp_close_v6_evicted", "network", bytes_of(&e));
    let mut dns = |k: u32, flags: u16, reason: u16, wire: &[u8]| {
        let mut e: network::DnsEvent = zeroed();
        e.hdr = hdr(k, next());
        e.family = network::AF_INET;
        e.saddr = v4([10, 0, 0, 2]);
        e.daddr = v4([10, 0, 0, 53]);
        e.sport = 40000;
        e.dport = 53;
        e.id = 0xbeef;
        e.dns_flags = flags;
        e.qtype = 1;
        e.qclass = 1;
        e.reason = reason;
        e.length = 60;
        e.qname_len = put(&mut e.qname, wire) as u16;
        e.flags = network::DNS_OWNER_KNOWN | network::DNS_OUTBOUND;
        e
    };
    let e = dns(kind::DNS, 0x0100, 0, b"\x07example\x03com");
    add("dns_query_a", "network", bytes_of(&e));
    let mut e = dns(kind::DNS, 0x8180, 0, b"\x03a.b\x07example\x03com");
    e.flags = network::DNS_OWNER_KNOWN;
    e.ancount = 20;
    e.naddrs = 2;
    e.addr_family = [
        network::AF_INET as u8,
        network::AF_INET6 as u8,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    e.addrs[0] = v4([192, 0, 2, 1]);
    e.addrs[1] = v6("2001:db8::1");
    e.flags |= network::DNS_ANSWERS_PARTIAL;
    add("dns_response_escaped_partial", "network", bytes_of(&e));
    let mut e = dns(kind::DNS, 0x8183, 0, b"\x04nope\x04test");
    e.qtype = 4242;
    add("dns_nxdomain_unknown_type", "network", bytes_of(&e));
    let e = dns(kind::DNS_MALFORMED, 0, 1, b"");
    add("dns_malformed_short", "network", bytes_of(&e));
    let e = dns(kind::DNS_MALFORMED, 0x8180, 99, b"\x01x");
    add("dns_malformed_unknown_reason", "network", bytes_of(&e));

    // --- syscall
    let sys = |nr: u32, ret: i64, args: [u64; 6], latency_ns: u64, seq: u64| SyscallEvent {
        hdr: hdr(kind::SYSCALL, seq),
        nr,
        ret,
        latency_ns,
        args,
        ..SyscallEvent::default()
    };
    let e = sys(110, 1, [0; 6], 412, next());
    add("syscall_getppid", "syscall", bytes_of(&e));
    let e = sys(
        257,
        -2,
        [
            (-100i64) as u64,
            0x7ffd_1234_5678,
            0o2_000_000,
            0xffff,
            0x10000,
            u64::MAX,
        ],
        1_000_000_007,
        next(),
    );
    add("syscall_openat_enoent_args", "syscall", bytes_of(&e));
    let e = sys(1023, -38, [1, 2, 3, 4, 5, 6], 0, next());
    add("syscall_unknown_nr", "syscall", bytes_of(&e));
    let e = sys(
        59,
        i64::MIN,
        [(-4096i64) as u64, (-4097i64) as u64, 0, 0, 0, 0],
        u64::MAX,
        next(),
    );
    add("syscall_execve_extremes", "syscall", bytes_of(&e));

    // --- cgroup: mkdir, rmdir, attach
    let cg = |k: u32, path: &[u8], hierarchy: u32, level: u32, flags: u32, seq: u64| {
        let mut e: CgroupEvent = zeroed();
        e.hdr = hdr(k, seq);
        e.target_cgroup_id = 98765;
        e.hierarchy_id = hierarchy;
        e.level = level;
        e.flags = flags;
        e.path_len = put(&mut e.path, path);
        e
    };
    let e = cg(
        kind::CGROUP_MKDIR,
        b"/system.slice/app.service",
        0,
        2,
        0,
        next(),
    );
    add("cgroup_mkdir_v2", "cgroup", bytes_of(&e));
    let e = cg(kind::CGROUP_MKDIR, b"/", 0, 0, 0, next());
    add("cgroup_mkdir_root", "cgroup", bytes_of(&e));
    let mut e = cg(
        kind::CGROUP_RMDIR,
        &nasty(),
        3,
        1,
        cgroup::CGROUP_PATH_TRUNCATED,
        next(),
    );
    e.target_cgroup_id = u64::MAX;
    add("cgroup_rmdir_v1_not_utf8_truncated", "cgroup", bytes_of(&e));
    let mut e = cg(
        kind::CGROUP_RMDIR,
        &long_path(cgroup::PATH_LEN),
        0,
        9,
        cgroup::CGROUP_PATH_TRUNCATED,
        next(),
    );
    e.path_len = 1000;
    add("cgroup_rmdir_long_path", "cgroup", bytes_of(&e));
    let mut e = cg(
        kind::CGROUP_ATTACH,
        b"/user.slice/\"x\" y\\z",
        0,
        2,
        cgroup::CGROUP_THREADGROUP,
        next(),
    );
    e.task_pid = 4000;
    e.task_tid = 4000;
    add("cgroup_attach_threadgroup", "cgroup", bytes_of(&e));
    let mut e = cg(kind::CGROUP_ATTACH, b"/a\nb", 5, 3, 0, next());
    e.task_pid = 4000;
    e.task_tid = 4001;
    add("cgroup_attach_thread_v1", "cgroup", bytes_of(&e));

    // --- cgroup: oom_kill, with and without the detail and uid flags
    let oom = |flags: u32, victim_comm: &[u8], seq: u64| OomEvent {
        hdr: hdr(kind::OOM_KILL, seq),
        victim_pid: 5555,
        flags,
        victim_uid: 65534,
        oom_score_adj: -17,
        total_vm_kb: 262_144,
        anon_rss_kb: 16_000,
        file_rss_kb: 1_024,
        shmem_rss_kb: 0,
        pgtables_kb: 96,
        victim_comm: comm(victim_comm),
    };
    let e = oom(cgroup::OOM_DETAIL | cgroup::OOM_UID, b"hog", next());
    add("oom_kill_detail_uid", "cgroup", bytes_of(&e));
    let e = oom(0, b"hog", next());
    add("oom_kill_pid_only", "cgroup", bytes_of(&e));
    let e = oom(cgroup::OOM_UID, b"hog", next());
    add("oom_kill_uid_only", "cgroup", bytes_of(&e));
    let mut e = oom(cgroup::OOM_DETAIL, b"h\"o\\g\n\xff", next());
    e.oom_score_adj = 1000;
    add("oom_kill_detail_nasty_comm", "cgroup", bytes_of(&e));

    // --- anomaly: every rule, every severity, every syscall/location/request name,
    // unknown numbers
    let an = |rule: u32, severity: u32, code: u32, args: [u64; 6], seq: u64| {
        let mut e: AnomalyEvent = zeroed();
        e.hdr = hdr(kind::ANOMALY, seq);
        e.rule = rule;
        e.severity = severity;
        e.code = code;
        e.args = args;
        e
    };
    use anomaly::{code, rule};
    for (c, name) in [
        (code::SETUID, "setuid"),
        (code::SETREUID, "setreuid"),
        (code::SETRESUID, "setresuid"),
        (code::SETFSUID, "setfsuid"),
        (42, "unknown_syscall"),
    ] {
        let e = an(rule::SETUID_ROOT, 4, c, [1000, 1000, 1000, 0, 0, 0], next());
        add(
            &format!("anomaly_setuid_root_{name}"),
            "anomaly",
            bytes_of(&e),
        );
    }
    let e = an(
        rule::SETUID_ROOT,
        4,
        code::SETRESUID,
        [65534, 65534, u64::from(u32::MAX), 0, 65534, 0],
        next(),
    );
    add("anomaly_setuid_root_mixed_ids", "anomaly", bytes_of(&e));
    for (loc, name) in [
        (1, "tmp"),
        (2, "var_tmp"),
        (3, "dev_shm"),
        (4, "deeper_than_the_walk"),
        (9, "unknown_location"),
    ] {
        let mut e = an(rule::EXEC_FROM_TMP, 3, 0, [loc, 0, 0, 0, 0, 0], next());
        e.detail_len = put(&mut e.detail, b"/tmp/payload");
        e.name_len = put(&mut e.name, b"payload");
        add(
            &format!("anomaly_exec_from_tmp_{name}"),
            "anomaly",
            bytes_of(&e),
        );
    }
    let mut e = an(rule::EXEC_FROM_TMP, 3, 0, [1, 0, 0, 0, 0, 0], next());
    e.detail_len = put(&mut e.detail, &nasty());
    e.name_len = put(&mut e.name, b"x\xff\"'\\\n");
    e.flags = anomaly::DETAIL_TRUNCATED | anomaly::NAME_TRUNCATED;
    add(
        "anomaly_exec_from_tmp_nasty_truncated",
        "anomaly",
        bytes_of(&e),
    );
    let mut e = an(rule::EXEC_FROM_MEMFD, 3, 0, [0; 6], next());
    e.detail_len = put(&mut e.detail, b"/memfd:stage2 (deleted)");
    e.name_len = put(&mut e.name, b"memfd:stage2");
    add("anomaly_exec_from_memfd", "anomaly", bytes_of(&e));
    let mut e = an(rule::EXEC_FROM_MEMFD, 3, 0, [0; 6], next());
    e.detail_len = put(&mut e.detail, &long_path(anomaly::DETAIL_LEN));
    e.detail_len = 100_000;
    e.name_len = put(&mut e.name, &long_path(anomaly::NAME_LEN));
    e.flags = anomaly::DETAIL_TRUNCATED | anomaly::NAME_TRUNCATED;
    add("anomaly_exec_from_memfd_long", "anomaly", bytes_of(&e));
    for (req, name) in [(16, "attach"), (0x4206, "seize"), (0x4207, "unknown")] {
        let e = an(rule::PTRACE_ATTACH, 2, 0, [31400, req, 0, 0, 0, 0], next());
        add(&format!("anomaly_ptrace_{name}"), "anomaly", bytes_of(&e));
    }
    let e = an(
        rule::PTRACE_ATTACH,
        2,
        0,
        [1, 16, -1i64 as u64, 19_999, 0, 0],
        next(),
    );
    add("anomaly_ptrace_refused_suppressed", "anomaly", bytes_of(&e));
    let mut e = an(rule::BPF_PROG_LOAD, 2, 0, [0, 0, 0, 0, 4_321, 0], next());
    e.flags = anomaly::SUMMARY;
    add("anomaly_bpf_prog_load_summary", "anomaly", bytes_of(&e));
    let mut e = an(rule::BPF_PROG_LOAD, 3, 0, [1, 2, 144, 0, 0, 0], next());
    e.name_len = put(&mut e.name, b"rw_anom_test");
    add("anomaly_bpf_prog_load", "anomaly", bytes_of(&e));
    let mut e = an(
        rule::BPF_PROG_LOAD,
        3,
        0,
        [31, 1_000_000, 152, 0, 0, 0],
        next(),
    );
    e.name_len = put(&mut e.name, b"q\"u'o\\te\x01\xff");
    add("anomaly_bpf_prog_load_nasty_name", "anomaly", bytes_of(&e));
    let mut e = an(
        rule::MODULE_LOAD,
        3,
        code::INIT_MODULE,
        [123_456, 0, 0, 0, 0, 0],
        next(),
    );
    e.detail_len = put(&mut e.detail, b"debug=1 name=\"x y\" path=C:\\dir");
    add("anomaly_module_load_init_params", "anomaly", bytes_of(&e));
    let e = an(
        rule::MODULE_LOAD,
        3,
        code::FINIT_MODULE,
        [(-1i64) as u64, 4, 0, 0, 0, 0],
        next(),
    );
    add(
        "anomaly_module_load_finit_no_params",
        "anomaly",
        bytes_of(&e),
    );
    let mut e = an(
        rule::MODULE_LOAD,
        3,
        code::FINIT_MODULE,
        [3, 0, 0, 0, 0, 0],
        next(),
    );
    e.detail_len = put(&mut e.detail, &nasty());
    e.flags = anomaly::DETAIL_TRUNCATED;
    add(
        "anomaly_module_load_finit_nasty_params",
        "anomaly",
        bytes_of(&e),
    );
    let e = an(rule::MODULE_LOAD, 3, 77, [10, 0, 0, 0, 0, 0], next());
    add(
        "anomaly_module_load_unknown_syscall",
        "anomaly",
        bytes_of(&e),
    );
    // Each severity (the journal priority follows it) and unknown ones; unknown rules.
    for (sev, name) in [
        (1, "low"),
        (2, "medium"),
        (3, "high"),
        (4, "critical"),
        (0, "zero"),
        (77, "unknown"),
    ] {
        let e = an(rule::PTRACE_ATTACH, sev, 0, [1, 16, 0, 0, 0, 0], next());
        add(&format!("anomaly_severity_{name}"), "anomaly", bytes_of(&e));
    }
    let e = an(99, 2, 0, [0; 6], next());
    add("anomaly_unknown_rule", "anomaly", bytes_of(&e));
    let e = an(0, 1, 0, [0; 6], next());
    add("anomaly_rule_zero", "anomaly", bytes_of(&e));

    // --- header extremes (on a fork: the header is most of it)
    for (ts, name) in [
        (0, "ts_zero"),
        (999_999_999, "ts_last_ns_of_1970"),
        (u64::MAX, "ts_max"),
    ] {
        let mut h = hdr(kind::FORK, next());
        h.ts_ns = ts;
        h.seq = u64::MAX - h.seq;
        h.cgroup_id = u64::MAX;
        h.pid = u32::MAX;
        h.tid = 0;
        h.ppid = 0;
        h.uid = u32::MAX;
        h.gid = 0;
        h.comm = [0; 16];
        let e = ForkEvent {
            hdr: h,
            child_pid: 1,
            child_tid: 2,
            flags: 0,
            pad: 0,
        };
        add(&format!("header_{name}"), "process", bytes_of(&e));
    }
    // A record read from another ring's name (the ring field is whatever the loop says).
    let e = ForkEvent {
        hdr: hdr(kind::FORK, next()),
        child_pid: 3,
        child_tid: 3,
        flags: 0,
        pad: 0,
    };
    add("fork_ring_name_quoted", "pro\"cess", bytes_of(&e));

    // --- tls: lib_load (the path follows the fixed part), handshakes and closes
    let lib = |path: &[u8], via: u32, flags: u32, seq: u64| {
        let e = tls::LibLoadEvent {
            hdr: hdr(kind::LIB_LOAD, seq),
            addr: 0x7f00_1234_0000,
            len: 380_928,
            pgoff: 31,
            inode: 131_077,
            dev: (254 << 20) | 1,
            via,
            path_len: path.len() as u32,
            path_flags: flags,
            path: [],
        };
        let mut b = bytes_of(&e);
        b.extend_from_slice(path);
        b
    };
    let b = lib(
        b"/usr/lib/x86_64-linux-gnu/libssl.so.3",
        tls::LIB_VIA_MMAP,
        0,
        next(),
    );
    add("lib_load_libssl", "tls", b);
    let b = lib(b"/usr/lib/libc.so.6", tls::LIB_VIA_MMAP, 0, next());
    add("lib_load_not_crypto", "tls", b);
    let b = lib(
        b"/memfd:x (deleted)",
        tls::LIB_VIA_MPROTECT,
        ringwarden::family::path::RESOLVE_PSEUDO,
        next(),
    );
    add("lib_load_mprotect_memfd", "tls", b);
    let b = lib(&nasty(), tls::LIB_VIA_MMAP, 0, next());
    add("lib_load_nasty_path", "tls", b);
    let session = |role: u32, sni: &[u8], from: u32, flags: u32| {
        let mut s: tls::TlsSession = zeroed();
        s.ssl = 0x55d0_0000_1000;
        s.start_ns = 1;
        s.bytes_read = 7000;
        s.bytes_written = 5000;
        s.reads = 2;
        s.writes = 1;
        s.result = 1;
        s.call = tls::CALL_DO_HANDSHAKE;
        s.role = role;
        s.flags = flags | tls::TLS_HANDSHAKE_SEEN | tls::TLS_HANDSHAKE_DONE;
        s.sni_from = from;
        s.sni_len = put(&mut s.sni, sni);
        s
    };
    let tls_event = |k: u32, s: tls::TlsSession, ended: u32, seq: u64| tls::TlsEvent {
        hdr: hdr(k, seq),
        handshake_ns: 3_137_793,
        ended,
        pad: 0,
        s,
    };
    let s = session(tls::ROLE_CLIENT, b"example.com", tls::SNI_SET, 0);
    add(
        "tls_handshake_client",
        "tls",
        bytes_of(&tls_event(kind::TLS_HANDSHAKE, s, 0, next())),
    );
    let s = session(tls::ROLE_SERVER, &nasty(), tls::SNI_ASKED, 0);
    add(
        "tls_handshake_server_nasty_sni",
        "tls",
        bytes_of(&tls_event(kind::TLS_HANDSHAKE, s, 0, next())),
    );
    let mut s = session(tls::ROLE_UNKNOWN, b"", tls::SNI_NONE, 0);
    s.flags &= !tls::TLS_HANDSHAKE_DONE;
    s.result = -1;
    add(
        "tls_handshake_failed",
        "tls",
        bytes_of(&tls_event(kind::TLS_HANDSHAKE, s, 0, next())),
    );
    let mut s = session(tls::ROLE_CLIENT, b"x", tls::SNI_SET, tls::TLS_SNI_TRUNCATED);
    s.call = tls::CALL_IMPLICIT;
    add(
        "tls_handshake_implicit_truncated_sni",
        "tls",
        bytes_of(&tls_event(kind::TLS_HANDSHAKE, s, 0, next())),
    );
    for (ended, name) in [
        (tls::ENDED_SHUTDOWN, "shutdown"),
        (tls::ENDED_FREE, "free"),
        (tls::ENDED_EXIT, "exit"),
        (tls::ENDED_EXEC, "exec"),
    ] {
        let s = session(
            tls::ROLE_SERVER,
            b"example.com",
            tls::SNI_ASKED,
            tls::TLS_BYTES_COUNTED,
        );
        add(
            &format!("tls_close_{name}"),
            "tls",
            bytes_of(&tls_event(kind::TLS_CLOSE, s, ended, next())),
        );
    }
    // First seen at a read: begun before the daemon watched.
    let mut s = session(
        tls::ROLE_UNKNOWN,
        b"",
        tls::SNI_NONE,
        tls::TLS_BYTES_COUNTED | tls::TLS_JOINED,
    );
    s.flags &= !(tls::TLS_HANDSHAKE_SEEN | tls::TLS_HANDSHAKE_DONE);
    add(
        "tls_close_joined",
        "tls",
        bytes_of(&tls_event(kind::TLS_CLOSE, s, tls::ENDED_EXIT, next())),
    );
    // Plaintext captured ([tls] capture_bytes), control bytes and all.
    let mut s = session(
        tls::ROLE_CLIENT,
        b"example.com",
        tls::SNI_SET,
        tls::TLS_BYTES_COUNTED | tls::TLS_CAPTURED,
    );
    s.cap_sent_len = put(&mut s.cap_sent, b"GET / HTTP/1.1\r\nHost: example.com\r\n");
    s.cap_recv_len = put(&mut s.cap_recv, b"HTTP/1.1 200 OK\r\n\xff\x00");
    add(
        "tls_close_captured",
        "tls",
        bytes_of(&tls_event(kind::TLS_CLOSE, s, tls::ENDED_SHUTDOWN, next())),
    );
    // Reads and writes not probed ([tls] count_bytes off): no byte counts.
    let s = session(tls::ROLE_CLIENT, b"example.com", tls::SNI_SET, 0);
    add(
        "tls_close_bytes_not_counted",
        "tls",
        bytes_of(&tls_event(kind::TLS_CLOSE, s, tls::ENDED_FREE, next())),
    );
    out
}

// ---------------------------------------------------------------------------------
// Rendering and comparing

struct Rendered {
    json: Vec<u8>,
    journal: Vec<u8>,
    messages: Vec<u8>,
}

fn render_all(cases: &[Case]) -> Rendered {
    // One clock for the whole run, as in the daemon (its cached second is exercised).
    let (json_clock, journal_clock) = (clock(), clock());
    let mut r = Rendered {
        json: Vec::new(),
        journal: Vec::new(),
        messages: Vec::new(),
    };
    for c in cases {
        let mut line = Vec::new();
        render_json(c.ring, &json_clock, &c.data, &mut line)
            .unwrap_or_else(|e| panic!("{}: JSON: {e}", c.name));
        assert!(
            line.ends_with(b"\n") && line.iter().filter(|&&b| b == b'\n').count() == 1,
            "{}: one JSON line",
            c.name
        );
        r.json.extend_from_slice(&line);

        let mut entry = Vec::new();
        encode_journal(c.ring, &journal_clock, &c.data, &mut entry)
            .unwrap_or_else(|e| panic!("{}: journal: {e}", c.name));
        r.journal
            .extend_from_slice(format!("== {} {}\n", c.name, entry.len()).as_bytes());
        r.journal.extend_from_slice(&entry);
        r.journal.push(b'\n');

        let h: &Header = plain::from_bytes(&c.data).expect("a header");
        let mut msg = Vec::new();
        let prio = journal_summary(h, &c.data, &mut msg)
            .unwrap_or_else(|e| panic!("{}: summary: {e}", c.name));
        assert!(!msg.contains(&b'\n'), "{}: one line", c.name);
        r.messages
            .extend_from_slice(format!("{}\t{prio}\t", c.name).as_bytes());
        r.messages.extend_from_slice(&msg);
        r.messages.push(b'\n');
    }
    r
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Where two byte strings first differ: the offset and 60 bytes from a little before it.
fn at_difference(want: &[u8], got: &[u8]) -> String {
    let at = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    let from = at.saturating_sub(20);
    let show = |v: &[u8]| {
        let to = (from + 60).min(v.len());
        String::from_utf8_lossy(&v[from.min(to)..to])
            .escape_debug()
            .to_string()
    };
    format!(
        "first difference at byte {at}:\n  golden: ...{}...\n  now:    ...{}...",
        show(want),
        show(got)
    )
}

/// The first differing line of two texts, for the failure message.
fn first_difference(want: &[u8], got: &[u8], names: &[String]) -> String {
    let (w, g): (Vec<&[u8]>, Vec<&[u8]>) = (
        want.split(|&b| b == b'\n').collect(),
        got.split(|&b| b == b'\n').collect(),
    );
    for i in 0..w.len().max(g.len()) {
        let (a, b) = (w.get(i), g.get(i));
        if a != b {
            let name = names
                .get(i)
                .map_or("(past the last record)", |s| s.as_str());
            return format!(
                "line {} ({name}), {}",
                i + 1,
                at_difference(
                    a.copied().unwrap_or_default(),
                    b.copied().unwrap_or_default()
                )
            );
        }
    }
    "same lines, different bytes".into()
}

/// The framed journal entries of `journal.bin`: (name, entry bytes).
fn journal_entries(mut b: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let nl = b.iter().position(|&c| c == b'\n').expect("frame line");
        let head = std::str::from_utf8(&b[..nl]).expect("frame line is text");
        let (name, len) = head
            .strip_prefix("== ")
            .and_then(|h| h.rsplit_once(' '))
            .unwrap_or_else(|| panic!("bad frame line {head:?}"));
        let len: usize = len.parse().expect("frame length");
        let body = &b[nl + 1..];
        assert_eq!(
            body.get(len),
            Some(&b'\n'),
            "frame of {name} ends with a newline"
        );
        out.push((name.to_string(), body[..len].to_vec()));
        b = &body[len + 1..];
    }
    out
}

#[test]
#[cfg(target_arch = "x86_64")]
fn json_and_journal_output_match_the_golden_files() {
    let cases = records();
    let mut seen = std::collections::HashSet::new();
    for c in &cases {
        assert!(seen.insert(c.name.as_str()), "two records named {}", c.name);
    }
    let now = render_all(&cases);
    let dir = golden_dir();
    let files = [
        ("json.jsonl", &now.json),
        ("journal.bin", &now.journal),
        ("messages.txt", &now.messages),
    ];
    if std::env::var_os("RINGWARDEN_BLESS").is_some_and(|v| v == "1") {
        fs::create_dir_all(&dir).expect("create tests/golden");
        for (f, bytes) in files {
            fs::write(dir.join(f), bytes).unwrap_or_else(|e| panic!("write {f}: {e}"));
        }
        eprintln!("golden: wrote {} records to {}", cases.len(), dir.display());
        return;
    }
    let names: Vec<String> = cases.iter().map(|c| c.name.clone()).collect();
    let read = |f: &str| {
        fs::read(dir.join(f)).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; write it with RINGWARDEN_BLESS=1 cargo test --test golden",
                dir.join(f).display()
            )
        })
    };
    let mut failures = Vec::new();
    for f in ["json.jsonl", "messages.txt"] {
        let want = read(f);
        let got = files.iter().find(|(n, _)| *n == f).expect("file").1;
        if want != *got {
            failures.push(format!(
                "{f} differs: {}",
                first_difference(&want, got, &names)
            ));
        }
    }
    let want = journal_entries(&read("journal.bin"));
    let got = journal_entries(&now.journal);
    let want_names: Vec<&str> = want.iter().map(|(n, _)| n.as_str()).collect();
    let got_names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    if want_names != got_names {
        failures.push(format!(
            "journal.bin holds other records:\n  golden: {want_names:?}\n  now:    {got_names:?}"
        ));
    }
    for ((name, w), (_, g)) in want.iter().zip(&got) {
        if w != g {
            failures.push(format!(
                "journal entry {name} differs, {}",
                at_difference(w, g)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "output changed (if intended: RINGWARDEN_BLESS=1 cargo test --test golden, then \
         review git diff tests/golden):\n{}",
        failures.join("\n")
    );
}

/// Every record type is among the records, and each JSON line parses as one object.
#[test]
fn records_cover_every_record_type() {
    let cases = records();
    let types: std::collections::BTreeSet<u32> = cases
        .iter()
        .map(|c| plain::from_bytes::<Header>(&c.data).expect("header").kind)
        .collect();
    let all: std::collections::BTreeSet<u32> = ringwarden::family::Family::ALL
        .iter()
        .flat_map(|f| f.spec().kinds.iter().map(|(k, _)| *k))
        .collect();
    assert_eq!(types, all, "a record of every type");
    let json = render_all(&cases).json;
    let lines: Vec<&[u8]> = json
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), cases.len(), "one JSON line per record");
    for (l, c) in lines.iter().zip(&cases) {
        let v: serde_json::Value =
            serde_json::from_slice(l).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert!(v["type"].is_string() && v["seq"].is_u64(), "{}", c.name);
    }
}
