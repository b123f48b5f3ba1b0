//! The compiled BPF objects (build.rs: every family's, its 5.10 variant and the filter
//! object's), embedded as one xz stream: their BTF repeats from object to object, which
//! one stream stores once (2.3 MB of objects in ~155 KB; ~450 KB deflated one by one).
//! Decoding the stream takes ~20 ms, so a start holds it decoded ([`hold`]) while it opens
//! its objects, and frees it after.
use std::cell::RefCell;
use std::rc::{Rc, Weak};

use super::loader::Error;

mod index {
    include!(concat!(env!("OUT_DIR"), "/objects.rs"));
}

static STREAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/objects.xz"));

thread_local! {
    /// The decoded stream while a [`Held`] keeps it.
    static DECODED: RefCell<Option<Weak<[u8]>>> = const { RefCell::new(None) };
}

/// Keeps the objects decoded until it is dropped: opening several objects then decodes
/// the stream once.
pub struct Held {
    _decoded: Option<Rc<[u8]>>,
}

/// Decodes the objects now and keeps them while the returned value lives. A failure is
/// not reported here: the first object asked for reports it.
pub fn hold() -> Held {
    Held {
        _decoded: decoded().ok(),
    }
}

/// Whether `name` (a family's, `NAME.510` for its variant, or `filter`) was built.
pub fn has(name: &str) -> bool {
    index::INDEX.iter().any(|(n, _, _)| *n == name)
}

/// The ELF bytes of object `name`.
pub fn get(name: &str) -> Result<Vec<u8>, Error> {
    let &(_, at, len) = index::INDEX
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| Error::Load(format!("no {name} BPF object in this build")))?;
    let all = decoded()?;
    all.get(at..at + len)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| Error::Load(format!("the {name} BPF object is cut short")))
}

/// The decoded stream: the held one, or decoded now.
fn decoded() -> Result<Rc<[u8]>, Error> {
    if let Some(held) = DECODED.with(|d| d.borrow().as_ref().and_then(Weak::upgrade)) {
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
    let out: Rc<[u8]> = Rc::from(out);
    DECODED.with(|d| *d.borrow_mut() = Some(Rc::downgrade(&out)));
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
        drop((held, first));
        assert!(
            DECODED
                .with(|d| d.borrow().as_ref().and_then(Weak::upgrade))
                .is_none(),
            "freed"
        );
        assert!(has("filter") && has("file") && has("file.510"));
        assert!(!has("tls.510") && !has("filter.510"), "no variant built");
        assert!(get("nothing").is_err());
    }
}
