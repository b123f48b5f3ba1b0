//! TLS family records (bpf/tls.h): executable library mappings (`lib_load`) and the
//! sessions of the host's libssl (`tls_handshake`, `tls_close`).
use std::io::Write as _;
use std::mem::size_of;

use plain::Plain;

use super::path::{self, RESOLVED_LEN};
use super::record::{DecodeError, Fields, Header, prefix, view};
use super::summary::{PRIO_INFO, PRIO_NOTICE, by, quoted};
use super::{KIB, MIB, Spec, max};

/// `enum rw_tls_type` (bpf/tls.h): the header's `type`.
pub mod kind {
    pub const LIB_LOAD: u32 = 29;
    pub const TLS_HANDSHAKE: u32 = 30;
    pub const TLS_CLOSE: u32 = 31;
}

pub const SPEC: Spec = Spec {
    name: "tls",
    needs: &{
        use super::kernel::Feature::*;
        [TaskBtf, ForEachMapElem, TaskPtRegs, AttachCookie, FindVma]
    },
    // Every exec maps its libraries (~5-20 lib_load records of ~150 bytes with their
    // paths): the cgroup family's sizes hold a few hundred execs between drains.
    ring_size: 128 * KIB,
    ring_min: 64 * KIB,
    ring_max: 16 * MIB,
    // lib_load is sent variable-size: costed with a full path, an overestimate.
    // Under a memory budget: as costly as the connection it rides on.
    priority: 4,
    record_size: max(
        size_of::<LibLoadEvent>() + RESOLVED_LEN,
        size_of::<TlsEvent>(),
    ),
    kinds: &[
        (kind::LIB_LOAD, "lib_load"),
        (kind::TLS_HANDSHAKE, "tls_handshake"),
        (kind::TLS_CLOSE, "tls_close"),
    ],
    observe: None,
    own_context: &[],
};

pub const SNI_LEN: usize = 256;
/// `RW_TLS_CAPTURE_MAX`: the most `[tls] capture_bytes` keeps per direction.
pub const CAPTURE_MAX: usize = 256;
pub const LIB_VIA_MMAP: u32 = 1;
pub const LIB_VIA_MPROTECT: u32 = 2;
pub const CALL_DO_HANDSHAKE: u32 = 1;
pub const CALL_IMPLICIT: u32 = 2;
pub const ROLE_UNKNOWN: u32 = 0;
pub const ROLE_CLIENT: u32 = 1;
pub const ROLE_SERVER: u32 = 2;
pub const SNI_NONE: u32 = 0;
pub const SNI_SET: u32 = 1;
pub const SNI_ASKED: u32 = 2;
pub const TLS_SNI_TRUNCATED: u32 = 1;
pub const TLS_HANDSHAKE_DONE: u32 = 2;
pub const TLS_HANDSHAKE_SEEN: u32 = 4;
pub const TLS_REPORTED: u32 = 8;
pub const TLS_SHUTDOWN: u32 = 16;
pub const TLS_BYTES_COUNTED: u32 = 32;
pub const TLS_JOINED: u32 = 64;
pub const TLS_CAPTURED: u32 = 128;
pub const TLS_CAPTURE_CUT_SENT: u32 = 256;
pub const TLS_CAPTURE_CUT_RECV: u32 = 512;
pub const ENDED_SHUTDOWN: u32 = 1;
pub const ENDED_FREE: u32 = 2;
pub const ENDED_EXIT: u32 = 3;
pub const ENDED_EXEC: u32 = 4;

/// The fixed part of a lib_load record; `path_len` bytes of path follow it in the ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LibLoadEvent {
    pub hdr: Header,
    pub addr: u64,
    pub len: u64,
    /// In pages: the daemon's page size makes it bytes (the kernel's, 4 KiB to 64 KiB).
    pub pgoff: u64,
    pub inode: u64,
    pub dev: u32,
    pub via: u32,
    pub path_len: u32,
    /// `RESOLVE_*` (super::path).
    pub path_flags: u32,
    pub path: [u8; 0],
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for LibLoadEvent {}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TlsSession {
    pub ssl: u64,
    pub start_ns: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub reads: u64,
    pub writes: u64,
    pub result: i32,
    pub call: u32,
    pub role: u32,
    pub flags: u32,
    pub sni_from: u32,
    pub sni_len: u32,
    pub cap_sent_len: u32,
    pub cap_recv_len: u32,
    pub cap_sent: [u8; CAPTURE_MAX],
    pub cap_recv: [u8; CAPTURE_MAX],
    pub sni: [u8; SNI_LEN],
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for TlsSession {}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TlsEvent {
    pub hdr: Header,
    pub handshake_ns: u64,
    pub ended: u32,
    pub pad: u32,
    pub s: TlsSession,
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for TlsEvent {}

/// `[tls]` in the configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Probe SSL_read, SSL_write and their `_ex` variants for `tls_close`'s byte counts.
    /// Off by default: every such call of every process then traps into the kernel
    /// (~2 us each on a small VM, whatever the program does; docs/benchmarks.md).
    pub count_bytes: bool,
    /// Keep the first N bytes of plaintext of each direction of each session (0 to
    /// [`CAPTURE_MAX`]; 0: off). Sensitive: passwords, tokens, personal data.
    pub capture_bytes: u32,
}

/// `struct tls_settings` (bpf/tls.h): the family's settings map's one value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelSettings {
    pub capture_bytes: u32,
    pub pad: u32,
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for KernelSettings {}

/// The map the programs read [`KernelSettings`] from.
pub const SETTINGS_MAP: &str = "tls_settings";

/// The programs that count a session's bytes (bpf/tls.bpf.c, `TLS_IO`).
const IO_PROGRAMS: [&str; 4] = [
    "tls_io_enter_multi",
    "tls_io_return_multi",
    "tls_io_enter_one",
    "tls_io_return_one",
];

impl TlsSettings {
    /// The family's programs these settings leave out, each with why.
    pub fn programs_off(&self) -> Vec<(&'static str, String)> {
        if self.count_bytes || self.capture_bytes > 0 {
            return Vec::new();
        }
        IO_PROGRAMS
            .iter()
            .map(|&p| {
                (
                    p,
                    "off: [tls] count_bytes = false and capture_bytes = 0".to_string(),
                )
            })
            .collect()
    }

    /// What the loader writes into the family's maps (name, value of key 0).
    pub fn map_values(&self) -> Vec<(&'static str, Vec<u8>)> {
        let k = KernelSettings {
            capture_bytes: self.capture_bytes,
            pad: 0,
        };
        // SAFETY: KernelSettings is repr(C) plain data.
        vec![(SETTINGS_MAP, unsafe { plain::as_bytes(&k) }.to_vec())]
    }
}

/// The crypto library a mapped file is, by its file name (`libssl.so.3`: OpenSSL;
/// `libssl3.so` is NSS's).
pub fn crypto_library(path: &[u8]) -> Option<&'static str> {
    let name = path.rsplit(|&c| c == b'/').next().unwrap_or(path);
    const LIBS: &[(&[u8], &str)] = &[
        (b"libssl.so", "openssl"),
        (b"libcrypto.so", "openssl"),
        (b"libgnutls.so", "gnutls"),
        (b"libssl3.so", "nss"),
        (b"libnss3.so", "nss"),
        (b"libboringssl", "boringssl"),
        (b"libsodium.so", "libsodium"),
        (b"libmbedtls.so", "mbedtls"),
        (b"libmbedcrypto.so", "mbedtls"),
        (b"libmbedx509.so", "mbedtls"),
    ];
    LIBS.iter().find_map(|(prefix, lib)| {
        let rest = name.strip_prefix(*prefix)?;
        // The name itself or a version after it (`.3`, `.1.1`), not `libssl.so.3-foo`.
        let version = rest.first() == Some(&b'.')
            && rest[1..].iter().all(|c| c.is_ascii_digit() || *c == b'.');
        (rest.is_empty() || version || *prefix == b"libboringssl").then_some(*lib)
    })
}

/// The mapped file after the fixed part: `path_len` bytes, clamped to the record.
pub fn lib_path<'a>(e: &LibLoadEvent, data: &'a [u8]) -> &'a [u8] {
    prefix(
        data.get(size_of::<LibLoadEvent>()..).unwrap_or(&[]),
        e.path_len,
    )
}

fn call_name(call: u32) -> &'static str {
    match call {
        CALL_DO_HANDSHAKE => "SSL_do_handshake",
        CALL_IMPLICIT => "implicit",
        _ => "none",
    }
}

fn role_name(role: u32) -> &'static str {
    match role {
        ROLE_CLIENT => "client",
        ROLE_SERVER => "server",
        _ => "unknown",
    }
}

fn sni(s: &TlsSession) -> &[u8] {
    prefix(&s.sni, s.sni_len)
}

pub fn render(k: u32, data: &[u8], line: &mut impl Fields) -> Result<(), DecodeError> {
    if k == kind::LIB_LOAD {
        let e: &LibLoadEvent = view(data, k)?;
        let p = lib_path(e, data);
        path::render(
            line,
            [
                "path",
                "path_truncated",
                "path_deleted",
                "path_pseudo",
                "path_outside_root",
            ],
            p,
            e.path_flags,
        );
        if let Some(lib) = crypto_library(p) {
            line.str("crypto", lib);
        }
        line.str(
            "via",
            if e.via == LIB_VIA_MPROTECT {
                "mprotect"
            } else {
                "mmap"
            },
        );
        line.u64("addr", e.addr);
        line.u64("len", e.len);
        line.u64("offset", e.pgoff.saturating_mul(crate::sys::page_size()));
        line.u64("inode", e.inode);
        // The kernel's dev_t: major in the high 12 bits, minor in the low 20.
        line.display("dev", format_args!("{}:{}", e.dev >> 20, e.dev & 0xf_ffff));
        return Ok(());
    }
    let e: &TlsEvent = view(data, k)?;
    let s = &e.s;
    line.u64("ssl", s.ssl);
    line.str("role", role_name(s.role));
    if s.sni_from != SNI_NONE {
        line.bytes("sni", sni(s));
        line.bool("sni_truncated", s.flags & TLS_SNI_TRUNCATED != 0);
        line.str("sni_from", if s.sni_from == SNI_ASKED { "asked" } else { "set" });
    }
    if s.flags & TLS_HANDSHAKE_SEEN != 0 {
        line.str("handshake_call", call_name(s.call));
        line.i64("handshake_result", s.result.into());
        line.bool("handshake_done", s.flags & TLS_HANDSHAKE_DONE != 0);
    }
    if k == kind::TLS_HANDSHAKE {
        line.u64("handshake_ns", e.handshake_ns);
        return Ok(());
    }
    if s.flags & TLS_JOINED != 0 {
        line.bool("joined", true);
    }
    if s.flags & TLS_CAPTURED != 0 {
        line.bytes("captured_sent", prefix(&s.cap_sent, s.cap_sent_len));
        line.bytes("captured_received", prefix(&s.cap_recv, s.cap_recv_len));
        // A buffer the kernel could not read stopped that direction's capture early.
        for (bit, k) in [
            (TLS_CAPTURE_CUT_SENT, "captured_sent_cut"),
            (TLS_CAPTURE_CUT_RECV, "captured_received_cut"),
        ] {
            if s.flags & bit != 0 {
                line.bool(k, true);
            }
        }
    }
    line.str(
        "ended",
        match e.ended {
            ENDED_SHUTDOWN => "shutdown",
            ENDED_EXIT => "exit",
            ENDED_EXEC => "exec",
            _ => "free",
        },
    );
    // Only when its reads and writes were watched: a 0 would otherwise say "none".
    if s.flags & TLS_BYTES_COUNTED != 0 {
        line.u64("bytes_read", s.bytes_read);
        line.u64("bytes_written", s.bytes_written);
        line.u64("reads", s.reads);
        line.u64("writes", s.writes);
    }
    Ok(())
}

/// The journal's one-line summary (see `super::summary`).
pub fn summary(h: &Header, data: &[u8], b: &mut Vec<u8>) -> Result<u8, DecodeError> {
    let k = h.kind;
    if k == kind::LIB_LOAD {
        let e: &LibLoadEvent = view(data, k)?;
        let p = lib_path(e, data);
        quoted(b, p);
        if let Some(lib) = crypto_library(p) {
            let _ = write!(b, " ({lib})");
        }
        if e.via == LIB_VIA_MPROTECT {
            b.extend_from_slice(b" via mprotect");
        }
        by(b, h);
        return Ok(if e.via == LIB_VIA_MPROTECT {
            PRIO_NOTICE
        } else {
            PRIO_INFO
        });
    }
    let e: &TlsEvent = view(data, k)?;
    let s = &e.s;
    b.extend_from_slice(role_name(s.role).as_bytes());
    if s.sni_from != SNI_NONE {
        b.extend_from_slice(b" sni=");
        quoted(b, sni(s));
    }
    if k == kind::TLS_HANDSHAKE {
        if s.flags & TLS_HANDSHAKE_DONE == 0 {
            let _ = write!(b, " failed: result {}", s.result);
        }
    } else if s.flags & TLS_BYTES_COUNTED != 0 {
        let _ = write!(b, " read={} written={}", s.bytes_read, s.bytes_written);
    }
    by(b, h);
    Ok(PRIO_INFO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::Family;

    #[test]
    fn crypto_libraries_by_file_name() {
        for (p, want) in [
            (&b"/usr/lib/x86_64-linux-gnu/libssl.so.3"[..], Some("openssl")),
            (b"/usr/lib/libcrypto.so.1.1", Some("openssl")),
            (b"/lib/x86_64-linux-gnu/libssl3.so", Some("nss")),
            (b"/lib/libgnutls.so.30", Some("gnutls")),
            (b"/lib/libsodium.so.23", Some("libsodium")),
            (b"/lib/libmbedtls.so.14", Some("mbedtls")),
            (b"/opt/libboringssl.so", Some("boringssl")),
            (b"/lib/libssl.so.3-evil", None),
            (b"/lib/libc.so.6", None),
            (b"libssl.so", Some("openssl")),
        ] {
            assert_eq!(crypto_library(p), want, "{}", String::from_utf8_lossy(p));
        }
    }

    #[test]
    fn the_read_and_write_probes_run_for_counts_or_captures() {
        let off = |count_bytes, capture_bytes| {
            TlsSettings {
                count_bytes,
                capture_bytes,
            }
            .programs_off()
            .len()
        };
        assert_eq!(off(false, 0), IO_PROGRAMS.len());
        assert_eq!((off(true, 0), off(false, 1), off(true, 256)), (0, 0, 0));
        let v = TlsSettings {
            count_bytes: false,
            capture_bytes: 40,
        }
        .map_values();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, SETTINGS_MAP);
        assert_eq!(v[0].1[..4], 40u32.to_ne_bytes());
    }

    #[test]
    fn mirrors_match_c() {
        use crate::assert_layout;
        let f = Family::Tls;
        assert_layout!(
            f,
            "lib_load_event",
            LibLoadEvent,
            [hdr, addr, len, pgoff, inode, dev, via, path_len, path_flags, path]
        );
        assert_layout!(
            f,
            "tls_session",
            TlsSession,
            [
                ssl,
                start_ns,
                bytes_read,
                bytes_written,
                reads,
                writes,
                result,
                call,
                role,
                flags,
                sni_from,
                sni_len,
                cap_sent_len,
                cap_recv_len,
                cap_sent,
                cap_recv,
                sni
            ]
        );
        assert_layout!(f, "tls_event", TlsEvent, [hdr, handshake_ns, ended, pad, s]);
        assert_layout!(f, "tls_settings", KernelSettings, [capture_bytes, pad]);
    }

    #[test]
    fn constants_match_c() {
        use crate::assert_enum;
        let f = Family::Tls;
        assert_enum!(
            f,
            "rw_tls_type",
            [
                RW_LIB_LOAD = kind::LIB_LOAD,
                RW_TLS_HANDSHAKE = kind::TLS_HANDSHAKE,
                RW_TLS_CLOSE = kind::TLS_CLOSE,
            ]
        );
        assert_enum!(
            f,
            "rw_lib_via",
            [
                RW_LIB_VIA_MMAP = LIB_VIA_MMAP,
                RW_LIB_VIA_MPROTECT = LIB_VIA_MPROTECT
            ]
        );
        assert_enum!(
            f,
            "rw_tls_call",
            [
                RW_TLS_CALL_DO_HANDSHAKE = CALL_DO_HANDSHAKE,
                RW_TLS_CALL_IMPLICIT = CALL_IMPLICIT,
            ]
        );
        assert_enum!(
            f,
            "rw_tls_role",
            [
                RW_TLS_ROLE_UNKNOWN = ROLE_UNKNOWN,
                RW_TLS_ROLE_CLIENT = ROLE_CLIENT,
                RW_TLS_ROLE_SERVER = ROLE_SERVER,
            ]
        );
        assert_enum!(
            f,
            "rw_tls_sni_from",
            [
                RW_TLS_SNI_NONE = SNI_NONE,
                RW_TLS_SNI_SET = SNI_SET,
                RW_TLS_SNI_ASKED = SNI_ASKED,
            ]
        );
        assert_enum!(
            f,
            "rw_tls_flags",
            [
                RW_TLS_SNI_TRUNCATED = TLS_SNI_TRUNCATED,
                RW_TLS_HANDSHAKE_DONE = TLS_HANDSHAKE_DONE,
                RW_TLS_HANDSHAKE_SEEN = TLS_HANDSHAKE_SEEN,
                RW_TLS_REPORTED = TLS_REPORTED,
                RW_TLS_SHUTDOWN = TLS_SHUTDOWN,
                RW_TLS_BYTES_COUNTED = TLS_BYTES_COUNTED,
                RW_TLS_JOINED = TLS_JOINED,
                RW_TLS_CAPTURED = TLS_CAPTURED,
                RW_TLS_CAPTURE_CUT_SENT = TLS_CAPTURE_CUT_SENT,
                RW_TLS_CAPTURE_CUT_RECV = TLS_CAPTURE_CUT_RECV,
            ]
        );
        assert_enum!(
            f,
            "rw_tls_ended",
            [
                RW_TLS_ENDED_SHUTDOWN = ENDED_SHUTDOWN,
                RW_TLS_ENDED_FREE = ENDED_FREE,
                RW_TLS_ENDED_EXIT = ENDED_EXIT,
                RW_TLS_ENDED_EXEC = ENDED_EXEC,
            ]
        );
    }
}
