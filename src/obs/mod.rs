//! The daemon's observability on its loop: the metrics endpoint, the control socket,
//! the node_exporter textfile and the threshold alerts. The daemon calls `start` before
//! loading anything, `ready` for this module's tokens, `tick` every second and `reload`
//! after SIGHUP; every number comes from one [`Snapshot`] of its books.
pub mod alerts;
pub mod control;
pub mod http;
pub mod jsonread;
pub mod metrics;
pub mod peer;
pub mod serve;

use std::cell::{LazyCell, RefCell};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use log::{error, info, warn};
use mio::{Registry, Token};

use crate::config::Settings;
use crate::daemon::snapshot::Snapshot;
use crate::daemon::{LazySnapshot, OBSERVER_TOKENS, Observer};
use crate::family::Family;
use crate::sizing::policy::Observation;
use crate::sys::{self, Exit};
use alerts::Alerts;
use serve::{Kind, Listener, Request, Server};

/// This module's tokens, in the range the daemon leaves to observers: the two listeners,
/// then a block of token numbers per server for its connections.
const METRICS_LISTEN: Token = Token(OBSERVER_TOKENS);
const CONTROL_LISTEN: Token = Token(OBSERVER_TOKENS + 1);
const CONN_BLOCK: usize = 1 << 20;
const METRICS_CONNS: usize = OBSERVER_TOKENS + CONN_BLOCK;
const CONTROL_CONNS: usize = OBSERVER_TOKENS + 2 * CONN_BLOCK;

pub struct Obs {
    metrics: Option<Server>,
    /// As configured (the port may be 0: the bound one is in the log).
    metrics_addr: Option<SocketAddr>,
    metrics_hosts: Vec<String>,
    control: Option<Server>,
    control_path: Option<PathBuf>,
    textfile: Option<PathBuf>,
    /// The textfile's last write failed (warned once, retried every tick).
    textfile_failing: bool,
    alerts: Alerts,
    /// RefCell: filled from inside the servers' `respond` (an `Fn`).
    exposition: RefCell<Exposition>,
}

/// The exposition of the current tick, rendered when first asked for and then served as
/// is: however many scrapes come, the loop renders at most once per tick. A scrape's
/// numbers are at most one tick old and all come from one snapshot (self-consistent
/// books). The control socket (mode 0600, root only) is answered fresh.
#[derive(Default)]
struct Exposition {
    /// Ticks so far; `text` is current while `rendered_in == Some(ticks)`.
    ticks: u64,
    rendered_in: Option<u64>,
    text: String,
    renders: u64,
}

impl Exposition {
    fn tick(&mut self) {
        self.ticks += 1;
    }

    /// The books changed shape (SIGHUP): the next scrape renders anew.
    fn invalidate(&mut self) {
        self.rendered_in = None;
    }

    fn get(&mut self, snapshot: impl FnOnce() -> Snapshot) -> &str {
        if self.rendered_in != Some(self.ticks) {
            self.renders += 1;
            self.text = metrics::render(&snapshot(), self.renders);
            self.rendered_in = Some(self.ticks);
        }
        &self.text
    }
}

/// The metrics endpoint cannot be served: the daemon stops before loading anything
/// (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen for metrics on {addr}: {source}; {}", listen_fix(.source, .addr))]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("metrics listener on {addr}: {source}")]
    Nonblocking { addr: SocketAddr, source: io::Error },
    #[error("registering the metrics listener: {0}")]
    Register(io::Error),
}

impl Exit for Error {
    fn exit_code(&self) -> u8 {
        sys::exit::RUNTIME
    }
}

fn listen_fix(e: &io::Error, addr: &SocketAddr) -> String {
    if e.kind() == io::ErrorKind::AddrInUse {
        format!(
            "another process holds the port (see `ss -ltnp 'sport = :{}'`): stop it or choose another [metrics] listen / --metrics-listen",
            addr.port()
        )
    } else {
        "choose another [metrics] listen / --metrics-listen, or off".to_string()
    }
}

/// Who may name the server in `Host`: checked on loopback (DNS rebinding), and anywhere
/// names are configured.
fn http_kind(addr: SocketAddr, allow_hosts: &[String]) -> Kind {
    let check = addr.ip().to_canonical().is_loopback() || !allow_hosts.is_empty();
    Kind::Http {
        hosts: check.then(|| allow_hosts.to_vec()),
    }
}

fn bind_metrics(
    addr: SocketAddr,
    allow_hosts: &[String],
    registry: &Registry,
) -> Result<Server, Error> {
    let l = TcpListener::bind(addr).map_err(|source| Error::Listen { addr, source })?;
    l.set_nonblocking(true)
        .map_err(|source| Error::Nonblocking { addr, source })?;
    let server = Server::new(
        http_kind(addr, allow_hosts),
        Listener::Tcp(l),
        METRICS_LISTEN,
        METRICS_CONNS,
        None,
        registry,
    )
    .map_err(Error::Register)?;
    let bound = server.local_addr().unwrap_or(addr);
    info!("metrics: serving http://{bound}/metrics");
    Ok(server)
}

/// The control socket, or a warning and none: status matters less than events.
fn bind_control(path: &Path, registry: &Registry) -> Option<Server> {
    let bound = control::bind(path).and_then(|(l, owned)| {
        Server::new(
            Kind::Control,
            Listener::Unix(l),
            CONTROL_LISTEN,
            CONTROL_CONNS,
            Some(owned),
            registry,
        )
        .map_err(control::BindError::Register)
    });
    match bound {
        Ok(s) => {
            info!("control socket: {}", path.display());
            Some(s)
        }
        Err(e) => {
            warn!(
                "control socket {}: {e}; running without it (`ringwarden status` will not reach this daemon; give it its own with --control-socket PATH)",
                path.display()
            );
            None
        }
    }
}

impl Obs {
    /// Binds what the settings ask for. An explicitly configured metrics address that
    /// cannot be bound is an error (the daemon exits 1 before loading anything); a
    /// control socket that cannot be had is a warning.
    pub fn start(s: &Settings, registry: &Registry) -> Result<Obs, Error> {
        let metrics = match s.metrics.listen {
            Some(a) => Some(bind_metrics(a, &s.metrics.allow_hosts, registry)?),
            None => None,
        };
        let control = s
            .control
            .socket
            .as_deref()
            .and_then(|p| bind_control(p, registry));
        Ok(Obs {
            metrics,
            metrics_addr: s.metrics.listen,
            metrics_hosts: s.metrics.allow_hosts.clone(),
            control,
            control_path: s.control.socket.clone(),
            textfile: s.metrics.textfile.clone(),
            textfile_failing: false,
            alerts: Alerts::default(),
            exposition: RefCell::default(),
        })
    }
}

/// The answer to a complete request: the tick's exposition, or a fresh status.
fn respond(
    r: Request,
    exposition: &RefCell<Exposition>,
    snapshot: &dyn Fn() -> Snapshot,
) -> Vec<u8> {
    match r {
        Request::Metrics => exposition.borrow_mut().get(snapshot).as_bytes().to_vec(),
        Request::Status => snapshot().json(),
    }
}

impl Observer for Obs {
    fn ready(&mut self, t: Token, registry: &Registry, snapshot: &dyn Fn() -> Snapshot) {
        let exposition = &self.exposition;
        let respond = |r: Request| respond(r, exposition, snapshot);
        for s in [&mut self.metrics, &mut self.control].into_iter().flatten() {
            if s.owns(t) {
                s.ready(t, registry, &respond);
            }
        }
    }

    /// Every tick: alerts from the rings' observations, the textfile, and the servers'
    /// timeouts.
    fn tick(
        &mut self,
        registry: &Registry,
        observed: &[(&'static str, Observation)],
        snapshot: &LazySnapshot<'_>,
    ) {
        for (ring, o) in observed {
            for l in self.alerts.observe(ring, o) {
                log::log!(l.level, "{}", l.text);
            }
        }
        let exposition = &self.exposition;
        exposition.borrow_mut().tick();
        let take = || LazyCell::force(snapshot).clone();
        let respond = |r: Request| respond(r, exposition, &take);
        for s in [&mut self.metrics, &mut self.control].into_iter().flatten() {
            s.sweep(registry, &respond);
        }
        if let Some(path) = &self.textfile {
            match metrics::write_textfile(path, exposition.borrow_mut().get(take)) {
                Ok(()) if self.textfile_failing => {
                    self.textfile_failing = false;
                    info!("metrics textfile {}: written again", path.display());
                }
                Ok(()) => {}
                Err(e) if !self.textfile_failing => {
                    self.textfile_failing = true;
                    warn!(
                        "metrics textfile {}: {e}; retrying every second (create the directory or fix [metrics] textfile)",
                        path.display()
                    );
                }
                Err(_) => {}
            }
        }
    }

    /// After SIGHUP: a new metrics address or control socket is bound (the old one is
    /// closed first, so the same port can move to another address); a new textfile
    /// path is used from the next tick.
    fn reload(&mut self, s: &Settings, registry: &Registry) {
        self.exposition.get_mut().invalidate();
        if s.metrics.listen != self.metrics_addr {
            let old = self.metrics_addr;
            if let Some(m) = self.metrics.take() {
                m.stop(registry);
            }
            self.metrics_addr = s.metrics.listen;
            if let Some(a) = s.metrics.listen {
                match bind_metrics(a, &s.metrics.allow_hosts, registry) {
                    Ok(m) => self.metrics = Some(m),
                    Err(e) => {
                        // Back to the old address if there was one, rather than no metrics.
                        self.metrics = old
                            .and_then(|o| bind_metrics(o, &s.metrics.allow_hosts, registry).ok());
                        self.metrics_addr = self.metrics.as_ref().and(old);
                        error!(
                            "SIGHUP: {e}; {}",
                            match self.metrics_addr {
                                Some(o) => format!("still serving {o}"),
                                None => "metrics are off until the next reload".to_string(),
                            }
                        );
                    }
                }
            } else {
                info!("SIGHUP: metrics endpoint closed");
            }
        }
        if s.metrics.allow_hosts != self.metrics_hosts {
            self.metrics_hosts = s.metrics.allow_hosts.clone();
            if let (Some(m), Some(a)) = (&mut self.metrics, self.metrics_addr) {
                m.set_kind(http_kind(a, &self.metrics_hosts));
            }
            info!(
                "SIGHUP: metrics Host names besides addresses and localhost: {}",
                match self.metrics_hosts.join(", ") {
                    n if n.is_empty() => "none".to_string(),
                    n => n,
                }
            );
        }
        if s.control.socket != self.control_path {
            if let Some(c) = self.control.take() {
                c.stop(registry);
            }
            self.control_path = s.control.socket.clone();
            self.control = s
                .control
                .socket
                .as_deref()
                .and_then(|p| bind_control(p, registry));
        }
        // A family switched off: its alerts end (a new start line if it comes back).
        for f in Family::ALL {
            if !s.families.contains(f) {
                self.alerts.forget(f.name());
            }
        }
        if s.metrics.textfile != self.textfile {
            self.remove_textfile();
            self.textfile = s.metrics.textfile.clone();
            self.textfile_failing = false;
        }
    }

    /// A stopped daemon's numbers are not current: the textfile goes with it (the
    /// endpoint goes too, and the socket file, when `self` is dropped).
    fn finish(&mut self, registry: &Registry) {
        self.remove_textfile();
        for s in [self.metrics.take(), self.control.take()]
            .into_iter()
            .flatten()
        {
            s.stop(registry);
        }
    }
}

impl Obs {
    fn remove_textfile(&self) {
        if let Some(p) = &self.textfile {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::snapshot::tests::sample;

    #[test]
    fn the_exposition_is_rendered_once_per_tick_whatever_the_scrapes() {
        let mut e = Exposition::default();
        let taken = std::cell::Cell::new(0);
        let take = || {
            taken.set(taken.get() + 1);
            sample()
        };
        for tick in 1..=3u64 {
            for _ in 0..100 {
                let text = e.get(take).to_string();
                assert!(text.ends_with(&format!("ringwarden_metrics_renders_total {tick}\n")));
            }
            assert_eq!(taken.get(), tick, "one snapshot per tick");
            e.tick();
        }
        // A tick nobody scraped costs nothing.
        e.tick();
        assert_eq!(taken.get(), 3);
        e.invalidate();
        e.get(take);
        e.get(take);
        assert_eq!((taken.get(), e.renders), (4, 4));
    }
}
