//! Compiles every family's BPF program (bpf/FAMILY.bpf.c) into a libbpf-rs skeleton.
use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const FAMILIES: &[&str] = &["process", "file", "network", "syscall", "cgroup", "anomaly"];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("set by cargo");
    let vmlinux = manifest.join("vmlinux").join(&arch);
    if !vmlinux.join("vmlinux.h").exists() {
        panic!(
            "no vmlinux/{arch}/vmlinux.h: generate it on a {arch} host with \
             `bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/{arch}/vmlinux.h`"
        );
    }
    let bpf = manifest.join("bpf");
    for family in FAMILIES {
        let src = bpf.join(format!("{family}.bpf.c"));
        SkeletonBuilder::new()
            .source(&src)
            .clang_args([
                "-I".into(),
                vmlinux.clone().into_os_string(),
                "-I".into(),
                bpf.clone().into_os_string(),
                // v3 gives atomic fetch-and-add, used for sequence numbers (kernel >= 5.12).
                "-mcpu=v3".into(),
                "-Wall".into(),
            ])
            .build_and_generate(out.join(format!("{family}.skel.rs")))
            .unwrap_or_else(|e| panic!("building {}: {e:#}", src.display()));
    }
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-changed=vmlinux");
}
