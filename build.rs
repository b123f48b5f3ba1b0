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
    // Release builds leave out the BTF line info (the verifier log's source lines): 79 KB of
    // the 2 MB budget. Debug builds keep it for reading verifier failures.
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
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
                // v3: 32-bit jumps and ALU (5.1) and atomic fetch-and-add, used for the
                // sequence numbers (5.12; not in the 5.10 variant, see bpf/kernel.h).
                "-mcpu=v3".into(),
                "-Wall".into(),
            ];
            a.extend(extra.iter().map(Into::into));
            a
        };
        // The object, and its variant for kernels 5.10 and 5.11 (bpf/kernel.h), which a
        // family embeds only if it declares one (Spec::object_510).
        for (variant, defines) in [("", &[][..]), (".510", &["-DRW_KERNEL_510"][..])] {
            let obj = out.join(format!("{name}{variant}.bpf.o"));
            SkeletonBuilder::new()
                .source(src)
                .obj(&obj)
                .clang_args(args(defines))
                .build()
                .unwrap_or_else(|e| panic!("building {}{variant}: {e:#}", src.display()));
            let mut bytes = std::fs::read(&obj).expect("read the BPF object");
            if release {
                drop_line_info(&mut bytes)
                    .unwrap_or_else(|e| panic!("{}: BTF line info: {e}", obj.display()));
            }
            let z = miniz_oxide::deflate::compress_to_vec(&bytes, 10);
            std::fs::write(out.join(format!("{name}{variant}.bpf.o.z")), z)
                .expect("write the deflated object");
        }
        SkeletonBuilder::new()
            .source(src)
            .obj(out.join(format!("{name}.layout.o")))
            .clang_args(args(&["-DRW_LAYOUT_BTF"]))
            .build()
            .unwrap_or_else(|e| panic!("building {} for the layout tests: {e:#}", src.display()));
    }
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-changed=vmlinux");
    link_sysroot(&arch);
}

/// With RINGWARDEN_SYSROOT (scripts/package sets it to scripts/sysroot's output), the binary
/// links against that root's glibc instead of this host's, so the package installs on the
/// oldest release it supports. gcc's --sysroot alone still finds the host's libc.so through
/// its own library path: -B and -L put the sysroot's crt files and libraries first.
fn link_sysroot(arch: &str) {
    println!("cargo:rerun-if-env-changed=RINGWARDEN_SYSROOT");
    let Some(root) = env::var_os("RINGWARDEN_SYSROOT").filter(|r| !r.is_empty()) else {
        return;
    };
    let root = PathBuf::from(root);
    let lib = root.join("usr/lib").join(format!("{arch}-linux-gnu"));
    if !lib.join("libc.so").exists() {
        panic!("RINGWARDEN_SYSROOT: no {}/libc.so", lib.display());
    }
    for arg in [
        format!("--sysroot={}", root.display()),
        format!("-B{}", lib.display()),
        format!("-L{}", lib.display()),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}

/// Empties the `.BTF.ext` line info of a little-endian ELF64 BPF object in place: the records
/// become zeros with a length of 0 (libbpf skips an empty section), and the source lines they
/// named become spaces, so both deflate to almost nothing. A string is blanked only if it
/// holds a character no type, field, section or CO-RE access string can hold (a space, `;`,
/// `(`...), so nothing else that names it changes. Sizes and offsets stay as they are.
fn drop_line_info(b: &mut [u8]) -> Result<(), String> {
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u32_at =
        |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes")) as usize;
    let u64_at =
        |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes")) as usize;
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return Err("not a little-endian ELF64 object".into());
    }
    let (shoff, shentsize, shnum, shstrndx) = (
        u64_at(b, 0x28),
        u16_at(b, 0x3a),
        u16_at(b, 0x3c),
        u16_at(b, 0x3e),
    );
    let section = |b: &[u8], i: usize| {
        let h = shoff + i * shentsize;
        (u32_at(b, h), u64_at(b, h + 0x18), u64_at(b, h + 0x20))
    };
    let names = section(b, shstrndx).1;
    let find = |b: &[u8], want: &[u8]| {
        (0..shnum).map(|i| section(b, i)).find(|&(n, _, _)| {
            let at = names + n;
            b[at..].starts_with(want) && b.get(at + want.len()) == Some(&0)
        })
    };
    let (_, btf, _) = find(b, b".BTF").ok_or("no .BTF section")?;
    let (_, ext, _) = find(b, b".BTF.ext").ok_or("no .BTF.ext section")?;
    // struct btf_header: magic, version, flags, hdr_len, type_off, type_len, str_off, str_len.
    let strings = btf + u32_at(b, btf + 4) + u32_at(b, btf + 16);
    // struct btf_ext_header: magic, version, flags, hdr_len, func_info off/len, line_info off/len.
    let lines = ext + u32_at(b, ext + 4) + u32_at(b, ext + 16);
    let len = u32_at(b, ext + 20);
    if len == 0 {
        return Ok(());
    }
    let rec = u32_at(b, lines);
    let (mut p, end) = (lines + 4, lines + len);
    while p < end {
        let count = u32_at(b, p + 4);
        p += 8;
        for _ in 0..count {
            // struct bpf_line_info: insn_off, file_name_off, line_off, line_col.
            let at = strings + u32_at(b, p + 8);
            let n = b[at..]
                .iter()
                .position(|&c| c == 0)
                .ok_or("unterminated string")?;
            let text = &mut b[at..at + n];
            if text
                .iter()
                .any(|&c| !(c.is_ascii_alphanumeric() || b"_:/.".contains(&c)))
            {
                text.fill(b' ');
            }
            p += rec;
        }
    }
    b[lines..end].fill(0);
    b[ext + 20..ext + 24].fill(0);
    Ok(())
}
