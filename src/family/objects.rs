//! The compiled BPF objects (build.rs: every family's, its 5.10 variant and the filter
//! object's), embedded as one xz stream: their BTF repeats from object to object, which
//! one stream stores once (2.3 MB of objects in ~155 KB; ~450 KB deflated one by one).
//! Decoding the stream takes ~14 ms, so a start holds it decoded ([`hold`]) while it opens
//! its objects, and frees it after.
use std::cell::RefCell;
use std::ops::{Deref, Range};
use std::rc::{Rc, Weak};

use super::loader::Error;

mod index {
    include!(concat!(env!("OUT_DIR"), "/objects.rs"));
}

static STREAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/objects.xz"));

// An Rc of a Vec, not of a slice: a slice would live inside the Rc's own allocation, which
// the Weak below keeps after the last holder is gone; a Vec's buffer goes with the last Rc.
#[allow(clippy::rc_buffer)]
type Decoded = Rc<Vec<u8>>;

thread_local! {
    /// The decoded stream while a [`Held`] or an [`Object`] keeps it.
    static DECODED: RefCell<Weak<Vec<u8>>> = const { RefCell::new(Weak::new()) };
}

/// Keeps the objects decoded until it is dropped: opening several objects then decodes
/// the stream once.
pub struct Held {
    _decoded: Option<Decoded>,
}

/// Decodes the objects now and keeps them while the returned value lives (holds nest). A
/// failure is not reported here: the first object asked for reports it.
pub fn hold() -> Held {
    Held {
        _decoded: decoded().ok(),
    }
}

/// One object's ELF bytes, within the decoded stream (no copy).
pub struct Object {
    all: Decoded,
    at: Range<usize>,
}

impl Deref for Object {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.all[self.at.clone()]
    }
}

/// Whether `name` (a family's, `NAME.510` for its variant, or `filter`) was built.
pub fn has(name: &str) -> bool {
    index::INDEX.iter().any(|(n, _, _)| *n == name)
}

/// The ELF bytes of object `name`.
pub fn get(name: &str) -> Result<Object, Error> {
    let &(_, at, len) = index::INDEX
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| Error::Load(format!("no {name} BPF object in this build")))?;
    let all = decoded()?;
    if all.len() < at + len {
        return Err(Error::Load(format!("the {name} BPF object is cut short")));
    }
    Ok(Object {
        all,
        at: at..at + len,
    })
}

/// The decoded stream: the held one, or decoded now.
fn decoded() -> Result<Decoded, Error> {
    if let Some(held) = DECODED.with(|d| d.borrow().upgrade()) {
        return Ok(held);
    }
    let total = index::INDEX.iter().map(|(_, at, len)| at + len).max();
    let mut out = Vec::with_capacity(total.unwrap_or(0));
    lzma_rs::xz_decompress(&mut &STREAM[..], &mut out)
        .map_err(|e| Error::Load(format!("decoding the embedded BPF objects: {e}")))?;
    if Some(out.len()) != total {
        return Err(Error::Load(format!(
            "the embedded BPF objects decode to {} bytes, not {}",
            out.len(),
            total.unwrap_or(0)
        )));
    }
    let out = Rc::new(out);
    DECODED.with(|d| *d.borrow_mut() = Rc::downgrade(&out));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_decodes_as_elf_and_a_hold_decodes_once() {
        let held = hold();
        let first = decoded().expect("decodes");
        assert!(Rc::ptr_eq(&first, &decoded().expect("held")));
        for (name, _, len) in index::INDEX {
            let elf = get(name).expect("an object");
            assert_eq!(elf.len(), *len);
            assert_eq!(&elf[..4], b"\x7fELF", "{name}");
        }
        // The Vec goes with its last strong reference (the Weak keeps only the Rc's box).
        let weak = Rc::downgrade(&first);
        drop((held, first));
        assert!(weak.upgrade().is_none(), "freed with the last holder");
        assert!(has("filter") && has("file") && has("file.510"));
        assert!(!has("tls.510") && !has("filter.510"), "no variant built");
        assert!(get("nothing").is_err());
    }
}
