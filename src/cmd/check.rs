//! `ringwarden check`: what this kernel supports, and every program's fate.
use std::path::Path;
use std::process::ExitCode;

use crate::family::filter::Filters;
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
    let mut all = true;
    let (mut count, mut na) = (0, 0);
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
                println!("family {family}: FAILED: {e}");
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
