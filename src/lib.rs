//! ringwarden: kernel events from eBPF, every loss counted.
//!
//! Layers, each importing only those below it (`scripts/check-layers` fails CI on a
//! cycle): `units`, `sys` → `family` (BPF objects, records, the field walk) → `sizing`
//! (formula, policies, latency) → `config` (schema, file, command line merge) → `output`
//! (JSON, journal, sinks) → `systemd` → `daemon` (loop, rings, reload) → `obs` (metrics,
//! control socket, alerts) → `cmd` (one file per subcommand).
//! The binary is `src/main.rs`; the library exists so that the benchmarks in `benches/`
//! and the tests can reach the decode and render path on its own.
pub mod cmd;
pub mod config;
pub mod daemon;
pub mod family;
pub mod obs;
pub mod output;
pub mod sizing;
pub mod sys;
pub mod systemd;
pub mod units;
