//! `ringwarden config default` and `ringwarden config check FILE`.
use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, Settings};
use crate::sys::Exit;

/// Prints the built-in configuration, every key commented.
pub fn default() -> ExitCode {
    print!("{}", config::default_toml());
    ExitCode::SUCCESS
}

/// Validates a file as the daemon would read it: `PATH: ok` and a summary, or the
/// one-line error and exit 78.
pub fn check(path: &Path) -> ExitCode {
    match Settings::load(path).and_then(|s| {
        config::check_metrics(&s.metrics)
            .map_err(|e| config::Error::Invalid(format!("{}: {e}", path.display())))?;
        Ok(s)
    }) {
        Ok(s) => {
            print!("{}: ok\n{}", path.display(), s.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ringwarden: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
