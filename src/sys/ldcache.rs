//! The dynamic linker's cache (/etc/ld.so.cache, what `ldconfig -p` prints): where the
//! libraries the host's programs load are, so that uprobes go on the very files they map.
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub const CACHE: &str = "/etc/ld.so.cache";
const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
/// Header: magic, nlibs, len_strings, flags, 3 bytes of padding, extension offset and
/// three unused words. Then nlibs entries of flags, key, value, osversion, hwcap.
const HEADER: usize = MAGIC.len() + 28;
const ENTRY: usize = 24;
/// `FLAG_ELF_LIBC6` in the entry's low byte: a glibc library.
const ELF_LIBC6: u32 = 0x0003;

/// This architecture's `FLAG_*_LIB64` bits (glibc's ldconfig.h): another architecture's
/// library cannot be in this one's processes.
#[cfg(target_arch = "x86_64")]
const ARCH: u32 = 0x0300;
#[cfg(target_arch = "aarch64")]
const ARCH: u32 = 0x0a00;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ARCH: u32 = 0;

/// The files of library `name` (`libssl.so`): every entry named `name` or a version of
/// it (`libssl.so.3`, `libssl.so.1.1`), resolved to the real file, each once, in the
/// cache's order. Empty when the cache has none or cannot be read.
pub fn find(cache: &Path, name: &str) -> Vec<PathBuf> {
    let Ok(b) = std::fs::read(cache) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in entries(&b) {
        let matches = key
            .strip_prefix(name.as_bytes())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"."));
        if !matches {
            continue;
        }
        let path = Path::new(std::ffi::OsStr::from_bytes(value));
        if let Ok(real) = std::fs::canonicalize(path)
            && !out.contains(&real)
        {
            out.push(real);
        }
    }
    out
}

/// The (key, path) pairs of this architecture's glibc libraries in a cache's bytes.
fn entries(b: &[u8]) -> Vec<(&[u8], &[u8])> {
    let Some(base) = b.windows(MAGIC.len()).position(|w| w == MAGIC) else {
        return Vec::new();
    };
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    // Strings are at offsets from the new-format header.
    let string = |off: u32| -> Option<&[u8]> {
        let s = b.get(base + off as usize..)?;
        Some(&s[..s.iter().position(|&c| c == 0)?])
    };
    // No more entries than the bytes hold, whatever the header says.
    let room = b.len().saturating_sub(base + HEADER) / ENTRY;
    let n = (word(base + MAGIC.len()).unwrap_or(0) as usize).min(room);
    (0..n)
        .filter_map(|i| {
            let at = base + HEADER + i * ENTRY;
            let flags = word(at)?;
            if flags & 0xff != ELF_LIBC6 || flags & 0xff00 != ARCH {
                return None;
            }
            Some((string(word(at + 4)?)?, string(word(at + 8)?)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache of two libraries written the way ldconfig writes one.
    fn cache(entries: &[(u32, &str, &str)]) -> Vec<u8> {
        let mut strings = Vec::new();
        let table = HEADER + entries.len() * ENTRY;
        let mut offs = Vec::new();
        for (_, k, v) in entries {
            let ko = table + strings.len();
            strings.extend_from_slice(k.as_bytes());
            strings.push(0);
            let vo = table + strings.len();
            strings.extend_from_slice(v.as_bytes());
            strings.push(0);
            offs.push((ko as u32, vo as u32));
        }
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        b.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        b.resize(HEADER, 0);
        for ((flags, _, _), (ko, vo)) in entries.iter().zip(offs) {
            b.extend_from_slice(&flags.to_le_bytes());
            b.extend_from_slice(&ko.to_le_bytes());
            b.extend_from_slice(&vo.to_le_bytes());
            b.extend_from_slice(&[0; 12]);
        }
        b.extend_from_slice(&strings);
        b
    }

    #[test]
    fn finds_every_version_of_a_library_of_this_architecture() {
        let here = ELF_LIBC6 | ARCH;
        let b = cache(&[
            (here, "libssl3.so", "/lib/libssl3.so"),
            (here, "libssl.so.3", "/lib/libssl.so.3"),
            (here, "libssl.so.1.1", "/lib/libssl.so.1.1"),
            (ELF_LIBC6 | 0x0800, "libssl.so.3", "/lib32/libssl.so.3"),
            (here, "libssl.so", "/lib/libssl.so"),
        ]);
        let keys: Vec<&[u8]> = entries(&b)
            .into_iter()
            .filter(|(k, _)| k.starts_with(b"libssl.so"))
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            keys,
            [
                &b"/lib/libssl.so.3"[..],
                b"/lib/libssl.so.1.1",
                b"/lib/libssl.so"
            ]
        );
    }

    #[test]
    fn a_bad_cache_has_no_entries() {
        assert!(entries(b"").is_empty());
        assert!(entries(b"glibc-ld.so.cache1.1\xff\xff\xff\xff").is_empty());
        let mut b = cache(&[(ELF_LIBC6 | ARCH, "libssl.so.3", "/lib/libssl.so.3")]);
        b.truncate(b.len() - 5);
        assert!(entries(&b).is_empty());
    }
}
