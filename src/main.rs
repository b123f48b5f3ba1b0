//! ringwarden: kernel events from eBPF, every loss counted. The daemon and its modules
//! are in the library (src/lib.rs); this is the command line's entry point.
use std::process::ExitCode;

fn main() -> ExitCode {
    ringwarden::main()
}
