//! systemd's notify protocol (`Type=notify`): when `$NOTIFY_SOCKET` is set (a path, or
//! `@name` for an abstract socket), the daemon sends one datagram per state change:
//! `READY=1` once every program is attached, `STATUS=` one line each tick,
//! `RELOADING=1` + `MONOTONIC_USEC=` at SIGHUP and `READY=1` when applied, `STOPPING=1`
//! when shutdown starts, and `WATCHDOG=1` every half `$WATCHDOG_USEC` (when set and
//! `$WATCHDOG_PID` is absent or ours) from a timerfd in the loop's Poll. Sends never
//! block; a failure is logged once and the daemon carries on.
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use log::warn;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// The watchdog's timer and period, armed at the first READY.
    watchdog: Option<(TimerFd, Duration)>,
    armed: bool,
    failed: bool,
}

impl Notifier {
    /// From the environment systemd gives the service; without `$NOTIFY_SOCKET`, every
    /// call is a no-op.
    pub fn from_env() -> Notifier {
        let mut n = Notifier {
            target: None,
            watchdog: None,
            armed: false,
            failed: false,
        };
        let Some(v) = std::env::var_os("NOTIFY_SOCKET") else {
            return n;
        };
        let sock = address(&v).and_then(|a| {
            let s = UnixDatagram::unbound()?;
            s.set_nonblocking(true)?;
            Ok((s, a))
        });
        match sock {
            Ok(t) => n.target = Some(t),
            Err(e) => {
                warn!("NOTIFY_SOCKET={v:?}: {e}; systemd will not be told the daemon's state");
                return n;
            }
        }
        let period = watchdog_period(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        if let Some(p) = period {
            match TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            ) {
                Ok(t) => n.watchdog = Some((t, p)),
                Err(e) => warn!("watchdog timer: {e}; systemd's watchdog will not be fed"),
            }
        }
        n
    }

    /// The timer to watch for the watchdog pings (see [`Notifier::watchdog_tick`]).
    pub fn watchdog_fd(&self) -> Option<BorrowedFd<'_>> {
        self.watchdog.as_ref().map(|(t, _)| t.as_fd())
    }

    /// Every program is attached (or a reload is done): `READY=1` with a status line;
    /// the watchdog pings start here.
    pub fn ready(&mut self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
        if let Some((t, p)) = &self.watchdog
            && !self.armed
        {
            match t.set(
                Expiration::Interval(TimeSpec::from_duration(*p)),
                TimerSetTimeFlags::empty(),
            ) {
                Ok(()) => {
                    self.armed = true;
                    // Loading took a while: tell the watchdog at once that we live.
                    self.send("WATCHDOG=1");
                }
                Err(e) => warn!("arming the watchdog timer: {e}"),
            }
        }
    }

    /// `status` is only formatted when systemd listens (not every tick for nobody).
    pub fn status(&mut self, status: impl FnOnce() -> String) {
        if self.target.is_some() {
            self.send(&format!("STATUS={}", status()));
        }
    }

    /// SIGHUP: the configuration is being re-read (systemd wants the monotonic time to
    /// tell this reload from an earlier one).
    pub fn reloading(&mut self) {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
            .unwrap_or(0);
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={now}\nSTATUS=reloading the configuration"
        ));
    }

    pub fn stopping(&mut self) {
        self.send("STOPPING=1\nSTATUS=stopping: draining the rings");
    }

    /// A ping outside the timer, between long steps of one pass of the loop (a reload);
    /// nothing before `ready` armed the watchdog.
    pub fn alive(&mut self) {
        if self.armed {
            self.send("WATCHDOG=1");
        }
    }

    /// The watchdog timer fired: one ping, however many periods passed.
    pub fn watchdog_tick(&mut self) {
        let Some((t, _)) = &self.watchdog else {
            return;
        };
        // Non-blocking: Ok only when the timer did expire (not on a spurious wake-up).
        if t.wait().is_ok() {
            self.send("WATCHDOG=1");
        }
    }

    fn send(&mut self, msg: &str) {
        let Some((s, a)) = &self.target else {
            return;
        };
        if let Err(e) = s.send_to_addr(msg.as_bytes(), a)
            && !self.failed
        {
            warn!("NOTIFY_SOCKET: {e}; systemd may not see the daemon's state (not repeated)");
            self.failed = true;
        }
    }
}

/// `$NOTIFY_SOCKET` cannot be used (a warning: the daemon runs without telling systemd).
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("not an absolute path or @abstract name")]
    NotAnAddress,
    /// Too long an address, or no socket to send from.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// `$NOTIFY_SOCKET`: an absolute path, or `@name` for the abstract namespace.
pub fn address(v: &OsStr) -> Result<SocketAddr, SocketError> {
    let b = v.as_bytes();
    Ok(match b.first() {
        Some(b'/') => SocketAddr::from_pathname(v)?,
        Some(b'@') if b.len() > 1 => SocketAddr::from_abstract_name(&b[1..])?,
        _ => return Err(SocketError::NotAnAddress),
    })
}

/// Half of `$WATCHDOG_USEC`, when it is set, not 0, and meant for us (`$WATCHDOG_PID`
/// absent or our pid).
pub fn watchdog_period(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(p) = pid
        && p.trim().parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    Some(Duration::from_micros((usec / 2).max(1)))
}

/// The one-line status systemd shows (`systemctl status`):
/// `6 rings, 1.2k ev/s, 0 dropped, 33 programs`, plus sink errors when there are any.
pub fn status_text(
    rings: usize,
    rate: f64,
    dropped: u64,
    programs: usize,
    sink_errors: u64,
) -> String {
    let rate = if rate < 1000.0 {
        format!("{rate:.0}")
    } else if rate < 1e6 {
        format!("{:.1}k", rate / 1e3)
    } else {
        format!("{:.1}M", rate / 1e6)
    };
    let mut s = format!(
        "{rings} ring{}, {rate} ev/s, {dropped} dropped, {programs} program{}",
        if rings == 1 { "" } else { "s" },
        if programs == 1 { "" } else { "s" }
    );
    if sink_errors > 0 {
        s.push_str(&format!(", {sink_errors} sink errors"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = address(OsStr::new("/run/systemd/notify")).expect("path");
        assert_eq!(
            a.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let a = address(OsStr::new("@sd-notify/1")).expect("abstract");
        assert_eq!(a.as_abstract_name(), Some(&b"sd-notify/1"[..]));
        for bad in ["", "@", "relative/path", "vsock:2:1234"] {
            assert!(address(OsStr::new(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn watchdog_half_period_for_us_only() {
        let s = Duration::from_secs;
        assert_eq!(watchdog_period(Some("2000000"), None, 7), Some(s(1)));
        assert_eq!(watchdog_period(Some("2000000"), Some("7"), 7), Some(s(1)));
        assert_eq!(watchdog_period(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_period(Some("2000000"), Some("x"), 7), None);
        assert_eq!(watchdog_period(Some("0"), None, 7), None);
        assert_eq!(watchdog_period(Some("abc"), None, 7), None);
        assert_eq!(watchdog_period(None, Some("7"), 7), None);
        assert_eq!(
            watchdog_period(Some("1"), None, 7),
            Some(Duration::from_micros(1))
        );
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            status_text(6, 1234.0, 0, 33, 0),
            "6 rings, 1.2k ev/s, 0 dropped, 33 programs"
        );
        assert_eq!(
            status_text(1, 12.4, 5, 1, 3),
            "1 ring, 12 ev/s, 5 dropped, 1 program, 3 sink errors"
        );
        assert_eq!(
            status_text(2, 2_500_000.0, 0, 4, 0),
            "2 rings, 2.5M ev/s, 0 dropped, 4 programs"
        );
    }
}
