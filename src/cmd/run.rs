//! `ringwarden run`: the daemon, with its observability on the same loop.
use std::process::ExitCode;

use crate::config::cli::RunOptions;
use crate::sys::Exit;
use crate::{daemon, obs};

pub fn run(opts: RunOptions) -> ExitCode {
    match daemon::run(opts, obs::Obs::start) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}
