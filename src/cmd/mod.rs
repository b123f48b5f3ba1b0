//! The subcommands, one file each, and the entry point that parses the command line and
//! runs one. The top layer: it may use every module below it.
pub mod archive;
pub mod args;
pub mod check;
pub mod config;
pub mod run;
pub mod simulate;
pub mod size;
pub mod status;

use std::process::ExitCode;

use args::Command;

use crate::sys::Exit;

/// `ringwarden ARGS...`: logging set up, the command line parsed, one command run.
pub fn main() -> ExitCode {
    crate::systemd::logging::init();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match args::parse(&argv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringwarden: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    match cmd {
        Command::Help => {
            print!("{}", args::help());
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("ringwarden {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Check => check::run(),
        Command::ConfigDefault => config::default(),
        Command::ConfigCheck(path) => config::check(&path),
        Command::Size(a) => size::run(&a),
        Command::Simulate(a) => simulate::run(&a),
        Command::ArchiveVerify(dir) => archive::verify(&dir),
        Command::Status(a) => status::run(&a),
        Command::Run(opts) => run::run(*opts),
    }
}
