//! `ringwarden config default` and `ringwarden config check FILE`.
use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, Settings};
use crate::sys::Exit;
use crate::units::human;

/// Prints the built-in configuration, every key commented.
pub fn default() -> ExitCode {
    print!("{}", config::default_toml());
    ExitCode::SUCCESS
}

/// Validates a file as the daemon would read it: `PATH: ok` and a summary, or the
/// one-line error and exit 78.
pub fn check(path: &Path) -> ExitCode {
    let in_file = |e| config::Error::Invalid(format!("{}: {e}", path.display()));
    match Settings::load(path).and_then(|mut s| {
        config::check_metrics(&s.metrics).map_err(in_file)?;
        let fitted = s.fit_budget().map_err(in_file)?;
        Ok((s, fitted))
    }) {
        Ok((s, fitted)) => {
            print!("{}: ok\n{}", path.display(), s.summary());
            if let Some(b) = s.sizing.memory_budget {
                println!(
                    "memory budget {}: start sizes fitted, with room kept for resizes",
                    human(b)
                );
            }
            for (f, was, now) in fitted {
                println!(
                    "  {f} starts at {} of its {} to fit the budget",
                    human(now),
                    human(was)
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ringwarden: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
