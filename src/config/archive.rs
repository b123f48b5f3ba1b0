//! `[output.file]`: what a file output's archive does (rotation, retention, compression),
//! and how the keys must fit together. The archive itself is `output::archive`.
use std::time::Duration;

/// What `[output.file]` (or the `--rotate-*`, `--keep-*`, `--max-total` and `--compress`
/// options) asks of a file output. All off: the file is appended to for ever, as before;
/// it is still reopened on SIGUSR1 and held while it cannot be written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveSettings {
    /// Rotate the active file before it grows past this many bytes.
    pub rotate_size: Option<u64>,
    /// Rotate the active file once it has been written to for this long.
    pub rotate_interval: Option<Duration>,
    /// Keep at most this many rotated files.
    pub keep_files: Option<u32>,
    /// Delete rotated files last written longer ago than this.
    pub keep_age: Option<Duration>,
    /// Keep the active and rotated files together under this many bytes.
    pub max_total: Option<u64>,
    /// gzip rotated files.
    pub compress: bool,
}

/// `rotate_interval` and `keep_age` bounds: a second (tests) to ten years.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
pub const MAX_AGE: Duration = Duration::from_secs(10 * 366 * 86_400);
pub const MAX_KEEP_FILES: u32 = 100_000;
/// The smallest `rotate_size`: a page of events (tests use 64 KiB).
pub const MIN_ROTATE_SIZE: u64 = 4096;

impl ArchiveSettings {
    /// What the keys mean together: retention and compression act on rotated files, so
    /// something must rotate; a total smaller than one active file cannot be kept.
    pub fn check(&self) -> Result<(), String> {
        use crate::units::human;
        if let Some(r) = self.rotate_size
            && r < MIN_ROTATE_SIZE
        {
            return Err(format!(
                "rotate_size {} is too small; use at least {}, e.g. \"64MiB\"",
                human(r),
                human(MIN_ROTATE_SIZE)
            ));
        }
        let rotates = self.rotate_size.is_some() || self.rotate_interval.is_some();
        let acts = self.keep_files.is_some()
            || self.keep_age.is_some()
            || self.max_total.is_some()
            || self.compress;
        if acts && !rotates {
            return Err(
                "keep_files, keep_age, max_total and compress act on rotated files, and nothing rotates; set rotate_size (e.g. \"64MiB\") or rotate_interval (e.g. \"1h\")"
                    .into(),
            );
        }
        if let Some(m) = self.max_total {
            // The active file and (compressing) a .gz in the making take room of their
            // own (reserve); at least one rotated file must fit beside them.
            match self.rotate_size {
                Some(r) if m >= self.reserve(r).saturating_add(r) => {}
                Some(r) => {
                    return Err(format!(
                        "max_total {} leaves no room for rotated files beside an active file of rotate_size {}{}; make max_total at least {} (e.g. 8 times rotate_size)",
                        human(m),
                        human(r),
                        if self.compress {
                            " and one being compressed"
                        } else {
                            ""
                        },
                        crate::units::fmt_size(self.reserve(r).saturating_add(r))
                    ));
                }
                None => {
                    return Err(
                        "max_total needs rotate_size: without it the active file could grow past the total; set rotate_size (e.g. max_total / 8)"
                            .into(),
                    );
                }
            }
        }
        Ok(())
    }

    /// Room `max_total` keeps for what grows besides the rotated files when the active
    /// file rotates at `r`: that file, and, compressing, the `.gz` being written (at most
    /// 1/8 bigger than its source, for data that does not compress, plus its header). So
    /// the total is a ceiling, not a target passed between two rotations.
    pub fn reserve(&self, r: u64) -> u64 {
        if self.compress {
            r.saturating_mul(2).saturating_add(r / 8 + 4096)
        } else {
            r
        }
    }

    /// Whether anything rotates, expires or compresses (else the file is only appended).
    pub fn is_set(&self) -> bool {
        *self != ArchiveSettings::default()
    }

    /// One line for `config check` and the start log.
    pub fn summary(&self) -> String {
        use crate::units::{fmt_duration, human};
        let mut parts = Vec::new();
        if let Some(s) = self.rotate_size {
            parts.push(format!("rotate at {}", human(s)));
        }
        if let Some(d) = self.rotate_interval {
            parts.push(format!("rotate every {}", fmt_duration(d)));
        }
        if let Some(n) = self.keep_files {
            parts.push(format!("keep {n} files"));
        }
        if let Some(d) = self.keep_age {
            parts.push(format!("keep {}", fmt_duration(d)));
        }
        if let Some(m) = self.max_total {
            parts.push(format!("at most {} in all", human(m)));
        }
        if self.compress {
            parts.push("gzip".to_string());
        }
        if parts.is_empty() {
            "appended, no rotation".to_string()
        } else {
            parts.join(", ")
        }
    }
}
