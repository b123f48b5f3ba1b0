//! `--record-rates FILE`: one JSON line per tick with what each ring's policy observed,
//! the trace `ringwarden sizing simulate` replays (docs/sizing.md, "Choosing a budget").
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::warn;

use crate::family::Family;
use crate::sizing::policy::Observation;
use crate::sizing::{self, policy};

pub struct Recorder {
    out: BufWriter<File>,
    path: PathBuf,
    /// A write failed: said once, nothing more recorded.
    failed: bool,
}

impl Recorder {
    /// A new file (replacing one that is there; not through a symlink), mode 0600.
    pub fn create(path: &Path) -> io::Result<Recorder> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Recorder {
            out: BufWriter::new(f),
            path: path.to_path_buf(),
            failed: false,
        })
    }

    /// `{"t":12.003,"rings":{"file":{"events":..,"size":..,"high_water":..,"dropped":..,
    /// "elapsed":1.001,"record":..,"peak":..}}}`: the rings observed this tick (a shard as
    /// file/1); `record` is what a record took on average (0: none read).
    pub fn tick(&mut self, now: Duration, observed: &[(&'static str, Observation)]) {
        if self.failed || observed.is_empty() {
            return;
        }
        let mut line = format!("{{\"t\":{:.3},\"rings\":{{", now.as_secs_f64());
        for (i, (label, o)) in observed.iter().enumerate() {
            let family = label.split('/').next().and_then(Family::parse);
            let record = family.map_or(1, sizing::record_size);
            // Labels are family names, with /N for a shard: nothing to escape.
            line.push_str(&format!(
                "{}\"{label}\":{{\"events\":{},\"size\":{},\"high_water\":{},\"dropped\":{},\"elapsed\":{:.3},\"record\":{},\"peak\":{}}}",
                if i == 0 { "" } else { "," },
                o.produced,
                o.size,
                o.high_water,
                o.dropped,
                o.elapsed.as_secs_f64(),
                o.record,
                policy::peak(o, record)
            ));
        }
        line.push_str("}}\n");
        if let Err(e) = self
            .out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.flush())
        {
            warn!(
                "--record-rates {}: {e}; recording stops here",
                self.path.display()
            );
            self.failed = true;
        }
    }
}
