//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the docs, may
//! change with any commit). Thin wrappers over the private parsers, so that the rest of
//! the crate stays private; nothing in the crate imports this module.
use crate::config::Settings;
use crate::obs::serve::{Parsed, Request};
use crate::obs::{control, http};

/// A protocol parser's verdict, mirrored so that the fuzz targets need no private type.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Incomplete: wait for more.
    More,
    /// Nothing to answer: close.
    Close,
    /// These bytes are the answer (an error).
    Reply(Vec<u8>),
    /// A metrics request (HTTP).
    Metrics,
    /// A status request (control socket).
    Status,
}

fn verdict(p: Parsed) -> Verdict {
    match p {
        Parsed::More => Verdict::More,
        Parsed::Close => Verdict::Close,
        Parsed::Reply(b) => Verdict::Reply(b),
        Parsed::Request(Request::Metrics) => Verdict::Metrics,
        Parsed::Request(Request::Status) => Verdict::Status,
    }
}

/// A configuration file's text validated as the daemon does (`page`: the smallest ring
/// size): `config check`'s summary, or the error message.
pub fn config(src: &str, page: u64) -> Result<String, String> {
    Settings::from_toml(src, page)
        .map(|s| s.summary())
        .map_err(|e| e.to_string())
}

/// The metrics endpoint's request parser on the bytes read so far, as on loopback (the
/// default listener: the Host check on).
pub fn http(buf: &[u8], eof: bool) -> Verdict {
    verdict(http::parse(buf, eof, Some(&[])))
}

/// The control socket's request parser on the bytes read so far.
pub fn control(buf: &[u8], eof: bool) -> Verdict {
    verdict(control::parse(buf, eof))
}

/// What a cgroup path says (the process context's parser: names of delegated cgroups are
/// chosen by unprivileged users): the unit, the slice, and the container as (runtime,
/// id, name, pod uid).
pub type Placement = (
    Option<String>,
    Option<String>,
    Option<(&'static str, String, Option<String>, Option<String>)>,
);

pub fn cgroup_placement(path: &str) -> Placement {
    let p = crate::context::cgroup::placement(path);
    (
        p.unit,
        p.slice,
        p.container
            .map(|c| (c.runtime.as_str(), c.id, c.name, c.pod_uid)),
    )
}
