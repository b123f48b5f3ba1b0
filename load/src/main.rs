//! ringwarden-load: makes real kernel events of one family at a chosen rate, burst pattern and
//! count or duration, and prints exactly how many it made, so the daemon's accounting can be
//! checked from outside. Self-contained on purpose (std + libc only, none of the daemon's
//! modules): a checker must not share code with what it checks.
use std::ffi::CString;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

const USAGE: &str = "\
ringwarden-load - make real kernel events for ringwarden and count them exactly

Usage:
  ringwarden-load --family FAMILY (--events N | --duration SECS) [OPTIONS]
  ringwarden-load --help | --version

Options:
      --family FAMILY    process, file, network, syscall, cgroup or anomaly (required)
      --events N         stop after N events in total (N >= 1)
      --duration SECS    stop after SECS seconds (decimals allowed); with --events too,
                         whichever comes first. One of the two is required.
      --rate R           events per second in total, over all threads (decimals allowed);
                         0 or absent: as fast as possible
      --burst B          with --rate: B events back to back, then a pause, so that the
                         average stays R (bursts start every B/R s) [default: 1]
      --threads T        producer threads, 1 to 256 [default: 1]; --rate is the total
      --syscall NAME     syscall family: which syscall to call, one of getppid, getpid,
                         gettid, getuid, geteuid, getgid, getegid, getpgid, getsid,
                         sched_get_priority_max, sched_get_priority_min [default: getppid]
      --path DIR         file family: an existing directory for the files it opens
                         [default: a fresh directory in $TMPDIR, removed at the end]
      --via WAY          file family: how the open is made: syscall (openat(2)), compat
                         (a 32-bit open through int 0x80, x86_64 only) or io_uring (an
                         IORING_OP_OPENAT submission, one ring per thread) [default: syscall]
  -q, --quiet            no progress lines on stderr
  -h, --help             this text
  -V, --version          print the version

What one event is, per family (all are made by the producer threads, whose tids the
output lists; setup and cleanup run on the main thread):
  syscall   one raw syscall(2) of --syscall (getpgid and getsid get 0: the caller).
            Daemon: one `syscall` event with that name, if it is in --syscalls.
  file      one openat(AT_FDCWD, FILE, O_RDONLY|O_CLOEXEC) of the thread's own file
            (listed as `file` per thread) + close. Daemon: one `open` event (ret >= 0).
            With --via compat or io_uring the file family sees nothing (its blind
            spots); the syscall family counts one ia32 `open` or one io_uring `openat`.
  process   one fork+exec of /bin/true (posix_spawn, i.e. clone + execve) + wait.
            Daemon: one `fork` (tid = the producer), one `exec` and one `exit` (both with
            the child's pid and ppid = this pid). The child's own activity (ld.so's opens)
            shows in other families.
  network   one TCP connect to the thread's listener on 127.0.0.1 (`listen_port` per
            thread) + accept + close of the accepted socket, then of the client.
            Daemon: one `connect`, one `accept` and two `close` events (the closes run in
            softirq context, normally before the last close(2) returns).
  cgroup    one mkdir + rmdir of the thread's cgroup directory (`cgroup` per thread) under
            the cgroup2 mount found in /proc/mounts. Daemon: one `cgroup_mkdir` and one
            `cgroup_rmdir` event (hierarchy_id 0).
  anomaly   one bpf(BPF_PROG_LOAD) of a 2-instruction socket filter named rw_load, then
            close (cheaper than a ptrace attach: no child). Daemon: one `anomaly` event with
            rule bpf_prog_load (and a `syscall` event named bpf when the syscall family
            traces bpf, as its default set does).

Pacing: absolute deadlines, no drift. Global event g is due at start + floor(g/B)*B/R;
thread j of T makes events g = j, j+T, j+2T, ... A thread that falls behind catches up
back to back. With --duration, events due at or after the end are not made; with --rate,
exactly those due before it are (R x D in all), unless the rate cannot be reached: a thread
still behind 100 ms after the end stops there.

Output: one JSON line on stdout at the end, e.g.
  {\"family\":\"syscall\",\"generated\":50000,\"threads\":[{\"tid\":1234,\"generated\":25000},
   ...],\"pid\":999,\"elapsed_s\":2.500,\"rate\":20000.0,\"stopped_by\":\"count\",...}
`generated` is exact: the sum of the threads' counts, each counting completed events only.
`stopped_by` is count, duration, signal or error; family details follow (syscall and nr;
dir and each thread's file; each thread's listen_port; cgroup_root and each thread's cgroup;
prog_name). Progress and diagnostics go to stderr only.

Signals: SIGINT or SIGTERM stop production (the event in flight completes); the count is
still printed, exit 0.
Exit codes: 0 ok, 1 an event could not be made (the JSON line is printed with `error`) or
setup failed, 64 usage error, 78 bad value.
";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Process,
    File,
    Network,
    Syscall,
    Cgroup,
    Anomaly,
}

impl Family {
    fn parse(s: &str) -> Option<Family> {
        Some(match s {
            "process" => Family::Process,
            "file" => Family::File,
            "network" => Family::Network,
            "syscall" => Family::Syscall,
            "cgroup" => Family::Cgroup,
            "anomaly" => Family::Anomaly,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Family::Process => "process",
            Family::File => "file",
            Family::Network => "network",
            Family::Syscall => "syscall",
            Family::Cgroup => "cgroup",
            Family::Anomaly => "anomaly",
        }
    }
}

/// Harmless syscalls that only read the caller's ids (or a constant): safe to call
/// millions of times.
const SYSCALLS: &[(&str, libc::c_long)] = &[
    ("getppid", libc::SYS_getppid),
    ("getpid", libc::SYS_getpid),
    ("gettid", libc::SYS_gettid),
    ("getuid", libc::SYS_getuid),
    ("geteuid", libc::SYS_geteuid),
    ("getgid", libc::SYS_getgid),
    ("getegid", libc::SYS_getegid),
    ("getpgid", libc::SYS_getpgid),
    ("getsid", libc::SYS_getsid),
    // Pure lookups (0 = SCHED_OTHER) that hardly any program calls: a test tracing one
    // of these sees only its own load, so even ring-wide counters are exact.
    ("sched_get_priority_max", libc::SYS_sched_get_priority_max),
    ("sched_get_priority_min", libc::SYS_sched_get_priority_min),
];

#[derive(Clone, Debug, PartialEq)]
struct Options {
    family: Family,
    events: Option<u64>,
    duration_s: Option<f64>,
    /// Events per second in total; 0 = as fast as possible.
    rate: f64,
    burst: u64,
    threads: u64,
    syscall: (&'static str, libc::c_long),
    path: Option<PathBuf>,
    via: Via,
    quiet: bool,
}

/// How the file family's open is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Syscall,
    /// ia32 open (5) through int 0x80: a compat syscall.
    Compat,
    /// IORING_OP_OPENAT through an io_uring.
    IoUring,
}

impl Via {
    fn parse(s: &str) -> Option<Via> {
        Some(match s {
            "syscall" => Via::Syscall,
            "compat" => Via::Compat,
            "io_uring" => Via::IoUring,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Via::Syscall => "syscall",
            Via::Compat => "compat",
            Via::IoUring => "io_uring",
        }
    }
}

#[derive(Debug, PartialEq)]
enum Parsed {
    Run(Options),
    Help,
    Version,
}

#[derive(Debug, PartialEq, Eq)]
struct CliError {
    /// 64 usage, 78 bad value (sysexits, as the daemon).
    code: u8,
    msg: String,
}

fn usage(msg: String) -> CliError {
    CliError { code: 64, msg }
}

fn bad(msg: String) -> CliError {
    CliError { code: 78, msg }
}

fn parse(args: &[String]) -> Result<Parsed, CliError> {
    let mut it = args.iter().peekable();
    let mut family = None;
    let mut events = None;
    let mut duration_s = None;
    let mut rate = 0.0;
    let mut burst = None;
    let mut threads = 1;
    let mut syscall = None;
    let mut path = None;
    let mut via = None;
    let mut quiet = false;
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        // A value may start with '-' (then it is rejected as a bad value), but `--rate
        // --events 5` is a forgotten value, not a rate named "--events".
        let mut value = |what: &str| -> Result<String, CliError> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            match it.next_if(|v| !v.starts_with("--")) {
                Some(v) => Ok(v.clone()),
                None => Err(usage(format!("{name} needs a value: {name} {what}"))),
            }
        };
        match name {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            "-q" | "--quiet" => quiet = true,
            "--family" => {
                let v = value("FAMILY")?;
                family = Some(Family::parse(&v).ok_or_else(|| {
                    bad(format!(
                        "--family {v:?}: unknown family; choose from process,file,network,syscall,cgroup,anomaly"
                    ))
                })?);
            }
            "--events" => {
                let v = value("N")?;
                events = Some(match v.parse::<u64>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        return Err(bad(format!(
                            "--events {v:?}: expected a whole number of events, at least 1"
                        )));
                    }
                });
            }
            "--duration" => {
                let v = value("SECS")?;
                duration_s = Some(match v.parse::<f64>() {
                    Ok(d) if d.is_finite() && d > 0.0 && d <= 1e7 => d,
                    _ => {
                        return Err(bad(format!(
                            "--duration {v:?}: expected seconds above 0, e.g. 5 or 0.5"
                        )));
                    }
                });
            }
            "--rate" => {
                let v = value("R")?;
                rate = match v.parse::<f64>() {
                    Ok(r) if r.is_finite() && r >= 0.0 => r,
                    _ => {
                        return Err(bad(format!(
                            "--rate {v:?}: expected events per second, 0 or more (0 = as fast as possible)"
                        )));
                    }
                };
            }
            "--burst" => {
                let v = value("B")?;
                burst = Some(match v.parse::<u64>() {
                    Ok(b) if b >= 1 => b,
                    _ => {
                        return Err(bad(format!(
                            "--burst {v:?}: expected a whole number of events, at least 1"
                        )));
                    }
                });
            }
            "--threads" => {
                let v = value("T")?;
                threads = match v.parse::<u64>() {
                    Ok(t) if (1..=256).contains(&t) => t,
                    _ => {
                        return Err(bad(format!(
                            "--threads {v:?}: expected a number of threads from 1 to 256"
                        )));
                    }
                };
            }
            "--syscall" => {
                let v = value("NAME")?;
                syscall = Some(*SYSCALLS.iter().find(|(n, _)| *n == v).ok_or_else(|| {
                    let names: Vec<&str> = SYSCALLS.iter().map(|(n, _)| *n).collect();
                    bad(format!(
                        "--syscall {v:?}: not supported; choose from {}",
                        names.join(",")
                    ))
                })?);
            }
            "--path" => {
                let v = value("DIR")?;
                if v.is_empty() || !Path::new(&v).is_dir() {
                    return Err(bad(format!(
                        "--path {v:?}: not an existing directory; create it or leave --path out for a temporary one"
                    )));
                }
                path = Some(PathBuf::from(v));
            }
            "--via" => {
                let v = value("WAY")?;
                via = Some(Via::parse(&v).ok_or_else(|| {
                    bad(format!(
                        "--via {v:?}: unknown way; choose from syscall,compat,io_uring"
                    ))
                })?);
            }
            other => {
                return Err(usage(format!(
                    "unknown option {other:?}; see ringwarden-load --help"
                )));
            }
        }
    }
    let family = family.ok_or_else(|| {
        usage("--family is required, e.g. --family syscall; see ringwarden-load --help".into())
    })?;
    if events.is_none() && duration_s.is_none() {
        return Err(usage(
            "say when to stop: --events N or --duration SECS (or both)".into(),
        ));
    }
    if burst.is_some() && rate == 0.0 {
        return Err(usage(
            "--burst needs a --rate above 0 (bursts are spread to keep that average)".into(),
        ));
    }
    if syscall.is_some() && family != Family::Syscall {
        return Err(usage("--syscall only applies to --family syscall".into()));
    }
    if path.is_some() && family != Family::File {
        return Err(usage("--path only applies to --family file".into()));
    }
    if via.is_some() && family != Family::File {
        return Err(usage("--via only applies to --family file".into()));
    }
    if via == Some(Via::Compat) && !cfg!(target_arch = "x86_64") {
        return Err(bad("--via compat: int 0x80 exists on x86_64 only".into()));
    }
    Ok(Parsed::Run(Options {
        family,
        events,
        duration_s,
        rate,
        burst: burst.unwrap_or(1),
        threads,
        syscall: syscall.unwrap_or(SYSCALLS[0]),
        path,
        via: via.unwrap_or(Via::Syscall),
        quiet,
    }))
}

// ---- pacing ----------------------------------------------------------------------------

/// Nanoseconds after the start at which global event `g` is due: the time of its burst's
/// first event. Computed from `g` alone each time, so no error accumulates.
fn due_offset_ns(g: u64, burst: u64, rate: f64) -> u64 {
    let first = g - g % burst;
    (first as f64 * 1e9 / rate) as u64
}

/// How many of the global events 0..total thread `j` of `threads` makes (g ≡ j mod T).
fn share(total: u64, threads: u64, j: u64) -> u64 {
    if j >= total {
        0
    } else {
        (total - 1 - j) / threads + 1
    }
}

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps until the monotonic clock reads `deadline_ns` (or a signal interrupts).
fn sleep_until(deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: valid timespec; an absolute sleep on CLOCK_MONOTONIC.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    };
}

/// One producer's schedule.
struct Plan {
    start_ns: u64,
    /// Events per second in total; 0 = unpaced.
    rate: f64,
    burst: u64,
    threads: u64,
    /// This thread's index j: it makes global events j, j+T, ...
    index: u64,
    /// How many events this thread makes at most.
    limit: Option<u64>,
    end_ns: Option<u64>,
}

/// A stop request is seen within this long even during a long pause between bursts.
const STOP_CHECK_NS: u64 = 50_000_000;

/// How long after the end of --duration a paced thread that is behind schedule may still
/// catch up before it stops.
const OVERRUN_NS: u64 = 100_000_000;

/// Runs `act` on the plan's schedule until the limit, the end or a stop. Returns the number
/// of completed events and the error that ended it early, if any.
fn produce(
    plan: &Plan,
    stop: &AtomicBool,
    counter: &AtomicU64,
    mut act: impl FnMut() -> Result<(), String>,
) -> (u64, Option<String>) {
    let mut n: u64 = 0;
    'events: loop {
        if stop.load(Ordering::Relaxed) || plan.limit.is_some_and(|l| n >= l) {
            break;
        }
        // Unpaced with only a count, the clock is not read: a read per event would be
        // part of what the benchmarks measure, and the C references do none.
        let mut now = if plan.rate > 0.0 || plan.end_ns.is_some() {
            mono_ns()
        } else {
            0
        };
        if plan.rate > 0.0 {
            let g = plan.index + n * plan.threads;
            let due = plan
                .start_ns
                .saturating_add(due_offset_ns(g, plan.burst, plan.rate));
            if plan.end_ns.is_some_and(|e| due >= e) {
                break;
            }
            while now < due {
                sleep_until(due.min(now + STOP_CHECK_NS));
                if stop.load(Ordering::Relaxed) {
                    break 'events;
                }
                now = mono_ns();
            }
        }
        // Paced, the events due before the end are made (R x D in all) even if the last
        // wake-up is a little late; only a thread that cannot keep up stops on the clock.
        let grace = if plan.rate > 0.0 { OVERRUN_NS } else { 0 };
        if plan.end_ns.is_some_and(|e| now >= e.saturating_add(grace)) {
            break;
        }
        if let Err(e) = act() {
            return (n, Some(e));
        }
        n += 1;
        counter.store(n, Ordering::Relaxed);
    }
    (n, None)
}

// ---- what one event is -----------------------------------------------------------------

/// `union bpf_attr` for BPF_PROG_LOAD: the fields used, then zeros.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    rest: [u8; 64],
}

const PROG_NAME: &str = "rw_load";
const TRUE_BIN: &str = "/bin/true";

/// One producer's means to make one event of its family.
enum Actor {
    Syscall(libc::c_long),
    File(CString),
    /// The path copied below 4 GiB (a 32-bit syscall takes 32-bit pointers).
    FileCompat(*const u8),
    FileIoUring(CString, uring::Ring),
    Process,
    Network(TcpListener, SocketAddr),
    Cgroup(CString),
    Anomaly,
}

fn errno_text(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

impl Actor {
    fn once(&mut self) -> Result<(), String> {
        match self {
            Actor::Syscall(nr) => {
                // SAFETY: the table's syscalls only read the caller's ids or a constant;
                // 0 = the caller (or SCHED_OTHER).
                unsafe { libc::syscall(*nr, 0) };
                Ok(())
            }
            Actor::File(path) => {
                // SAFETY: valid NUL-terminated path.
                let fd = unsafe {
                    libc::openat(
                        libc::AT_FDCWD,
                        path.as_ptr(),
                        libc::O_RDONLY | libc::O_CLOEXEC,
                    )
                };
                if fd < 0 {
                    return Err(errno_text(&format!("openat {path:?}")));
                }
                // SAFETY: our own fd.
                unsafe { libc::close(fd) };
                Ok(())
            }
            Actor::FileCompat(path) => close_fd(compat_open(*path)?),
            Actor::FileIoUring(path, ring) => close_fd(ring.openat(path)?),
            Actor::Process => {
                let st = Command::new(TRUE_BIN)
                    .status()
                    .map_err(|e| format!("spawn {TRUE_BIN}: {e}"))?;
                if st.success() {
                    Ok(())
                } else {
                    Err(format!("{TRUE_BIN} exited with {st}"))
                }
            }
            Actor::Network(listener, addr) => {
                let client =
                    TcpStream::connect(*addr).map_err(|e| format!("connect {addr}: {e}"))?;
                let (server, _) = listener
                    .accept()
                    .map_err(|e| format!("accept on {addr}: {e}"))?;
                // The server closes first, so its side takes the TIME_WAIT and the
                // client's port is free again at once: no ephemeral port exhaustion.
                drop(server);
                drop(client);
                Ok(())
            }
            Actor::Cgroup(path) => {
                // SAFETY: valid NUL-terminated path.
                if unsafe { libc::mkdir(path.as_ptr(), 0o755) } != 0 {
                    return Err(errno_text(&format!("mkdir {path:?}")));
                }
                // SAFETY: as above; the cgroup is empty.
                if unsafe { libc::rmdir(path.as_ptr()) } != 0 {
                    return Err(errno_text(&format!("rmdir {path:?}")));
                }
                Ok(())
            }
            Actor::Anomaly => {
                const BPF_PROG_LOAD: libc::c_long = 5;
                const SOCKET_FILTER: u32 = 1;
                // mov r0, 0; exit
                static INSNS: [u64; 2] = [0xb7, 0x95];
                let mut name = [0u8; 16];
                name[..PROG_NAME.len()].copy_from_slice(PROG_NAME.as_bytes());
                let attr = ProgLoadAttr {
                    prog_type: SOCKET_FILTER,
                    insn_cnt: 2,
                    insns: INSNS.as_ptr() as u64,
                    license: c"GPL".as_ptr() as u64,
                    log_level: 0,
                    log_size: 0,
                    log_buf: 0,
                    kern_version: 0,
                    prog_flags: 0,
                    prog_name: name,
                    rest: [0; 64],
                };
                // SAFETY: attr and what it points to outlive the call; size is attr's.
                let fd = unsafe {
                    libc::syscall(
                        libc::SYS_bpf,
                        BPF_PROG_LOAD,
                        &attr as *const ProgLoadAttr,
                        std::mem::size_of::<ProgLoadAttr>(),
                    )
                };
                if fd < 0 {
                    return Err(errno_text("bpf(BPF_PROG_LOAD)"));
                }
                // SAFETY: the fd was just returned to us.
                unsafe { libc::close(fd as libc::c_int) };
                Ok(())
            }
        }
    }
}

// SAFETY: each actor is used by one producer thread at a time; FileCompat's pointer is to
// a private mapping that lives until the process exits, FileIoUring's ring belongs to it.
unsafe impl Send for Actor {}

fn close_fd(fd: libc::c_int) -> Result<(), String> {
    // SAFETY: a fd this thread just opened.
    unsafe { libc::close(fd) };
    Ok(())
}

/// Copies `path` (with its NUL) into a new mapping below 4 GiB, for a 32-bit syscall.
fn below_4g(path: &CString) -> Result<*const u8, String> {
    let b = path.as_bytes_with_nul();
    // SAFETY: a fresh anonymous mapping; nothing else refers to it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            b.len(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(errno_text("mmap MAP_32BIT"));
    }
    // SAFETY: the mapping holds b.len() bytes and does not overlap b.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), p.cast::<u8>(), b.len()) };
    Ok(p.cast::<u8>())
}

/// open(path, O_RDONLY | O_CLOEXEC) as a 32-bit syscall (ia32 open = 5) via int 0x80.
#[cfg(target_arch = "x86_64")]
fn compat_open(path: *const u8) -> Result<libc::c_int, String> {
    let mut ret: i32 = 5;
    // SAFETY: int 0x80 reads ebx (the path, below 4 GiB, NUL-terminated), ecx, edx and
    // returns in eax; it clobbers r8-r11. rbx is reserved by the compiler: swapped in and
    // back out around the call.
    unsafe {
        std::arch::asm!(
            "xchg {p}, rbx",
            "int 0x80",
            "xchg {p}, rbx",
            p = inout(reg) path as u64 => _,
            inout("eax") ret,
            in("ecx") libc::O_RDONLY | libc::O_CLOEXEC,
            in("edx") 0,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        return Err(format!(
            "32-bit open: {}",
            std::io::Error::from_raw_os_error(-ret)
        ));
    }
    Ok(ret)
}

#[cfg(not(target_arch = "x86_64"))]
fn compat_open(_: *const u8) -> Result<libc::c_int, String> {
    Err("int 0x80 exists on x86_64 only".into())
}

/// A minimal io_uring, raw syscalls and the kernel's UAPI layouts (linux/io_uring.h):
/// one submission at a time, waited for.
mod uring {
    use std::ffi::CStr;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[repr(C)]
    #[derive(Default)]
    struct SqOffsets {
        head: u32,
        tail: u32,
        ring_mask: u32,
        ring_entries: u32,
        flags: u32,
        dropped: u32,
        array: u32,
        resv1: u32,
        user_addr: u64,
    }

    #[repr(C)]
    #[derive(Default)]
    struct CqOffsets {
        head: u32,
        tail: u32,
        ring_mask: u32,
        ring_entries: u32,
        overflow: u32,
        cqes: u32,
        flags: u32,
        resv1: u32,
        user_addr: u64,
    }

    #[repr(C)]
    #[derive(Default)]
    struct Params {
        sq_entries: u32,
        cq_entries: u32,
        flags: u32,
        sq_thread_cpu: u32,
        sq_thread_idle: u32,
        features: u32,
        wq_fd: u32,
        resv: [u32; 3],
        sq_off: SqOffsets,
        cq_off: CqOffsets,
    }

    #[repr(C)]
    struct Sqe {
        opcode: u8,
        flags: u8,
        ioprio: u16,
        fd: i32,
        off: u64,
        addr: u64,
        len: u32,
        open_flags: u32,
        user_data: u64,
        buf_index: u16,
        personality: u16,
        file_index: u32,
        addr3: u64,
        pad2: u64,
    }

    #[repr(C)]
    struct Cqe {
        user_data: u64,
        res: i32,
        flags: u32,
    }

    const OP_OPENAT: u8 = 18;
    const ENTER_GETEVENTS: u32 = 1;
    const OFF_SQ_RING: i64 = 0;
    const OFF_CQ_RING: i64 = 0x800_0000;
    const OFF_SQES: i64 = 0x1000_0000;
    const ENTRIES: u32 = 4;

    pub struct Ring {
        fd: libc::c_int,
        sq: *mut u8,
        cq: *mut u8,
        sqes: *mut Sqe,
        p: Params,
    }

    fn map(fd: libc::c_int, len: usize, off: i64) -> Result<*mut u8, String> {
        // SAFETY: maps the ring the kernel made for fd; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(super::errno_text("mmap io_uring"));
        }
        Ok(p.cast())
    }

    impl Ring {
        pub fn new() -> Result<Ring, String> {
            let mut p = Params::default();
            // SAFETY: p is a valid io_uring_params the kernel fills in.
            let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, ENTRIES, &mut p) };
            if fd < 0 {
                return Err(super::errno_text("io_uring_setup"));
            }
            let fd = fd as libc::c_int;
            let sq_len = p.sq_off.array as usize + p.sq_entries as usize * 4;
            let cq_len = p.cq_off.cqes as usize + p.cq_entries as usize * size_of::<Cqe>();
            let sq = map(fd, sq_len, OFF_SQ_RING)?;
            let cq = map(fd, cq_len, OFF_CQ_RING)?;
            let sqes = map(fd, p.sq_entries as usize * size_of::<Sqe>(), OFF_SQES)?.cast();
            Ok(Ring {
                fd,
                sq,
                cq,
                sqes,
                p,
            })
        }

        fn at(base: *mut u8, off: u32) -> &'static AtomicU32 {
            // SAFETY: an aligned u32 field of a ring mapping that lives as long as the
            // process (never unmapped); the kernel shares it.
            unsafe { &*base.add(off as usize).cast::<AtomicU32>() }
        }

        /// openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC) submitted and waited for.
        pub fn openat(&mut self, path: &CStr) -> Result<libc::c_int, String> {
            let (so, co) = (&self.p.sq_off, &self.p.cq_off);
            let tail = Self::at(self.sq, so.tail).load(Ordering::Relaxed);
            let idx = tail & Self::at(self.sq, so.ring_mask).load(Ordering::Relaxed);
            // SAFETY: idx < sq_entries: within the SQE array and the index array.
            unsafe {
                self.sqes.add(idx as usize).write(Sqe {
                    opcode: OP_OPENAT,
                    flags: 0,
                    ioprio: 0,
                    fd: libc::AT_FDCWD,
                    off: 0,
                    addr: path.as_ptr() as u64,
                    len: 0,
                    open_flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u32,
                    user_data: u64::from(tail),
                    buf_index: 0,
                    personality: 0,
                    file_index: 0,
                    addr3: 0,
                    pad2: 0,
                });
                Self::at(self.sq, so.array + idx * 4).store(idx, Ordering::Relaxed);
            }
            Self::at(self.sq, so.tail).store(tail.wrapping_add(1), Ordering::Release);
            // SAFETY: our ring fd; submit 1, wait for 1.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_io_uring_enter,
                    self.fd,
                    1u32,
                    1u32,
                    ENTER_GETEVENTS,
                    std::ptr::null::<u8>(),
                    0usize,
                )
            };
            if r != 1 {
                return Err(if r < 0 {
                    super::errno_text("io_uring_enter")
                } else {
                    format!("io_uring_enter submitted {r}, not 1")
                });
            }
            let head = Self::at(self.cq, co.head).load(Ordering::Relaxed);
            if Self::at(self.cq, co.tail).load(Ordering::Acquire) == head {
                return Err("io_uring: no completion after waiting for one".into());
            }
            let i = head & Self::at(self.cq, co.ring_mask).load(Ordering::Relaxed);
            // SAFETY: i < cq_entries: a completion the kernel published (tail > head).
            let res = unsafe {
                (*self
                    .cq
                    .add(co.cqes as usize + i as usize * size_of::<Cqe>())
                    .cast::<Cqe>())
                .res
            };
            Self::at(self.cq, co.head).store(head.wrapping_add(1), Ordering::Release);
            if res < 0 {
                return Err(format!(
                    "io_uring openat {path:?}: {}",
                    std::io::Error::from_raw_os_error(-res)
                ));
            }
            Ok(res)
        }
    }
}

// ---- setup and cleanup (main thread) ---------------------------------------------------

/// What the main thread made for the producers, and removes at the end.
struct Setup {
    actors: Vec<Actor>,
    /// Per thread, the `"key":value` pair describing its own resource (may be empty).
    thread_extra: Vec<String>,
    /// Top-level `,"key":value` pairs.
    extra: String,
    /// Files to remove, then a directory to remove (ours only).
    files: Vec<PathBuf>,
    temp_dir: Option<PathBuf>,
    cgroups: Vec<PathBuf>,
}

fn cstring(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| format!("{} contains a NUL byte", p.display()))
}

/// Mount point of the first cgroup2 entry in /proc/mounts (octal escapes decoded).
fn cgroup2_mount(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_mount(dir)))
    })
}

/// /proc/mounts writes space, tab, newline and backslash as \ooo.
fn unescape_mount(s: &str) -> std::ffi::OsString {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    std::ffi::OsStr::from_bytes(&out).to_os_string()
}

fn setup(o: &Options) -> Result<Setup, String> {
    let pid = std::process::id();
    let mut s = Setup {
        actors: Vec::new(),
        thread_extra: Vec::new(),
        extra: String::new(),
        files: Vec::new(),
        temp_dir: None,
        cgroups: Vec::new(),
    };
    match o.family {
        Family::Syscall => {
            s.extra = format!(
                ",\"syscall\":{},\"nr\":{}",
                json_str(o.syscall.0),
                o.syscall.1
            );
            for _ in 0..o.threads {
                s.actors.push(Actor::Syscall(o.syscall.1));
                s.thread_extra.push(String::new());
            }
        }
        Family::File => {
            let dir = match &o.path {
                Some(d) => d.clone(),
                None => {
                    let d = make_temp_dir(pid)?;
                    s.temp_dir = Some(d.clone());
                    d
                }
            };
            s.extra = format!(
                ",\"dir\":{},\"via\":{}",
                json_path(&dir),
                json_str(o.via.name())
            );
            for j in 0..o.threads {
                let f = dir.join(format!("ringwarden-load-{pid}-{j}"));
                // Record it before creating it, so a half-done setup is still cleaned up.
                s.files.push(f.clone());
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&f)
                    .map_err(|e| format!("create {}: {e}", f.display()))?;
                let c = cstring(&f)?;
                s.actors.push(match o.via {
                    Via::Syscall => Actor::File(c),
                    Via::Compat => Actor::FileCompat(below_4g(&c)?),
                    Via::IoUring => Actor::FileIoUring(c, uring::Ring::new()?),
                });
                s.thread_extra.push(format!("\"file\":{}", json_path(&f)));
            }
        }
        Family::Process => {
            if !Path::new(TRUE_BIN).is_file() {
                return Err(format!("{TRUE_BIN} not found; the process family execs it"));
            }
            s.extra = format!(",\"program\":{}", json_str(TRUE_BIN));
            for _ in 0..o.threads {
                s.actors.push(Actor::Process);
                s.thread_extra.push(String::new());
            }
        }
        Family::Network => {
            s.extra = ",\"listen_addr\":\"127.0.0.1\"".into();
            for _ in 0..o.threads {
                let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                    .map_err(|e| format!("listen on 127.0.0.1: {e}"))?;
                let a = l
                    .local_addr()
                    .map_err(|e| format!("listener address: {e}"))?;
                s.thread_extra.push(format!("\"listen_port\":{}", a.port()));
                s.actors.push(Actor::Network(l, a));
            }
        }
        Family::Cgroup => {
            let mounts = std::fs::read_to_string("/proc/mounts")
                .map_err(|e| format!("read /proc/mounts: {e}"))?;
            let root = cgroup2_mount(&mounts)
                .ok_or("no cgroup2 mount in /proc/mounts; mount one (mount -t cgroup2 none DIR)")?;
            s.extra = format!(",\"cgroup_root\":{}", json_path(&root));
            for j in 0..o.threads {
                let c = root.join(format!("ringwarden-load-{pid}-{j}"));
                s.actors.push(Actor::Cgroup(cstring(&c)?));
                s.thread_extra.push(format!("\"cgroup\":{}", json_path(&c)));
                s.cgroups.push(c);
            }
        }
        Family::Anomaly => {
            s.extra = format!(
                ",\"method\":\"bpf_prog_load\",\"prog_name\":{}",
                json_str(PROG_NAME)
            );
            for _ in 0..o.threads {
                s.actors.push(Actor::Anomaly);
                s.thread_extra.push(String::new());
            }
        }
    }
    Ok(s)
}

fn make_temp_dir(pid: u32) -> Result<PathBuf, String> {
    let base = std::env::temp_dir();
    let mut last = String::new();
    for k in 0..100 {
        let d = base.join(format!("ringwarden-load-{pid}-{k}"));
        match std::fs::create_dir(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => last = format!("create {}: {e}", d.display()),
        }
    }
    Err(if last.is_empty() {
        format!("no free temporary directory name in {}", base.display())
    } else {
        last
    })
}

fn cleanup(s: &Setup) {
    for f in &s.files {
        let _ = std::fs::remove_file(f);
    }
    if let Some(d) = &s.temp_dir {
        let _ = std::fs::remove_dir_all(d);
    }
    // Only left behind if a producer failed between mkdir and rmdir.
    for c in &s.cgroups {
        let _ = std::fs::remove_dir(c);
    }
}

// ---- JSON --------------------------------------------------------------------------------

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_path(p: &Path) -> String {
    json_str(&p.to_string_lossy())
}

struct ThreadResult {
    tid: i32,
    generated: u64,
    finished_ns: u64,
    error: Option<String>,
}

struct Report<'a> {
    family: Family,
    threads: &'a [ThreadResult],
    thread_extra: &'a [String],
    pid: u32,
    elapsed_s: f64,
    stopped_by: &'a str,
    extra: &'a str,
    error: Option<&'a str>,
}

fn report_json(r: &Report) -> String {
    let generated: u64 = r.threads.iter().map(|t| t.generated).sum();
    let rate = if r.elapsed_s > 0.0 {
        generated as f64 / r.elapsed_s
    } else {
        0.0
    };
    let threads: Vec<String> = r
        .threads
        .iter()
        .zip(r.thread_extra)
        .map(|(t, x)| {
            let sep = if x.is_empty() { "" } else { "," };
            format!(
                "{{\"tid\":{},\"generated\":{}{sep}{x}}}",
                t.tid, t.generated
            )
        })
        .collect();
    let mut s = format!(
        "{{\"family\":\"{}\",\"generated\":{generated},\"threads\":[{}],\"pid\":{},\"elapsed_s\":{:.3},\"rate\":{rate:.1},\"stopped_by\":\"{}\"{}",
        r.family.name(),
        threads.join(","),
        r.pid,
        r.elapsed_s,
        r.stopped_by,
        r.extra
    );
    if let Some(e) = r.error {
        s.push_str(&format!(",\"error\":{}", json_str(e)));
    }
    s.push('}');
    s
}

// ---- main --------------------------------------------------------------------------------

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

fn run(o: Options) -> ExitCode {
    // Block the stop signals before any thread exists (threads inherit the mask); the main
    // thread takes them with sigtimedwait, so no handler runs inside a producer's syscall.
    let set = signal_set();
    // SAFETY: valid set; blocking signals has no memory effects.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };

    let mut s = match setup(&o) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringwarden-load: {e}");
            return ExitCode::from(1);
        }
    };
    let t = o.threads;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(AtomicU64::new(0));
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..t).map(|_| AtomicU64::new(0)).collect());
    let ready = Arc::new(Barrier::new(t as usize + 1));
    let go = Arc::new(Barrier::new(t as usize + 1));
    let mut handles = Vec::new();
    let actors = std::mem::take(&mut s.actors);
    for (j, mut actor) in actors.into_iter().enumerate() {
        let (stop, done, start, counters, ready, go) = (
            stop.clone(),
            done.clone(),
            start.clone(),
            counters.clone(),
            ready.clone(),
            go.clone(),
        );
        let o = o.clone();
        let h = std::thread::Builder::new()
            .name(format!("load-{j}"))
            .spawn(move || {
                // SAFETY: gettid and prctl have no memory effects.
                let tid = unsafe { libc::gettid() };
                // Default slack (50 us) would make every paced sleep 50 us late.
                // SAFETY: as above.
                unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
                ready.wait();
                go.wait();
                let start_ns = start.load(Ordering::Acquire);
                let plan = Plan {
                    start_ns,
                    rate: o.rate,
                    burst: o.burst,
                    threads: o.threads,
                    index: j as u64,
                    limit: o.events.map(|n| share(n, o.threads, j as u64)),
                    end_ns: o
                        .duration_s
                        .map(|d| start_ns.saturating_add((d * 1e9) as u64)),
                };
                let (generated, error) = produce(&plan, &stop, &counters[j], || actor.once());
                if error.is_some() {
                    stop.store(true, Ordering::Relaxed);
                }
                let finished_ns = mono_ns();
                done.fetch_add(1, Ordering::Release);
                ThreadResult {
                    tid,
                    generated,
                    finished_ns,
                    error,
                }
            });
        match h {
            Ok(h) => handles.push(h),
            Err(e) => {
                // The spawned ones wait at the barrier forever: nothing to join cleanly.
                eprintln!("ringwarden-load: start thread {j}: {e}");
                cleanup(&s);
                std::process::exit(1);
            }
        }
    }
    ready.wait();
    let start_ns = mono_ns();
    start.store(start_ns, Ordering::Release);
    go.wait();

    let mut signalled = false;
    let mut next_progress = start_ns + 1_000_000_000;
    while done.load(Ordering::Acquire) < t as usize {
        let timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        };
        // SAFETY: valid set and timeout; no siginfo wanted.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
        if sig == libc::SIGINT || sig == libc::SIGTERM {
            if !o.quiet && !signalled {
                eprintln!("ringwarden-load: signal {sig}: stopping");
            }
            signalled = true;
            stop.store(true, Ordering::Relaxed);
        }
        let now = mono_ns();
        if !o.quiet && now >= next_progress {
            let n: u64 = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
            let el = (now - start_ns) as f64 / 1e9;
            eprintln!(
                "ringwarden-load: {el:.1} s: {n} {} events ({:.0}/s)",
                o.family.name(),
                n as f64 / el
            );
            next_progress += 1_000_000_000;
        }
    }
    let mut results = Vec::new();
    for h in handles {
        match h.join() {
            Ok(r) => results.push(r),
            Err(_) => {
                eprintln!("ringwarden-load: a producer thread panicked; its count is unknown");
                cleanup(&s);
                return ExitCode::from(1);
            }
        }
    }
    cleanup(&s);

    let end_ns = results
        .iter()
        .map(|r| r.finished_ns)
        .max()
        .unwrap_or(start_ns);
    let error = results.iter().find_map(|r| r.error.as_deref());
    let generated: u64 = results.iter().map(|r| r.generated).sum();
    let stopped_by = if error.is_some() {
        "error"
    } else if signalled {
        "signal"
    } else if o.events == Some(generated) {
        "count"
    } else {
        "duration"
    };
    let elapsed_s = end_ns.saturating_sub(start_ns) as f64 / 1e9;
    let line = report_json(&Report {
        family: o.family,
        threads: &results,
        thread_extra: &s.thread_extra,
        pid: std::process::id(),
        elapsed_s,
        stopped_by,
        extra: &s.extra,
        error,
    });
    if let Some(e) = error {
        eprintln!("ringwarden-load: stopped: {e}");
    } else if !o.quiet {
        eprintln!(
            "ringwarden-load: {generated} {} events in {elapsed_s:.3} s, stopped by {stopped_by}",
            o.family.name()
        );
    }
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        eprintln!("ringwarden-load: cannot write the result to stdout: {line}");
        return ExitCode::from(1);
    }
    if error.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    // args() would panic on an argument that is not UTF-8.
    let mut args = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(a) => args.push(a),
            Err(a) => {
                eprintln!("ringwarden-load: argument {a:?} is not UTF-8");
                return ExitCode::from(64);
            }
        }
    }
    match parse(&args) {
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Parsed::Version) => {
            println!("ringwarden-load {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Parsed::Run(o)) => run(o),
        Err(e) => {
            eprintln!("ringwarden-load: {}", e.msg);
            ExitCode::from(e.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, CliError> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn opts(args: &[&str]) -> Options {
        match p(args) {
            Ok(Parsed::Run(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn code(args: &[&str]) -> u8 {
        match p(args) {
            Err(e) => {
                assert!(!e.msg.contains('\n'), "one line: {}", e.msg);
                e.code
            }
            other => panic!("{args:?} should fail: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_every_option() {
        let o = opts(&["--family", "syscall", "--events", "10"]);
        assert_eq!(o.family, Family::Syscall);
        assert_eq!(o.events, Some(10));
        assert_eq!(o.duration_s, None);
        assert_eq!(o.rate, 0.0);
        assert_eq!(o.burst, 1);
        assert_eq!(o.threads, 1);
        assert_eq!(o.syscall, ("getppid", libc::SYS_getppid));
        assert_eq!(o.path, None);
        assert!(!o.quiet);

        let o = opts(&[
            "--family=syscall",
            "--duration",
            "2.5",
            "--events=7",
            "--rate",
            "20000",
            "--burst",
            "100",
            "--threads",
            "2",
            "--syscall",
            "getsid",
            "-q",
        ]);
        assert_eq!(o.duration_s, Some(2.5));
        assert_eq!(o.events, Some(7));
        assert_eq!(o.rate, 20000.0);
        assert_eq!(o.burst, 100);
        assert_eq!(o.threads, 2);
        assert_eq!(o.syscall, ("getsid", libc::SYS_getsid));
        assert!(o.quiet);

        for (name, nr) in [
            ("getpid", libc::SYS_getpid),
            ("getuid", libc::SYS_getuid),
            ("getgid", libc::SYS_getgid),
            ("getpgid", libc::SYS_getpgid),
            ("sched_get_priority_min", libc::SYS_sched_get_priority_min),
        ] {
            let o = opts(&["--family", "syscall", "--events", "1", "--syscall", name]);
            assert_eq!(o.syscall, (name, nr));
        }

        let tmp = std::env::temp_dir();
        let o = opts(&[
            "--family",
            "file",
            "--events",
            "1",
            "--path",
            tmp.to_str().expect("utf-8 temp dir"),
        ]);
        assert_eq!(o.path, Some(tmp));
        for f in ["process", "file", "network", "syscall", "cgroup", "anomaly"] {
            assert_eq!(opts(&["--family", f, "--duration", "1"]).family.name(), f);
        }
        assert_eq!(p(&["--help"]), Ok(Parsed::Help));
        assert_eq!(p(&["--family", "x", "-h"]), Err(bad(
            "--family \"x\": unknown family; choose from process,file,network,syscall,cgroup,anomaly".into()
        )));
        assert_eq!(p(&["--family", "file", "-V"]), Ok(Parsed::Version));
        assert_eq!(
            opts(&["--family", "file", "--events", "1", "--rate", "0"]).rate,
            0.0
        );
    }

    #[test]
    fn usage_errors_are_64() {
        assert_eq!(code(&[]), 64); // no family
        assert_eq!(code(&["--events", "5"]), 64); // no family
        assert_eq!(code(&["--family", "syscall"]), 64); // no stop condition
        assert_eq!(code(&["--family", "syscall", "--events"]), 64); // missing value
        assert_eq!(
            code(&["--family", "syscall", "--rate", "--events", "5"]),
            64
        );
        assert_eq!(
            code(&["--family", "syscall", "--events", "5", "--bogus"]),
            64
        );
        assert_eq!(code(&["--family", "syscall", "--events", "5", "extra"]), 64);
        assert_eq!(
            code(&["--family", "syscall", "--events", "5", "--burst", "10"]),
            64
        );
        assert_eq!(
            code(&["--family", "file", "--events", "5", "--syscall", "getsid"]),
            64
        );
        assert_eq!(
            code(&["--family", "syscall", "--events", "5", "--path", "/tmp"]),
            64
        );
    }

    #[test]
    fn bad_values_are_78() {
        assert_eq!(code(&["--family", "disk", "--events", "5"]), 78);
        for ev in ["0", "-1", "x", "1.5", ""] {
            assert_eq!(code(&["--family", "syscall", "--events", ev]), 78, "{ev}");
        }
        for d in ["0", "-1", "nan", "inf", "x"] {
            assert_eq!(code(&["--family", "syscall", "--duration", d]), 78, "{d}");
        }
        for r in ["-1", "nan", "inf", "fast"] {
            assert_eq!(
                code(&["--family", "syscall", "--events", "5", "--rate", r]),
                78,
                "{r}"
            );
        }
        for t in ["0", "257", "two"] {
            assert_eq!(
                code(&["--family", "syscall", "--events", "5", "--threads", t]),
                78,
                "{t}"
            );
        }
        assert_eq!(
            code(&[
                "--family", "syscall", "--events", "5", "--rate", "9", "--burst", "0"
            ]),
            78
        );
        assert_eq!(
            code(&[
                "--family",
                "syscall",
                "--events",
                "5",
                "--syscall",
                "reboot"
            ]),
            78
        );
        assert_eq!(
            code(&[
                "--family",
                "file",
                "--events",
                "5",
                "--path",
                "/nonexistent/dir"
            ]),
            78
        );
        assert_eq!(
            code(&[
                "--family",
                "file",
                "--events",
                "5",
                "--path",
                "/proc/self/status"
            ]),
            78
        );
    }

    #[test]
    fn shares_split_the_count_exactly() {
        for total in [0u64, 1, 2, 7, 50_000, 50_001] {
            for t in 1..=5u64 {
                let parts: Vec<u64> = (0..t).map(|j| share(total, t, j)).collect();
                assert_eq!(parts.iter().sum::<u64>(), total, "{total} over {t}");
                let (min, max) = (parts.iter().min(), parts.iter().max());
                assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{parts:?}");
            }
        }
        assert_eq!(share(3, 5, 4), 0);
    }

    #[test]
    fn pacing_is_absolute_and_bursty() {
        // Unit bursts: event g at g/R, computed from g alone (no accumulated error).
        assert_eq!(due_offset_ns(0, 1, 1000.0), 0);
        assert_eq!(due_offset_ns(1, 1, 1000.0), 1_000_000);
        assert_eq!(due_offset_ns(1_000_000, 1, 1000.0), 1_000_000_000_000);
        assert_eq!(due_offset_ns(3, 1, 3.0), 1_000_000_000);
        assert_eq!(due_offset_ns(1, 1, 3.0), 333_333_333);
        // 200k/s over a day: still exact to the nanosecond.
        let g = 200_000 * 86_400;
        assert_eq!(due_offset_ns(g, 1, 200_000.0), 86_400 * 1_000_000_000);
        // Bursts of 100 at 1000/s: 100 at once, every 100 ms.
        for g in 0..100 {
            assert_eq!(due_offset_ns(g, 100, 1000.0), 0);
        }
        for g in 100..200 {
            assert_eq!(due_offset_ns(g, 100, 1000.0), 100_000_000);
        }
        assert_eq!(due_offset_ns(1050, 100, 1000.0), 1_000_000_000);
        // Fractional rates: one event every 2 s.
        assert_eq!(due_offset_ns(5, 1, 0.5), 10_000_000_000);
    }

    #[test]
    fn threads_interleave_to_the_total_rate() {
        // Thread j makes g = j + i*T: two threads at 1000/s in total, 1 ms apart overall.
        let t = 2;
        let mut dues: Vec<u64> = (0..t)
            .flat_map(|j| (0..5).map(move |i| due_offset_ns(j + i * t, 1, 1000.0)))
            .collect();
        dues.sort_unstable();
        let want: Vec<u64> = (0..10).map(|g| g * 1_000_000).collect();
        assert_eq!(dues, want);
    }

    #[test]
    fn produce_counts_and_stops() {
        let stop = AtomicBool::new(false);
        let c = AtomicU64::new(0);
        let plan = |rate, limit, end_ns| Plan {
            start_ns: mono_ns(),
            rate,
            burst: 1,
            threads: 1,
            index: 0,
            limit,
            end_ns,
        };
        let mut calls = 0;
        let (n, e) = produce(&plan(0.0, Some(1000), None), &stop, &c, || {
            calls += 1;
            Ok(())
        });
        assert_eq!(
            (n, e, calls, c.load(Ordering::Relaxed)),
            (1000, None, 1000, 1000)
        );

        // Paced: 50 events at 1000/s take ~49 ms, not less.
        let t0 = mono_ns();
        let (n, _) = produce(&plan(1000.0, Some(50), None), &stop, &c, || Ok(()));
        assert_eq!(n, 50);
        assert!(mono_ns() - t0 >= 49_000_000);

        // Duration: at 1000/s over 100 ms, exactly the 100 events due before the end.
        let pl = plan(1000.0, None, None);
        let pl = Plan {
            end_ns: Some(pl.start_ns + 100_000_000),
            ..pl
        };
        let (n, _) = produce(&pl, &stop, &c, || Ok(()));
        assert_eq!(n, 100);

        // A rate that cannot be reached (1 ms per event, 1M/s asked) stops OVERRUN_NS
        // after the end, not when every event due before it is made.
        let slow = || {
            std::thread::sleep(std::time::Duration::from_millis(1));
            Ok(())
        };
        let pl = plan(1e6, None, None);
        let pl = Plan {
            end_ns: Some(pl.start_ns + 20_000_000),
            ..pl
        };
        let (n, _) = produce(&pl, &stop, &c, slow);
        let el = mono_ns() - pl.start_ns;
        assert!(n < 200, "{n}");
        assert!((120_000_000..200_000_000).contains(&el), "{el}");

        // Unpaced: stops on the clock.
        let pl = plan(0.0, None, None);
        let pl = Plan {
            end_ns: Some(pl.start_ns + 20_000_000),
            ..pl
        };
        let (n, _) = produce(&pl, &stop, &c, slow);
        let el = mono_ns() - pl.start_ns;
        assert!(n > 0 && n <= 20, "{n}");
        assert!((20_000_000..40_000_000).contains(&el), "{el}");

        // An error ends it with the count of completed events.
        let mut k = 0;
        let (n, e) = produce(&plan(0.0, Some(10), None), &stop, &c, || {
            k += 1;
            if k == 4 { Err("boom".into()) } else { Ok(()) }
        });
        assert_eq!((n, e.as_deref()), (3, Some("boom")));

        // A stop request ends a long pause promptly.
        stop.store(true, Ordering::Relaxed);
        let t0 = mono_ns();
        let (n, _) = produce(&plan(0.1, Some(10), None), &stop, &c, || Ok(()));
        assert_eq!(n, 0);
        assert!(mono_ns() - t0 < STOP_CHECK_NS * 2);
    }

    #[test]
    fn stop_interrupts_a_sleep_between_bursts() {
        let stop = Arc::new(AtomicBool::new(false));
        let c = AtomicU64::new(0);
        let s2 = stop.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            s2.store(true, Ordering::Relaxed);
        });
        let t0 = mono_ns();
        // Bursts of 5 every 10 s: the first burst, then a long pause the stop cuts short.
        let plan = Plan {
            start_ns: t0,
            rate: 0.5,
            burst: 5,
            threads: 1,
            index: 0,
            limit: None,
            end_ns: None,
        };
        let (n, _) = produce(&plan, &stop, &c, || Ok(()));
        let _ = h.join();
        assert_eq!(n, 5);
        let el = mono_ns() - t0;
        assert!(
            (100_000_000..100_000_000 + 2 * STOP_CHECK_NS).contains(&el),
            "{el}"
        );
    }

    #[test]
    fn cgroup2_mount_is_found_and_unescaped() {
        let m = "sysfs /sys sysfs rw 0 0\n\
                 cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n\
                 cgroup2 /sys/fs/cgroup/my\\040dir cgroup2 rw 0 0\n\
                 cgroup2 /other cgroup2 rw 0 0\n";
        assert_eq!(
            cgroup2_mount(m),
            Some(PathBuf::from("/sys/fs/cgroup/my dir"))
        );
        assert_eq!(cgroup2_mount("sysfs /sys sysfs rw 0 0\n"), None);
        assert_eq!(unescape_mount("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape_mount("tail\\04"), "tail\\04");
    }

    #[test]
    fn report_is_one_json_line() {
        let threads = [
            ThreadResult {
                tid: 11,
                generated: 3,
                finished_ns: 0,
                error: None,
            },
            ThreadResult {
                tid: 12,
                generated: 4,
                finished_ns: 0,
                error: None,
            },
        ];
        let extra = [String::new(), "\"file\":\"/t/a\\\"b\"".to_string()];
        let line = report_json(&Report {
            family: Family::File,
            threads: &threads,
            thread_extra: &extra,
            pid: 99,
            elapsed_s: 2.0,
            stopped_by: "count",
            extra: ",\"dir\":\"/t\"",
            error: Some("x\ny"),
        });
        assert_eq!(
            line,
            "{\"family\":\"file\",\"generated\":7,\"threads\":[{\"tid\":11,\"generated\":3},\
             {\"tid\":12,\"generated\":4,\"file\":\"/t/a\\\"b\"}],\"pid\":99,\"elapsed_s\":2.000,\
             \"rate\":3.5,\"stopped_by\":\"count\",\"dir\":\"/t\",\"error\":\"x\\ny\"}"
        );
        assert_eq!(json_str("\u{1}é"), "\"\\u0001é\"");
    }
}
