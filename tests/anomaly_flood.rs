//! Anomaly floods run for real by uid 65534: a flood of lesser records cannot take the
//! room a critical one needs.
mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Daemon, Finished, as_nobody, i, u};
use serde_json::Value;

/// The rate limit is per uid: two floods by uid 65534 at once would share its counts.
static NOBODY: Mutex<()> = Mutex::new(());

const FAILED: u64 = 20_000;

/// As uid 65534: attaches to its own child `ok` times (allowed: same uid), then makes
/// `failed` PTRACE_ATTACH calls on pid 1 (refused: EPERM) and `opens` opens of a file.
/// Prints the child's pid.
const FLOOD: &str = r#"
import ctypes, os, signal, sys, time
ok, failed, opens = (int(a) for a in sys.argv[1:4])
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
ATTACH, DETACH = 16, 17
child = os.fork()
if child == 0:
    while True:
        time.sleep(60)
for _ in range(ok):
    if libc.ptrace(ATTACH, child, None, None) != 0:
        sys.exit("attach own child: errno %d" % ctypes.get_errno())
    os.waitpid(child, 0)
    if libc.ptrace(DETACH, child, None, 0) != 0:
        sys.exit("detach: errno %d" % ctypes.get_errno())
os.kill(child, signal.SIGKILL)
os.waitpid(child, 0)
for _ in range(failed):
    if libc.ptrace(ATTACH, 1, None, None) != -1 or ctypes.get_errno() != 1:
        sys.exit("attach pid 1 did not fail with EPERM")
for _ in range(opens):
    os.close(os.open("/etc/hostname", os.O_RDONLY))
print(child)
"#;

/// Runs FLOOD as uid 65534; returns (its pid, its child's pid).
fn flood(ok: u32, failed: u64, opens: u32) -> (u64, u64) {
    let c = as_nobody("/usr/bin/python3")
        .args(["-c", FLOOD])
        .args([ok.to_string(), failed.to_string(), opens.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the flood");
    let pid = u64::from(c.id());
    let out = c.wait_with_output().expect("flood ends");
    assert!(out.status.success(), "flood failed: {out:?}");
    let child = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("child pid");
    (pid, child)
}

fn ptrace_of(f: &Finished, pid: u64) -> Vec<&Value> {
    f.of_type("anomaly")
        .filter(|e| e["rule"] == "ptrace_attach" && u(&e["pid"]) == pid)
        .collect()
}

/// Removes the directory when the test ends, even on a failed assert.
struct RemoveDir(std::path::PathBuf);
impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn critical_event_survives_a_flood_of_lesser_ones() {
    let _one = NOBODY.lock().unwrap_or_else(|e| e.into_inner());
    // A setuid-root interpreter: /tmp is on the root file system here (no nosuid).
    let dir = common::temp_dir("anomaly-suid");
    let _rm = RemoveDir(dir.clone());
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let suid = dir.join("python3-suid");
    fs::copy("/usr/bin/python3", &suid).expect("copy python3");
    chown(&suid, Some(0), Some(0)).expect("chown root");
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).expect("chmod 4755");

    // The smallest ring (~150 records), and the daemon stopped during the flood: the
    // flood fills the ring as far as the rules let it, whatever the machine's speed.
    let d = Daemon::start(
        "anomaly-reserved",
        &["--only", "anomaly,file", "--ring-size", "anomaly=64KiB"],
    );
    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(d.pid() as i32, libc::SIGSTOP) };
    // 2,000 successful attaches (high, never rate-limited), 20,000 refused ones and a
    // burst of 3,000 opens.
    let (flooder, _) = flood(2000, FAILED, 3000);
    // uid 65534 runs the setuid-root binary (euid 0), which calls setuid(0): it gains
    // the real uid 0.
    let helper = as_nobody(suid.to_str().expect("utf-8 path"))
        .args(["-c", "import os; os.setuid(0); assert os.getuid() == 0"])
        .spawn()
        .expect("run setuid helper");
    let hpid = u64::from(helper.id());
    let st = helper.wait_with_output().expect("helper ends").status;
    assert!(st.success(), "setuid helper: {st:?}");
    // SAFETY: as above.
    unsafe { libc::kill(d.pid() as i32, libc::SIGCONT) };
    std::thread::sleep(Duration::from_millis(500));
    let f = d.stop();
    f.assert_exact();

    let gain: Vec<_> = f
        .of_type("anomaly")
        .filter(|e| e["rule"] == "setuid_root" && u(&e["pid"]) == hpid)
        .collect();
    assert_eq!(gain.len(), 1, "one setuid_root for the helper: {gain:?}");
    let e = gain[0];
    assert_eq!(e["severity"], "critical");
    assert_eq!(e["syscall"], "setuid");
    assert_eq!(u(&e["old_uid"]), 65534);
    assert_eq!(u(&e["old_euid"]), 0);
    assert_eq!(u(&e["new_uid"]), 0);

    // The flood did fill the ring (the point of the test), and the helper's own
    // exec_from_tmp (medium) was refused: the ring was more than half full.
    let r = f.ring("anomaly");
    assert!(u(&r["dropped"]) > 0, "the flood overflowed nothing: {r}");
    assert_eq!(
        f.of_type("anomaly")
            .filter(|e| e["rule"] == "exec_from_tmp" && u(&e["pid"]) == hpid)
            .count(),
        0
    );
    let high = ptrace_of(&f, flooder)
        .iter()
        .filter(|e| e["severity"] == "high")
        .count();
    eprintln!(
        "anomaly ring: {r}; flooder's successful attaches received: {high} of 2000; \
         file ring: {}",
        f.ring("file")
    );
}
