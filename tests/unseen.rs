//! The blind spots, counted: opens made by an unprivileged process as 32-bit compat
//! syscalls (int 0x80) or as io_uring submissions reach none of the file family's
//! programs, and the syscall family counts each one exactly (by ia32 number, by opcode),
//! in the stats, the status answer and the metrics.
//!
//! These counters are host-wide (a counter per process would cost a hash lookup on
//! every compat syscall and io_uring submission). The equalities hold because nothing
//! else in the test suite makes 32-bit opens or io_uring submissions: only these tests
//! run `ringwarden-load --via compat|io_uring` (tests/syscall.rs makes int 0x80 calls,
//! but of ia32 getpid, which is not counted), and a machine's own services make none.
//! Each test's daemon starts its counters at zero, and the tests here take turns
//! ([`turn`]) across processes: run at the same time (in parallel, or by another
//! checkout's test run on the same host), each daemon would count the other's opens too.
mod common;

use std::time::Duration;

use common::obs::{metrics_port, num, scrape, wait_until};
use common::{Daemon, as_nobody, load_bin, u};
use serde_json::Value;

/// ringwarden-load as uid 65534, to completion; its JSON line.
fn load_as_nobody(args: &[&str]) -> Value {
    let bin = load_bin();
    let stdout = common::run_load(as_nobody(bin.to_str().expect("utf-8 path")), args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("bad JSON {stdout:?}: {e}"))
}

/// Held by each test here for its daemon's whole life: an exclusive flock, so that it
/// also excludes these tests run by another process on the host.
struct Turn(#[allow(dead_code)] std::fs::File);

fn turn() -> Turn {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/ringwarden-test-unseen.lock")
        .expect("open the turn lock");
    // SAFETY: flock on an fd we own; released when the file is closed.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    Turn(f)
}

/// The one producer thread of a load run.
fn producer(out: &Value) -> u64 {
    let t = out["threads"].as_array().expect("threads");
    assert_eq!(t.len(), 1, "{out}");
    u(&t[0]["tid"])
}

#[cfg(target_arch = "x86_64")]
#[test]
fn compat_opens_are_unseen_by_the_file_family_and_counted_exactly() {
    const N: u64 = 37;
    const NATIVE: u64 = 11;
    let _turn = turn();
    let d = Daemon::start("unseen-compat", &["--only", "file,syscall"]);
    let compat = load_as_nobody(&["--family", "file", "--via", "compat", "--events", "37"]);
    assert_eq!(u(&compat["generated"]), N, "{compat}");
    // The same opens as 64-bit syscalls: seen by the file family, not counted as compat.
    let native = load_as_nobody(&["--family", "file", "--via", "syscall", "--events", "11"]);
    let f = d.stop();
    f.assert_exact();

    let enter = &f.stats["programs"]["syscall_enter"];
    assert_eq!(enter["attached"], true, "{enter}");
    let unseen = &f.stats["unseen"];
    assert_eq!(u(&unseen["compat"]["syscalls"]["open"]), N, "{unseen}");
    let opens_by = |tid: u64| f.of_type("open").filter(|e| u(&e["tid"]) == tid).count() as u64;
    assert_eq!(
        opens_by(producer(&compat)),
        0,
        "the file family is blind to them"
    );
    assert_eq!(opens_by(producer(&native)), NATIVE);
    assert!(
        f.stderr
            .lines()
            .any(|l| l.contains("final unseen compat=") && l.contains(&format!("open {N}"))),
        "{}",
        f.stderr
    );
}

/// The file changes are blind to compat calls too: N ia32 unlinks (10) of a missing
/// file, each ENOENT, are no `unlink` event and exactly N counted compat unlinks.
#[cfg(target_arch = "x86_64")]
#[test]
fn compat_unlinks_are_unseen_by_the_file_family_and_counted_exactly() {
    const N: u64 = 13;
    let _turn = turn();
    // The path below 4 GiB, where a 32-bit call can point.
    let page = low_page();
    let path = b"/nonexistent-ringwarden-compat-unlink\0";
    // SAFETY: the page holds 4096 bytes; the path is shorter.
    unsafe { std::ptr::copy_nonoverlapping(path.as_ptr(), page.cast::<u8>(), path.len()) };
    let d = Daemon::start("unseen-compat-unlink", &["--only", "file,syscall"]);
    for _ in 0..N {
        let mut ret: i32 = 10;
        // SAFETY: ia32 unlink reads ebx (a NUL-terminated path below 4 GiB); int 0x80
        // clobbers r8-r11; rbx is the compiler's: swapped in and out.
        unsafe {
            std::arch::asm!(
                "xchg {p}, rbx",
                "int 0x80",
                "xchg {p}, rbx",
                p = inout(reg) page as u64 => _,
                inout("eax") ret,
                out("r8") _,
                out("r9") _,
                out("r10") _,
                out("r11") _,
                options(nostack),
            );
        }
        assert_eq!(ret, -libc::ENOENT);
    }
    let f = d.stop();
    f.assert_exact();
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(page, 4096) };
    let unseen = &f.stats["unseen"];
    assert_eq!(u(&unseen["compat"]["syscalls"]["unlink"]), N, "{unseen}");
    let tid = u64::from(common::gettid());
    let seen = f.of_type("unlink").filter(|e| u(&e["tid"]) == tid).count();
    assert_eq!(seen, 0, "the file family is blind to them");
}

/// A fresh page below 4 GiB, where a 32-bit call's pointer can point (munmap it).
#[cfg(target_arch = "x86_64")]
fn low_page() -> *mut libc::c_void {
    // SAFETY: a fresh anonymous mapping, checked below.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    page
}

/// ia32 `int 0x80` with three arguments (ebx, ecx, edx): the call's return.
#[cfg(target_arch = "x86_64")]
fn int80(nr: i32, a: u64, b: u64, c: u64) -> i32 {
    let mut ret = nr;
    // SAFETY: the caller passes arguments valid for syscall `nr`; int 0x80 clobbers
    // r8-r11; rbx is the compiler's: swapped in and out.
    unsafe {
        std::arch::asm!(
            "xchg {p}, rbx",
            "int 0x80",
            "xchg {p}, rbx",
            p = inout(reg) a => _,
            inout("eax") ret,
            in("ecx") b as u32,
            in("edx") c as u32,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            options(nostack),
        );
    }
    ret
}

/// The network family's bind and listen are blind to compat calls: N ia32 binds of fresh
/// TCP sockets to 127.0.0.1 port 0 and N ia32 listens give no event and exactly N counted
/// of each.
#[cfg(target_arch = "x86_64")]
#[test]
fn compat_binds_and_listens_are_unseen_by_the_network_family_and_counted_exactly() {
    const N: usize = 7;
    const IA32_BIND: i32 = 361;
    const IA32_LISTEN: i32 = 363;
    let _turn = turn();
    // The sockaddr below 4 GiB, where a 32-bit call can point.
    let page = low_page();
    // SAFETY: the page holds 4096 bytes, more than a sockaddr_in.
    unsafe {
        let sa = page.cast::<libc::sockaddr_in>();
        sa.write(std::mem::zeroed());
        (*sa).sin_family = libc::AF_INET as u16;
        (*sa).sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    }
    let len = std::mem::size_of::<libc::sockaddr_in>() as u64;
    let d = Daemon::start("unseen-compat-bind", &["--only", "network,syscall"]);
    let mut fds = Vec::new();
    for _ in 0..N {
        // SAFETY: a plain socket call.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        assert!(fd >= 0);
        fds.push(fd);
        assert_eq!(int80(IA32_BIND, fd as u64, page as u64, len), 0);
        assert_eq!(int80(IA32_LISTEN, fd as u64, 4, 0), 0);
    }
    let f = d.stop();
    f.assert_exact();
    for fd in fds {
        // SAFETY: closing the sockets made above.
        unsafe { libc::close(fd) };
    }
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(page, 4096) };
    let unseen = &f.stats["unseen"];
    let n = N as u64;
    assert_eq!(u(&unseen["compat"]["syscalls"]["bind"]), n, "{unseen}");
    assert_eq!(u(&unseen["compat"]["syscalls"]["listen"]), n, "{unseen}");
    let tid = u64::from(common::gettid());
    let seen = f
        .events
        .iter()
        .filter(|e| u(&e["tid"]) == tid && (e["type"] == "bind" || e["type"] == "listen"))
        .count();
    assert_eq!(seen, 0, "the network family is blind to them");
}

/// The tls family's lib_load is blind to compat calls: N ia32 mprotects that make a file's
/// page executable give no event and exactly N counted.
#[cfg(target_arch = "x86_64")]
#[test]
fn compat_mprotects_are_unseen_by_the_tls_family_and_counted_exactly() {
    const N: usize = 5;
    const IA32_MPROTECT: i32 = 125;
    let _turn = turn();
    let dir = common::temp_dir("unseen-compat-mprotect");
    let path = dir.join("page.bin");
    std::fs::write(&path, vec![0xc3u8; 4096]).expect("write the file");
    let file = std::fs::File::open(&path).expect("open the file");
    // A read-only mapping of the file below 4 GiB, where a 32-bit call can point.
    // SAFETY: a fresh private mapping of an open file, checked below.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_32BIT,
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    let d = Daemon::start("unseen-compat-mprotect", &["--only", "tls,syscall"]);
    for _ in 0..N {
        let rx = (libc::PROT_READ | libc::PROT_EXEC) as u64;
        assert_eq!(int80(IA32_MPROTECT, page as u64, 4096, rx), 0);
        assert_eq!(
            int80(IA32_MPROTECT, page as u64, 4096, libc::PROT_READ as u64),
            0
        );
    }
    let f = d.stop();
    f.assert_exact();
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(page, 4096) };
    let unseen = &f.stats["unseen"];
    assert_eq!(
        u(&unseen["compat"]["syscalls"]["mprotect"]),
        2 * N as u64,
        "{unseen}"
    );
    let tid = u64::from(common::gettid());
    let seen = f
        .events
        .iter()
        .filter(|e| u(&e["tid"]) == tid && e["type"] == "lib_load")
        .count();
    assert_eq!(seen, 0, "the tls family is blind to them");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn io_uring_opens_are_unseen_by_the_file_family_and_counted_exactly() {
    const N: u64 = 23;
    let _turn = turn();
    let d = Daemon::start(
        "unseen-io-uring",
        &["--only", "file,syscall", "--metrics-listen", "127.0.0.1:0"],
    );
    let port = metrics_port(&d);
    let out = load_as_nobody(&["--family", "file", "--via", "io_uring", "--events", "23"]);
    assert_eq!(u(&out["generated"]), N, "{out}");
    const OPENAT: &str = "ringwarden_io_uring_submissions_total{opcode=\"openat\"}";
    wait_until(
        "the openat submissions in the metrics",
        Duration::from_secs(5),
        || scrape(port).contains_key(OPENAT),
    );
    let m = scrape(port);
    assert_eq!(num(&m, OPENAT), N);
    let by_opcode: u64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("ringwarden_io_uring_submissions_total{"))
        .map(|(k, _)| num(&m, k))
        .sum();
    assert_eq!(
        num(&m, "ringwarden_unseen_total{path=\"io_uring\"}"),
        by_opcode
    );
    let f = d.stop();
    f.assert_exact();

    let unseen = &f.stats["unseen"]["io_uring"];
    assert_eq!(u(&unseen["opcodes"]["openat"]), N, "{unseen}");
    let mine = f
        .of_type("open")
        .filter(|e| u(&e["tid"]) == producer(&out))
        .count();
    assert_eq!(mine, 0, "the file family is blind to io_uring opens");
    let programs = &f.stats["programs"]["syscall_io_uring"];
    assert_eq!(programs["attached"], true, "{programs}");
    assert_eq!(
        programs["attach"],
        "tracepoint/io_uring/io_uring_submit_req"
    );
    // This kernel (6.3+) has no io_uring_submit_sqe: its program says where the count is.
    let sqe = &f.stats["programs"]["syscall_io_uring_sqe"];
    assert_eq!(sqe["attached"], false, "{sqe}");
    assert_eq!(
        sqe["not_applicable"],
        "this kernel's io_uring submissions are counted on tracepoint io_uring_submit_req (no io_uring_submit_sqe)"
    );
}

/// The counts are kept like the rings' books: a syscall family switched off and on again by
/// SIGHUP continues them (its map is handed to the new object), it does not start at zero.
#[cfg(target_arch = "x86_64")]
#[test]
fn compat_counts_survive_the_syscall_family_switched_off_and_on() {
    let _turn = turn();
    let dir = common::temp_dir("unseen-sighup");
    let cfg = dir.join("ringwarden.toml");
    let families = |f: &str| {
        std::fs::write(&cfg, format!("families = [{f}]\n")).expect("write config");
    };
    families("\"file\", \"syscall\"");
    let d = Daemon::start(
        "unseen-sighup",
        &["--config", cfg.to_str().expect("utf-8 path")],
    );
    let opens = |n: &str| {
        let out = load_as_nobody(&["--family", "file", "--via", "compat", "--events", n]);
        assert_eq!(out["generated"].to_string(), n, "{out}");
    };
    let hup = |word: &str| {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
        d.wait_for_log(word, Duration::from_secs(10));
    };
    opens("5");
    families("\"file\"");
    hup("retired ring syscall");
    families("\"file\", \"syscall\"");
    hup("SIGHUP: family syscall switched on");
    opens("7");
    let f = d.stop();
    f.assert_exact();
    let unseen = &f.stats["unseen"]["compat"];
    assert_eq!(u(&unseen["syscalls"]["open"]), 12, "{unseen}");
    let _ = std::fs::remove_dir_all(&dir);
}
