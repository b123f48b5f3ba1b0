//! Shutdown under load: exact books, exit within 5 s. Its own test binary so the load
//! it makes does not compete with the timing-sensitive tests in accounting.rs.
mod common;

use std::time::Duration;

use common::{Daemon, u};

fn syscall_n(nr: libc::c_long, n: usize) {
    for _ in 0..n {
        // SAFETY: getuid only reads the caller's ids.
        unsafe {
            libc::syscall(nr, 0);
        }
    }
}

#[test]
fn shutdown_under_load_is_exact_and_within_five_seconds() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    // All families, default sizes, two threads hammering a syscall the whole time: the
    // harness's stop() asserts the exit within 5 s of SIGTERM, assert_exact the books.
    let d = Daemon::start("acct-shutdown", &["--syscalls", "getuid"]);
    let run = Arc::new(AtomicBool::new(true));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let run = run.clone();
            std::thread::spawn(move || {
                while run.load(Ordering::Relaxed) {
                    syscall_n(libc::SYS_getuid, 1000);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let f = d.stop(); // panics unless the daemon exits within 5 s of SIGTERM
    run.store(false, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    f.assert_exact();
    assert!(
        u(&f.ring("syscall")["received"]) > 0,
        "the load reached the ring"
    );
}
