//! Where events go: the JSON-lines writer, native journal entries, and the sinks that
//! take rendered events out of the loop without ever blocking it.
pub mod journal;
pub mod json;
pub mod sink;

use std::path::Path;

pub use sink::{Flushed, Lines, Sink};

/// The sink `--output` names: `journal`, `none`, a path, or stdout (`None`).
pub fn open(path: Option<&Path>) -> Result<Box<dyn Sink>, String> {
    Ok(match path {
        Some(p) if p == Path::new("journal") => {
            Box::new(journal::JournalSink::open(&journal::socket_path())?)
        }
        _ => Box::new(Lines::open(path)?),
    })
}
