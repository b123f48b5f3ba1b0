//! Compiles every family's BPF program (bpf/FAMILY.bpf.c) into OUT_DIR/FAMILY.bpf.o and
//! deflates it into OUT_DIR/FAMILY.bpf.o.z (embedded by src/family/FAMILY.rs, inflated and
//! loaded with libbpf: the objects are mostly BTF and compress ~3.5 times), and once more with
//! RW_LAYOUT_BTF into OUT_DIR/FAMILY.layout.o, whose BTF the unit tests read to compare
//! the Rust mirrors with the C (bpf/common.h). Every `*.bpf.c` in bpf/ is a family:
//! adding one needs no change here.
use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

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
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&bpf)
        .expect("read bpf/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    sources.sort();
    for src in &sources {
        let name = src
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".bpf.c"))
            .expect("a .bpf.c file name");
        let args = |extra: &[&str]| {
            let mut a: Vec<std::ffi::OsString> = vec![
                "-I".into(),
                vmlinux.clone().into_os_string(),
                "-I".into(),
                bpf.clone().into_os_string(),
                // v3 gives atomic fetch-and-add, used for sequence numbers (kernel >= 5.12).
                "-mcpu=v3".into(),
                "-Wall".into(),
            ];
            a.extend(extra.iter().map(Into::into));
            a
        };
        let obj = out.join(format!("{name}.bpf.o"));
        SkeletonBuilder::new()
            .source(src)
            .obj(&obj)
            .clang_args(args(&[]))
            .build()
            .unwrap_or_else(|e| panic!("building {}: {e:#}", src.display()));
        let bytes = std::fs::read(&obj).expect("read the BPF object");
        let z = miniz_oxide::deflate::compress_to_vec(&bytes, 10);
        std::fs::write(out.join(format!("{name}.bpf.o.z")), z).expect("write the deflated object");
        SkeletonBuilder::new()
            .source(src)
            .obj(out.join(format!("{name}.layout.o")))
            .clang_args(args(&["-DRW_LAYOUT_BTF"]))
            .build()
            .unwrap_or_else(|e| panic!("building {} for the layout tests: {e:#}", src.display()));
    }
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-changed=vmlinux");
}
