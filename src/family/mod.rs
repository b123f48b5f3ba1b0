//! The event families. A family is `bpf/NAME.bpf.c` + `bpf/NAME.h` and one module here
//! that states everything about it: its [`Spec`] (name, ring sizes, record types), its
//! records, how they render (the field walk every output shares) and the one-line summary
//! journald shows. Its BPF object is `objects::get(NAME)`, and `NAME.510` its 5.10 variant
//! unless the source defines `RW_NO_VARIANT_510` (build.rs). [`registry!`] below is the one list of families:
//! nothing else names a family or counts them.
pub mod filter;
pub mod kernel;
pub mod loader;
pub mod objects;
pub mod path;
pub mod record;
pub mod summary;
pub mod syscalls;

use std::fmt;

pub use loader::{
    Counters, Error, LoadOptions, Loaded, ProgramStatus, Shared, Tamper, create_ring,
};
pub use record::{DecodeError, Fields, Header};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// What a family declares about itself.
#[derive(Debug)]
pub struct Spec {
    /// In the config (`families = [...]`, `[rings.NAME]`), logs, metrics labels, the
    /// JSON `ring` field and the BPF map names (`NAME_ring`, `NAME_stats` ...).
    pub name: &'static str,
    /// Ring size at start: small-host friendly; each ring costs about twice its size
    /// in RSS because the kernel maps its data pages twice.
    pub ring_size: u64,
    /// The bounds a resize stays within unless the configuration says otherwise: the
    /// sizing spec's per-family bounds (appendix B.2).
    pub ring_min: u64,
    pub ring_max: u64,
    /// Bytes of its largest record: what the sizing formula costs one event at (the
    /// BPF side reserves the full struct).
    pub record_size: usize,
    /// Its default `priority` under a memory budget (`[rings.NAME] priority`): a step of
    /// priority makes a lost event ten times costlier (see `sizing::budget`).
    pub priority: u32,
    /// What its programs use beyond 5.10 that no variant replaces (what `check` names
    /// when the family does not load).
    pub needs: &'static [kernel::Feature],
    /// Its record types: the value of the C enum (the header's `type`) and the JSON
    /// `type` name. Values are unique across families (a test checks).
    pub kinds: &'static [(u32, &'static str)],
    /// What a record tells the daemon's context tables (issue 12), if anything.
    pub observe: Option<Observe>,
    /// Record types that carry their process's own context (exe, login uid, session):
    /// the context written after them leaves those fields out.
    pub own_context: &'static [u32],
}

/// Reads a record's news for the context tables.
pub type Observe = for<'a> fn(&'a Header, &'a [u8]) -> Option<Observed<'a>>;

/// A record's news for the context tables.
pub struct Observed<'a> {
    pub change: crate::context::Change<'a>,
    /// The record was sent for the tables only (rejected by the filters and counted so):
    /// it is not written out.
    pub context_only: bool,
}

impl Spec {
    pub fn type_name(&self, kind: u32) -> Option<&'static str> {
        self.kinds.iter().find(|(k, _)| *k == kind).map(|(_, n)| *n)
    }
}

/// `max` in a const context: a family's record size is its largest record's.
pub const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// Declares the families: one line each, `module => Variant`. The module provides
/// `SPEC`, `render` and `summary`.
macro_rules! registry {
    ($($module:ident => $variant:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every family's record types (`family::kind::EXEC` ...), for code that
        /// handles records of any family (tests, benchmarks).
        pub mod kind {
            $(pub use super::$module::kind::*;)*
        }

        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Family {
            $($variant),*
        }

        impl Family {
            /// Every family, in the registry's order (the order of rings in stats).
            pub const ALL: &'static [Family] = &[$(Family::$variant),*];

            pub fn spec(self) -> &'static Spec {
                match self {
                    $(Family::$variant => &$module::SPEC),*
                }
            }

            /// Loads and attaches the family. Programs that fail to load or attach are
            /// reported in `programs` with the reason and skipped; the rest run. Errors
            /// only when nothing of the family could be loaded at all.
            pub fn load(self, opts: &LoadOptions) -> Result<Loaded, Error> {
                loader::load(self, opts)
            }

            /// The family a record type belongs to.
            #[inline]
            pub fn of_kind(kind: u32) -> Option<Family> {
                $(if $module::SPEC.kinds.iter().any(|(k, _)| *k == kind) {
                    return Some(Family::$variant);
                })*
                None
            }

            /// Visits the fields of a record of this family after the header's.
            #[inline(always)]
            pub fn render(
                self,
                kind: u32,
                data: &[u8],
                f: &mut impl Fields,
            ) -> Result<(), DecodeError> {
                match self {
                    $(Family::$variant => $module::render(kind, data, f)),*
                }
            }

            /// Writes the journal summary of a record of this family (after its type
            /// name) and returns its syslog priority.
            pub fn summary(
                self,
                h: &Header,
                data: &[u8],
                b: &mut Vec<u8>,
            ) -> Result<u8, DecodeError> {
                match self {
                    $(Family::$variant => $module::summary(h, data, b)),*
                }
            }
        }
    };
}

registry! {
    process => Process,
    file => File,
    network => Network,
    syscall => Syscall,
    cgroup => Cgroup,
    anomaly => Anomaly,
    tls => Tls,
}

/// What the rings of every family take at start, in all (about twice that in RSS: the
/// kernel maps a ring's pages twice). Pinned on purpose: a new family adds its
/// `ring_size` here, a visible cost on a small host (the config's defaults test holds
/// the default settings to it).
pub const START_TOTAL: u64 = 3584 * KIB;

impl Family {
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn parse(s: &str) -> Option<Family> {
        Family::ALL.iter().copied().find(|f| f.name() == s)
    }

    /// Position in [`Family::ALL`]: for per-family tables.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn default_ring_size(self) -> u64 {
        self.spec().ring_size
    }

    /// Size and member offsets of a struct in the family's BPF object (BTF).
    #[cfg(test)]
    pub fn c_layout(self, name: &str) -> Option<(usize, Vec<(String, usize)>)> {
        loader::c_layout(self, name)
    }

    /// The members of a C enum in the family's BPF object (BTF).
    #[cfg(test)]
    pub fn c_enum(self, name: &str) -> Option<Vec<(String, i64)>> {
        loader::c_enum(self, name)
    }

    /// The JSON `type` of a record type, whichever family it belongs to.
    pub fn type_name(kind: u32) -> Option<&'static str> {
        Family::of_kind(kind).and_then(|f| f.spec().type_name(kind))
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_record_types_are_unique_and_indexes_follow_the_list() {
        for (i, f) in Family::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
            assert_eq!(Family::parse(f.name()), Some(*f));
            let s = f.spec();
            assert!(
                s.ring_min <= s.ring_size && s.ring_size <= s.ring_max,
                "{f}"
            );
            for (k, name) in s.kinds {
                assert_eq!(Family::of_kind(*k), Some(*f), "type {k} ({name})");
                assert_eq!(Family::type_name(*k), Some(*name));
            }
        }
        let total: u64 = Family::ALL.iter().map(|f| f.spec().ring_size).sum();
        assert_eq!(
            total, START_TOTAL,
            "START_TOTAL is the sum of every ring_size"
        );
        let mut names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Family::ALL.len());
    }
}
