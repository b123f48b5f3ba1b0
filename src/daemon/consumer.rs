//! A ring's reader: the BPF ring buffer's pages mapped as libbpf maps them, with one
//! difference that matters for the producers. libbpf publishes the consumer position
//! after every record; every producer reads that position in each reserve (and ours
//! again for the ring's fill), so during a drain each record cost the producer a cache
//! line fetched from the reader's CPU. This reader publishes it once per
//! [`Consumer::publish_bytes`] and whenever a consumption ends.

use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering, fence};

use libbpf_rs::MapHandle;

/// The kernel's record header flags (include/uapi/linux/bpf.h).
const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HDR_SZ: usize = 8;

/// What a record is handed to: like libbpf's callback, a negative return stops the
/// consumption after this record (the position is past it).
pub type Callback = Box<dyn Fn(&[u8]) -> i32>;

/// What one consumption did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumed {
    /// Records handed to the callback (one that stopped it included).
    pub taken: usize,
    /// A callback returned negative, or a header was not one the kernel writes: the
    /// consumption ended there, not at the ring's end or the budget.
    pub stopped: bool,
}

/// One ring's reader (see the module doc). Not `Send`: the loop's thread owns it.
pub struct Consumer {
    /// The consumer page (read-write, ours to advance).
    cons: NonNull<libc::c_void>,
    /// The producer page, followed by the data pages mapped twice, so that a record
    /// that wraps is contiguous.
    prod: NonNull<libc::c_void>,
    page: usize,
    mask: usize,
    /// Bytes read and not yet published that make a publication due.
    publish_bytes: usize,
    callback: Callback,
}

impl Consumer {
    /// Maps ring `map` of `size` bytes (a power of two, as the kernel requires).
    pub fn new(map: &MapHandle, size: u64, callback: Callback) -> std::io::Result<Consumer> {
        let fd = map.as_fd().as_raw_fd();
        let page = usize::try_from(crate::sys::page_size()).map_err(std::io::Error::other)?;
        let size = usize::try_from(size)
            .ok()
            .filter(|s| s.is_power_of_two())
            .ok_or_else(|| std::io::Error::other("ring size is not a power of two"))?;
        let prod_len = size
            .checked_mul(2)
            .and_then(|d| d.checked_add(page))
            .ok_or_else(|| std::io::Error::other("ring too large to map"))?;
        let cons = map_pages(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let prod = match map_pages(fd, prod_len, libc::PROT_READ, page) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: `cons` was mapped just above with this length.
                unsafe { libc::munmap(cons.as_ptr(), page) };
                return Err(e);
            }
        };
        Ok(Consumer {
            cons,
            prod,
            page,
            mask: size - 1,
            // A 32nd of the ring, at most 64 KiB: a producer sees the ring at most that
            // much fuller than it is (its fill marks, and a reserve refused in the last
            // sliver), and fetches the line once per ~500 records of 128 bytes.
            publish_bytes: (size / 32).clamp(HDR_SZ, 64 << 10),
            callback,
        })
    }

    /// Bytes consumed since the ring was made (records with their headers): with the
    /// records received, what one takes in this ring on average.
    pub fn position(&self) -> u64 {
        self.consumer_pos().load(Ordering::Relaxed) as u64
    }

    fn consumer_pos(&self) -> &AtomicUsize {
        // SAFETY: the page is mapped for as long as `self` lives; the kernel keeps the
        // consumer position (an unsigned long) at its start, aligned.
        unsafe { self.cons.cast::<AtomicUsize>().as_ref() }
    }

    fn producer_pos(&self) -> &AtomicUsize {
        // SAFETY: as `consumer_pos`, on the producer page.
        unsafe { self.prod.cast::<AtomicUsize>().as_ref() }
    }

    /// The length of the producer page and the data pages mapped twice.
    fn prod_len(&self) -> usize {
        self.page + 2 * (self.mask + 1)
    }

    /// The producer position. The kernel moves it at reservation, so every record
    /// reserved before this lies below it, committed or not.
    pub fn producer(&self) -> u64 {
        self.producer_pos().load(Ordering::Acquire) as u64
    }

    /// Whether the ring holds records not yet read, or reserved and not committed.
    pub fn pending(&self) -> bool {
        self.consumer_pos().load(Ordering::Acquire) != self.producer_pos().load(Ordering::Acquire)
    }

    /// Whether the consumer (as published) is at or past `target`, a position from
    /// [`Consumer::producer`]. Compared in the positions' own width, where they
    /// wrap: on a 32-bit host after 4 GiB of records.
    pub fn reached(&self, target: u64) -> bool {
        at_or_past(self.consumer_pos().load(Ordering::Acquire), target as usize)
    }

    /// Hands up to `n` committed records to the callback, in order. Stops at a record
    /// reserved and not yet committed, or after one whose callback returned negative.
    pub fn consume_n(&self, n: usize) -> Consumed {
        let published = self.consumer_pos();
        let mut cons = published.load(Ordering::Relaxed);
        let mut unpublished = 0usize;
        let mut taken = 0usize;
        let data = self.prod.as_ptr().cast::<u8>().wrapping_add(self.page);
        let stopped = 'outer: loop {
            let prod = self.producer_pos().load(Ordering::Acquire);
            if cons == prod && unpublished > 0 {
                // Published before the ring is called empty, then the producer read
                // again: a record reserved after that read finds its own position at its
                // commit and wakes the reader; one committed before it is read here.
                // (Published only at the return, such a record could send no wake-up and
                // wait for the next tick: a catch-up drains once.)
                published.store(cons, Ordering::Release);
                unpublished = 0;
                fence(Ordering::SeqCst);
                continue;
            }
            if cons == prod || taken >= n {
                break 'outer false;
            }
            while cons != prod {
                let at = cons & self.mask;
                // SAFETY: `at` + 8 is within the first copy of the data pages, mapped
                // for `self`'s life; the header is 8-aligned (records are).
                let hdr = unsafe { &*data.add(at).cast::<AtomicU32>() };
                let len = hdr.load(Ordering::Acquire);
                if len & BUSY_BIT != 0 {
                    break 'outer false;
                }
                let body = (len & !(BUSY_BIT | DISCARD_BIT)) as usize;
                if body > self.mask + 1 - HDR_SZ {
                    // Not a record the kernel can write: stop rather than read past
                    // the mapping.
                    break 'outer true;
                }
                let step = (body + HDR_SZ + 7) & !7;
                cons = cons.wrapping_add(step);
                unpublished += step;
                if len & DISCARD_BIT == 0 {
                    // SAFETY: the record lies within the two copies of the data pages
                    // (`body` checked above); the kernel does not write a committed
                    // record until the consumer position passes it.
                    let rec = unsafe { std::slice::from_raw_parts(data.add(at + HDR_SZ), body) };
                    taken += 1;
                    if (self.callback)(rec) < 0 {
                        break 'outer true;
                    }
                }
                if unpublished >= self.publish_bytes {
                    published.store(cons, Ordering::Release);
                    unpublished = 0;
                }
                if taken >= n {
                    break 'outer false;
                }
            }
        };
        published.store(cons, Ordering::Release);
        Consumed { taken, stopped }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // SAFETY: both were mapped in `new` with these lengths and are not used after.
        unsafe {
            libc::munmap(self.cons.as_ptr(), self.page);
            libc::munmap(self.prod.as_ptr(), self.prod_len());
        }
    }
}

/// Whether ring position `pos` is at or past `target`, both taken within half the
/// positions' range of each other (a ring is far smaller).
fn at_or_past(pos: usize, target: usize) -> bool {
    (pos.wrapping_sub(target) as isize) >= 0
}

fn map_pages(
    fd: i32,
    len: usize,
    prot: libc::c_int,
    offset: usize,
) -> std::io::Result<NonNull<libc::c_void>> {
    let offset = libc::off_t::try_from(offset).map_err(std::io::Error::other)?;
    // SAFETY: a fresh shared mapping of the ring's fd; nothing else is touched.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd,
            offset,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    NonNull::new(p).ok_or_else(|| std::io::Error::other("mmap gave null"))
}

#[cfg(test)]
mod tests {
    use super::at_or_past;

    #[test]
    fn positions_compare_across_the_wrap() {
        assert!(at_or_past(10, 10));
        assert!(at_or_past(11, 10));
        assert!(!at_or_past(9, 10));
        // The producer was read just before the positions wrapped, the consumer after.
        assert!(at_or_past(8, usize::MAX - 7));
        assert!(!at_or_past(usize::MAX - 8, usize::MAX - 7));
        assert!(!at_or_past(usize::MAX - 7, 8));
    }
}
