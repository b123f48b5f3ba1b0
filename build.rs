//! Compiles every family's BPF program (bpf/FAMILY.bpf.c) into OUT_DIR/FAMILY.bpf.o, and its
//! 5.10 variant into OUT_DIR/FAMILY.510.bpf.o unless the source says it has none
//! (`#define RW_NO_VARIANT_510`). All of them are embedded as one xz stream, OUT_DIR/objects.xz,
//! indexed by OUT_DIR/objects.rs (src/family/objects.rs decodes it): the objects are mostly
//! BTF that the families share (task_struct and what it reaches), which one stream with a
//! window over all of them stores once; compressed one by one they took three times the
//! bytes. Each is also built once more with RW_LAYOUT_BTF into OUT_DIR/FAMILY.layout.o,
//! whose BTF the unit tests read to compare the Rust mirrors with the C (bpf/common.h).
//! Every `*.bpf.c` in bpf/ is a family: adding one needs no change here.
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
    let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
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
        // The object, and its variant for kernels 5.10 to 5.16 (bpf/kernel.h) unless the
        // family has none (it loads as it is there, or not at all).
        let text = std::fs::read_to_string(src).expect("read the BPF source");
        let none = text
            .lines()
            .any(|l| l.trim_start().starts_with("#define RW_NO_VARIANT_510"));
        let variants: &[(&str, &[&str])] = if none {
            &[("", &[])]
        } else {
            &[("", &[]), (".510", &["-DRW_KERNEL_510"])]
        };
        for (variant, defines) in variants {
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
            objects.push((format!("{name}{variant}"), bytes));
        }
        SkeletonBuilder::new()
            .source(src)
            .obj(out.join(format!("{name}.layout.o")))
            .clang_args(args(&["-DRW_LAYOUT_BTF"]))
            .build()
            .unwrap_or_else(|e| panic!("building {} for the layout tests: {e:#}", src.display()));
    }
    embed(&out, objects);
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-changed=vmlinux");
    link_sysroot(&arch);
}

/// Writes the objects as one xz stream (the `xz` tool, from xz-utils) and its index: each
/// object's name, offset and length in the decoded stream. The full objects come first, so
/// their offsets do not move when a variant changes.
fn embed(out: &std::path::Path, mut objects: Vec<(String, Vec<u8>)>) {
    objects.sort_by_key(|(name, _)| (name.contains(".510"), name.clone()));
    let mut index =
        String::from("// Written by build.rs: (object, offset, length) in the decoded stream.\n");
    index.push_str("pub static INDEX: &[(&str, usize, usize)] = &[\n");
    let mut all = Vec::new();
    for (name, bytes) in &objects {
        index.push_str(&format!(
            "    ({name:?}, {}, {}),\n",
            all.len(),
            bytes.len()
        ));
        all.extend_from_slice(bytes);
    }
    index.push_str("];\n");
    std::fs::write(out.join("objects.rs"), index).expect("write objects.rs");
    // -9e with a 4 MiB window: the objects take ~2.3 MB, and the decoder's buffer grows
    // only to what the stream needs. One thread: the same stream from any machine. No
    // check: the decoder checks the length instead.
    let mut xz = std::process::Command::new("xz")
        .args([
            "--format=xz",
            "--check=none",
            "--lzma2=preset=9e,dict=4MiB",
            "-T1",
            "-c",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running xz (install xz-utils): {e}"));
    let mut stdin = xz.stdin.take().expect("piped");
    let feed = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &all));
    let done = xz.wait_with_output().expect("xz");
    feed.join().expect("feeding xz").expect("writing to xz");
    if !done.status.success() {
        panic!("xz failed: {}", done.status);
    }
    std::fs::write(out.join("objects.xz"), done.stdout).expect("write objects.xz");
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
/// named become spaces, so both compress to almost nothing. A string is blanked only if it
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
