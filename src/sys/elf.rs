//! Function offsets in a shared library's dynamic symbol table, for uprobes: where in the
//! file each named function starts (what libbpf computes from a name for a single uprobe;
//! its uprobe_multi name lookup fails here, libbpf-rs 0.27 with libbpf 1.7).

/// The file offsets of `names` in the ELF64 little-endian shared object `b` (its
/// `.dynsym` functions), in the order of `names`; None for a name it does not define.
pub fn function_offsets(b: &[u8], names: &[&str]) -> Vec<Option<u64>> {
    let mut out = vec![None; names.len()];
    let _ = fill(b, names, &mut out);
    out
}

fn fill(b: &[u8], names: &[&str], out: &mut [Option<u64>]) -> Option<()> {
    // Every offset comes from the file: checked, so a malformed one is None, not a panic.
    let at = |o: usize, n: usize| b.get(o..o.checked_add(n)?);
    let u16_at = |o: usize| Some(u16::from_le_bytes(at(o, 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(at(o, 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(at(o, 8)?.try_into().ok()?));
    if b.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let (shentsize, shnum) = (usize::from(u16_at(0x3a)?), usize::from(u16_at(0x3c)?));
    // (type, link, addr, offset, size, entsize) of section i.
    // SHN_ABS, SHN_XINDEX and any index past the table are no section.
    let section = |i: usize| {
        if i >= shnum || shentsize < 0x40 {
            return None;
        }
        let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
        Some((
            u32_at(h.checked_add(4)?)?,
            u32_at(h.checked_add(0x28)?)?,
            u64_at(h.checked_add(0x10)?)?,
            u64_at(h.checked_add(0x18)?)?,
            u64_at(h.checked_add(0x20)?)?,
            u64_at(h.checked_add(0x38)?)?,
        ))
    };
    const SHT_DYNSYM: u32 = 11;
    const STT_FUNC: u8 = 2;
    let (_, link, _, symoff, symsize, entsize) =
        (0..shnum).filter_map(section).find(|s| s.0 == SHT_DYNSYM)?;
    let (_, _, _, stroff, strsize, _) = section(link as usize)?;
    let range = |off: u64, len: u64| {
        let start = usize::try_from(off).ok()?;
        b.get(start..start.checked_add(usize::try_from(len).ok()?)?)
    };
    let strings = range(stroff, strsize)?;
    let entsize = usize::try_from(entsize).ok().filter(|&e| e >= 24)?;
    let syms = range(symoff, symsize)?;
    for sym in syms.chunks_exact(entsize) {
        let name_off = u32::from_le_bytes(sym[0..4].try_into().ok()?) as usize;
        let (info, shndx) = (sym[4], u16::from_le_bytes([sym[6], sym[7]]));
        let value = u64::from_le_bytes(sym[8..16].try_into().ok()?);
        if info & 0xf != STT_FUNC || shndx == 0 {
            continue;
        }
        let Some(name) = strings
            .get(name_off..)
            .and_then(|s| s.split(|&c| c == 0).next())
        else {
            continue;
        };
        let Some(i) = names.iter().position(|n| n.as_bytes() == name) else {
            continue;
        };
        // The section the function is in maps its address to the file offset.
        let Some((_, _, addr, off, _, _)) = section(usize::from(shndx)) else {
            continue;
        };
        out[i] = value.checked_sub(addr).and_then(|d| d.checked_add(off));
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libc_has_its_functions_and_not_others() {
        // Every glibc host has libc.so.6 in its linker cache.
        let files =
            crate::sys::ldcache::find(std::path::Path::new(crate::sys::ldcache::CACHE), "libc.so");
        let Some(libc) = files.first() else {
            return;
        };
        let b = std::fs::read(libc).expect("read libc");
        let got = function_offsets(&b, &["getpid", "no_such_function_here", "write"]);
        assert!(got[0].is_some() && got[2].is_some(), "{got:?}");
        assert_eq!(got[1], None);
        assert_ne!(got[0], got[2]);
    }

    #[test]
    fn not_an_elf_file_has_none() {
        assert_eq!(function_offsets(b"hello", &["x"]), vec![None]);
        assert_eq!(function_offsets(&[], &["x"]), vec![None]);
    }

    #[test]
    fn a_header_with_offsets_past_the_end_has_none_and_no_panic() {
        let mut b = vec![0u8; 64];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        for (at, v) in [(0x28, u64::MAX - 3), (0x28, 1 << 40), (0x28, 64)] {
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
            b[0x3a..0x3c].copy_from_slice(&0x40u16.to_le_bytes());
            b[0x3c..0x3e].copy_from_slice(&0xffffu16.to_le_bytes());
            assert_eq!(function_offsets(&b, &["x"]), vec![None]);
        }
    }
}
