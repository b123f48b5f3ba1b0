//! ringwarden: kernel events from eBPF, every loss counted. The daemon and its modules
//! are in the library (src/lib.rs); this is the command line's entry point.
use ringwarden::{check, cli, config, control, daemon, logging, sizing};

use std::process::ExitCode;

fn main() -> ExitCode {
    logging::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringwarden: {}", e.msg);
            return ExitCode::from(e.code as u8);
        }
    };
    match cmd {
        cli::Command::Help => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        cli::Command::Version => {
            println!("ringwarden {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        cli::Command::Check => check::run(),
        cli::Command::ConfigDefault => {
            print!("{}", config::default_toml());
            ExitCode::SUCCESS
        }
        cli::Command::ConfigCheck(path) => config::check_command(&path),
        cli::Command::Size(a) => {
            println!(
                "{}",
                sizing::explain(
                    a.event_size,
                    a.rate,
                    a.buffer_time.as_secs_f64(),
                    a.safety,
                    cli::page_size()
                )
            );
            ExitCode::SUCCESS
        }
        cli::Command::Status(a) => match &a.socket {
            Ok(p) => control::status_command(p, a.json),
            Err(e) => {
                eprintln!("ringwarden status: {e}");
                ExitCode::from(1)
            }
        },
        cli::Command::Run(opts) => match daemon::run(*opts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log::error!("{}", e.msg);
                ExitCode::from(e.code)
            }
        },
    }
}
