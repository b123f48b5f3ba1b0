//! ringwarden: kernel events from eBPF, every loss counted.
//! Layout: bpf/ (programs) -> families (load/attach) -> daemon (rings, loop) ->
//! events (decode) -> json (render) -> sink.
//! The daemon is `src/main.rs` on top of this library; the library exists so that the
//! benchmarks in `benches/` can time the decode and render path on its own.
pub mod alerts;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod events;
pub mod families;
pub mod http;
pub mod journal;
pub mod json;
pub mod jsonread;
pub mod latency;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod obs;
pub mod policy;
pub mod serve;
pub mod sink;
pub mod sizing;
pub mod stats;
pub mod sys;
pub mod syscalls;
