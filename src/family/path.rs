//! Paths named from the kernel's own objects (bpf/path.h): the file family's
//! resolved_path and the process family's exe.
use super::record::Fields;

/// `RW_RESOLVED_LEN`: room for a resolved path (PATH_MAX); a longer one keeps its end.
pub const RESOLVED_LEN: usize = 4096;

/// `enum rw_resolve_flags`.
pub const RESOLVE_TRUNCATED: u32 = 1;
pub const RESOLVE_DELETED: u32 = 2;
pub const RESOLVE_PSEUDO: u32 = 4;
pub const RESOLVE_OUTSIDE_ROOT: u32 = 8;

/// Writes `path` as `key` with its flags as `key_truncated` (always) and `key_deleted`,
/// `key_pseudo`, `key_outside_root` (when set): the fields' names are `names`, in that
/// order.
pub fn render(line: &mut impl Fields, names: [&str; 5], path: &[u8], flags: u32) {
    line.bytes(names[0], path);
    line.bool(names[1], flags & RESOLVE_TRUNCATED != 0);
    for (bit, k) in [
        (RESOLVE_DELETED, names[2]),
        (RESOLVE_PSEUDO, names[3]),
        (RESOLVE_OUTSIDE_ROOT, names[4]),
    ] {
        if flags & bit != 0 {
            line.bool(k, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::Family;

    #[test]
    fn constants_match_c() {
        use crate::assert_enum;
        for f in [Family::File, Family::Process] {
            assert_enum!(
                f,
                "rw_resolve_flags",
                [
                    RW_RESOLVE_TRUNCATED = RESOLVE_TRUNCATED,
                    RW_RESOLVE_DELETED = RESOLVE_DELETED,
                    RW_RESOLVE_PSEUDO = RESOLVE_PSEUDO,
                    RW_RESOLVE_OUTSIDE_ROOT = RESOLVE_OUTSIDE_ROOT,
                ]
            );
        }
    }
}
