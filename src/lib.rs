//! ringwarden: kernel events from eBPF, every loss counted.
//!
//! Layers, each importing only those below it (`scripts/check-layers` fails CI on a
//! cycle): `units`, `sys` → `context` (process context: unit, container, user names) →
//! `family` (BPF objects, records, the field walk) → `sizing` (formula, policies,
//! latency) → `config` (schema, file, command line merge) → `output` (JSON, journal,
//! sinks) → `systemd` → `daemon` (loop, rings, reload) → `obs` (metrics, control socket,
//! alerts) → `cmd` (one file per subcommand).
//! The binary is `src/main.rs` ([`main`]); the library exists so that the benchmarks in
//! `benches/` and the tests can reach the decode and render path on its own. Only what
//! they use is public; the rest is private to the crate, so unused code is reported.
//! `fuzzing` (hidden) is the one door to private parsers, for the targets in `fuzz/`.
mod cmd;
mod config;
pub mod context;
mod daemon;
pub mod family;
#[doc(hidden)]
pub mod fuzzing;
mod obs;
pub mod output;
mod sizing;
pub mod sys;
mod systemd;
pub mod units;

pub use cmd::main;
