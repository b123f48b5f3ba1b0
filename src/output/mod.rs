//! Where events go: the JSON-lines writer, native journal entries, and the sinks that
//! take rendered events out of the loop without ever blocking it.
pub mod archive;
pub mod gzip;
pub mod journal;
pub mod json;
pub mod raised;
pub mod sink;

use std::io;
use std::path::{Path, PathBuf};

pub use archive::ArchiveSettings;
pub use raised::{Lost, Raised, Throttle, What};
pub use sink::{Flushed, Lines, Sink, SinkBooks};

use crate::sys::{self, Exit};

/// The sink `--output` names cannot be opened: a bad configuration value (exit 78).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open --output {path:?}: {source}; give a writable path")]
    Open { path: PathBuf, source: io::Error },
    /// A link (someone who can write its directory could point it at any file).
    #[error(
        "--output {0:?} is a symbolic link; give the path of the file itself (events are never written through a link)"
    )]
    Symlink(PathBuf),
    /// Not a file of ours: the events (command lines, paths) would go to whoever owns it.
    #[error("--output {path:?} {why}; give a new path, or a file owned by uid {uid}")]
    NotOurs {
        path: PathBuf,
        why: String,
        uid: u32,
    },
    /// Rotation, retention and compression need a regular file.
    #[error(
        "--output {0:?} is not a regular file; [output.file] rotation, retention and compression need one: give a file path or leave them out"
    )]
    NotAFile(PathBuf),
    #[error("cannot use stdout: {0}; pass --output PATH")]
    Stdout(io::Error),
    #[error("--output journal: cannot create a socket: {0}")]
    JournalSocket(io::Error),
}

impl Exit for Error {
    fn exit_code(&self) -> u8 {
        sys::exit::CONFIG
    }
}

/// The sink `--output` names: `journal`, `none`, a path (an archive as `archive` says),
/// or stdout (`None`).
pub fn open(path: Option<&Path>, archive: &ArchiveSettings) -> Result<Box<dyn Sink>, Error> {
    Ok(match path {
        Some(p) if p == Path::new("journal") => {
            if archive.is_set() {
                return Err(Error::NotAFile(p.to_path_buf()));
            }
            Box::new(journal::JournalSink::open(&journal::socket_path())?)
        }
        _ => Box::new(Lines::open(path, archive)?),
    })
}
