//! `ringwarden size`: the sizing formula for given numbers, worked through.
use std::process::ExitCode;

use super::args::SizeArgs;
use crate::{sizing, sys};

pub fn run(a: &SizeArgs) -> ExitCode {
    println!(
        "{}",
        sizing::explain(
            a.event_size,
            a.rate,
            a.buffer_time.as_secs_f64(),
            a.safety,
            sys::page_size()
        )
    );
    ExitCode::SUCCESS
}
