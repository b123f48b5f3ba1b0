//! `ringwarden check`: what this kernel supports, and every program's fate.
use std::path::Path;
use std::process::ExitCode;

use crate::family::filter::Filters;
use crate::family::kernel::Kernel;
use crate::family::syscalls;
use crate::family::{self, Family, LoadOptions};
use crate::sys;

pub fn run() -> ExitCode {
    sys::raise_memlock();
    sys::route_libbpf_log();
    println!("kernel: {}", sys::kernel_release());
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    println!(
        "btf: {}",
        if btf {
            "/sys/kernel/btf/vmlinux present"
        } else {
            "missing: CO-RE programs cannot load (kernel needs CONFIG_DEBUG_INFO_BTF=y)"
        }
    );
    let rb = family::create_ring("rw_probe", 4096);
    match &rb {
        Ok(_) => println!("ring buffer: supported"),
        Err(e) => println!("ring buffer: not available: {e}"),
    }
    match sys::ensure_tracefs() {
        Ok(p) => println!("tracefs: {p}"),
        Err(e) => println!("tracefs: {e}"),
    }
    let kernel = Kernel::get();
    let has = |b: bool| if b { "yes" } else { "no" };
    println!("atomic fetch-and-add (5.12): {}", has(kernel.fetch));
    println!("bpf_loop (5.17): {}", has(kernel.bpf_loop));
    let old = kernel.variant_510();
    if let Some(why) = &old {
        println!("variant: 5.10 where a family has one ({why}): {VARIANT_510}");
    }
    let mut all = true;
    let (mut count, mut na) = (0, 0);
    let _objects = crate::family::objects::hold();
    // The filters first, as the daemon loads them: every family takes their maps.
    let filters = match Filters::load() {
        Ok(f) if f.attach_errors.is_empty() => {
            println!("filters: ok (pid trees followed through fork)");
            Some(f)
        }
        Ok(f) => {
            all = false;
            for e in &f.attach_errors {
                println!("filters: FAILED: {e} (include_pid_tree cannot follow new processes)");
            }
            Some(f)
        }
        Err(e) => {
            all = false;
            println!("filters: FAILED: {e} (no rule can be applied)");
            None
        }
    };
    for &family in Family::ALL {
        let filter_maps = match filters.as_ref().map(Filters::maps) {
            Some(Ok(m)) => m,
            _ => Vec::new(),
        };
        let opts = LoadOptions {
            ring_size: family.default_ring_size(),
            shards: 1,
            syscalls: syscalls::default_set(),
            reuse: None,
            filter_maps,
            context: false,
            // The default settings' programs: what a start on them attaches.
            skip: if family == Family::Tls {
                crate::family::tls::TlsSettings::default().programs_off()
            } else {
                Vec::new()
            },
            map_values: Vec::new(),
        };
        match family.load(&opts) {
            Ok(loaded) => {
                if loaded.variant_510.is_some() {
                    println!("family {family}: the 5.10 variant runs");
                }
                for p in &loaded.programs {
                    count += 1;
                    match (&p.error, &p.not_applicable) {
                        (None, Some(why)) => {
                            na += 1;
                            println!("program {family}/{}: n/a ({}): {why}", p.name, p.section)
                        }
                        (None, None) => println!("program {family}/{}: ok ({})", p.name, p.section),
                        (Some(e), _) => {
                            all = false;
                            println!("program {family}/{}: FAILED ({}): {e}", p.name, p.section);
                        }
                    }
                }
            }
            Err(e) => {
                all = false;
                let lacks = family::kernel::lacking(family.spec().needs);
                let why = if lacks.is_empty() {
                    String::new()
                } else {
                    format!(" (this kernel has no {lacks})")
                };
                println!("family {family}: FAILED: {e}{why}");
            }
        }
    }
    if all && btf && rb.is_ok() {
        println!(
            "result: ok, all {} default programs attach ({na} not applicable to this kernel)",
            count - na
        );
        ExitCode::SUCCESS
    } else {
        println!("result: some default programs cannot run here (see FAILED above)");
        ExitCode::FAILURE
    }
}

/// What the 5.10 variant gives up (bpf/kernel.h), as `check` says it.
const VARIANT_510: &str = "records carry no seq (drops are counted and reported as lost \
records from the counters), rate limits and high-water marks are approximate under racing \
CPUs, a file path deeper than 48 steps is cut short and flagged, and a task in a cgroup more \
than 32 levels deep is not judged by cgroup rules, calls in flight are a hash of 1024 (one \
more at once is counted as untracked), and the owners of outgoing TCP connections are a hash \
of 16384 open connections (one more is counted as untracked and its close says its owner is \
unknown)";
