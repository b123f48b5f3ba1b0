//! `--output FILE` cannot be turned against the host (issue 10, attack 6). An unprivileged
//! user (uid 65534) who can write the output's directory plants a link to a file of
//! root's, or a file of their own to read the events from: the daemon refuses both with
//! one line and exit 78, and writes nothing. A file it creates is 0600 whatever the umask.
mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::{Daemon, as_nobody, run_cli, sh_as_nobody, temp_dir};

/// A directory anyone can write, as /tmp (sticky) or as a careless 0777 one (where the
/// kernel's protected_symlinks does not apply and O_NOFOLLOW alone protects).
fn shared_dir(tag: &str, mode: u32) -> std::path::PathBuf {
    let d = temp_dir(tag);
    fs::set_permissions(&d, fs::Permissions::from_mode(mode)).expect("chmod dir");
    d
}

fn refused(output: &Path) -> String {
    let out = output.to_str().expect("utf-8 path");
    let (code, _, err) = run_cli(&["run", "--only", "process", "--output", out]);
    assert_eq!(code, 78, "exit code; stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    lines[0].to_string()
}

#[test]
fn a_link_planted_by_another_user_is_refused_and_its_target_untouched() {
    for (tag, mode) in [("link-sticky", 0o1777), ("link-open", 0o777)] {
        let d = shared_dir(tag, mode);
        let victim = d.join("victim");
        fs::write(&victim, "precious\n").expect("write victim");
        let link = d.join("events.json");
        sh_as_nobody(&format!("ln -s {} {}", victim.display(), link.display()));
        let line = refused(&link);
        assert!(line.contains("is a symbolic link"), "{line}");
        assert!(line.contains("give the path of the file itself"), "{line}");
        assert_eq!(fs::read_to_string(&victim).expect("read"), "precious\n");
        assert_eq!(fs::metadata(&victim).expect("stat").mode() & 0o777, 0o644);
    }
}

#[test]
fn a_file_or_fifo_another_user_made_is_refused() {
    let d = shared_dir("theirs", 0o1777);
    let file = d.join("events.json");
    let fifo = d.join("events.fifo");
    sh_as_nobody(&format!(
        "umask 0; : > {}; mkfifo {}",
        file.display(),
        fifo.display()
    ));
    let line = refused(&file);
    assert!(line.contains("belongs to uid 65534"), "{line}");
    assert!(
        line.contains("give a new path, or a file owned by uid 0"),
        "{line}"
    );
    assert_eq!(
        fs::metadata(&file).expect("stat").len(),
        0,
        "nothing written"
    );
    // A fifo opens only with a reader: the attacker's, who would be reading the events.
    // It reads nothing here: the daemon refuses before writing.
    let reader = Reader(
        as_nobody("/usr/bin/python3")
            .args([
                "-c",
                "import os, sys, time\n\
                 fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)\n\
                 time.sleep(30)",
            ])
            .arg(&fifo)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("reader"),
    );
    // Only once the reader holds the fifo open (else the open fails for want of one).
    let fds = format!("/proc/{}/fd", reader.0.id());
    let holds = || {
        fs::read_dir(&fds).is_ok_and(|mut it| {
            it.any(|e| e.is_ok_and(|e| fs::read_link(e.path()).is_ok_and(|t| t == fifo)))
        })
    };
    let t = std::time::Instant::now();
    while !holds() {
        assert!(
            t.elapsed().as_secs() < 10,
            "the reader never opened the fifo"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let line = refused(&fifo);
    assert!(line.contains("belongs to uid 65534"), "{line}");
}

/// A child killed when the test ends, however it ends.
struct Reader(std::process::Child);

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_new_file_is_0600_whatever_the_umask_and_dev_null_still_works() {
    // SAFETY: umask has no preconditions; the daemons below inherit it.
    unsafe { libc::umask(0o022) };
    let d = temp_dir("mode");
    let out = d.join("events.json");
    let daemon = Daemon::builder("mode")
        .args(&["--only", "process"])
        .output(&out)
        .start();
    let mode = fs::metadata(&out).expect("output created").mode() & 0o7777;
    daemon.stop();
    assert_eq!(mode, 0o600);
    // Root's character devices stay usable (the benchmarks write JSON to /dev/null).
    let daemon = Daemon::builder("devnull")
        .args(&["--only", "process"])
        .output(Path::new("/dev/null"))
        .start();
    let f = daemon.stop();
    assert!(f.status.success(), "{}", f.stderr);
}
