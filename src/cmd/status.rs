//! `ringwarden status [--json]`: asks a running daemon over its control socket.
use std::process::ExitCode;

use super::args::StatusArgs;
use crate::obs::control;
use crate::sys::Exit;

pub fn run(a: &StatusArgs) -> ExitCode {
    match &a.socket {
        Ok(p) => control::status_command(p, a.json),
        Err(e) => {
            eprintln!("ringwarden status: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
