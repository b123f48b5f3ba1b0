//! When a rate limit starts and stops refusing events, from the kernel's per-bucket counts
//! of refusals read every tick: a bucket whose count grew starts an episode (a `throttle`
//! start record), one whose count then stays still for a whole tick ends it (a stop record
//! with what it refused in between). At shutdown every episode still going is ended.
use std::collections::HashMap;

use crate::family::Family;
use crate::family::filter::Bucket;
use crate::output::Throttle;

#[derive(Clone, Copy, Debug)]
struct State {
    /// The bucket's count of refusals at the last tick.
    seen: u64,
    /// The count when the episode going on began (`None`: no episode).
    began_at: Option<u64>,
    since_ns: u64,
}

#[derive(Debug, Default)]
pub struct Tracker {
    buckets: HashMap<(Family, Option<u32>), State>,
}

impl Tracker {
    /// One tick's counts (buckets that never refused are absent): the records to raise.
    pub fn tick(&mut self, now: &[Bucket]) -> Vec<Throttle> {
        let mut out = Vec::new();
        for b in now {
            let st = self.buckets.entry((b.family, b.uid)).or_insert(State {
                seen: 0,
                began_at: None,
                since_ns: 0,
            });
            if b.suppressed > st.seen {
                if st.began_at.is_none() {
                    st.began_at = Some(st.seen);
                    st.since_ns = b.since_ns;
                    out.push(Throttle {
                        ring: b.family.name(),
                        start: true,
                        uid: b.uid,
                        suppressed: b.suppressed - st.seen,
                        since_ns: b.since_ns,
                    });
                }
                st.seen = b.suppressed;
            } else if let Some(began) = st.began_at.take() {
                out.push(Throttle {
                    ring: b.family.name(),
                    start: false,
                    uid: b.uid,
                    suppressed: st.seen - began,
                    since_ns: st.since_ns,
                });
            }
        }
        out
    }

    /// At shutdown, after a last [`Tracker::tick`]: a stop for every episode going on.
    pub fn finish(&mut self) -> Vec<Throttle> {
        let mut out: Vec<Throttle> = self
            .buckets
            .iter_mut()
            .filter_map(|(&(family, uid), st)| {
                st.began_at.take().map(|began| Throttle {
                    ring: family.name(),
                    start: false,
                    uid,
                    suppressed: st.seen - began,
                    since_ns: st.since_ns,
                })
            })
            .collect();
        out.sort_by_key(|t| (t.ring, t.uid));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(suppressed: u64) -> Bucket {
        Bucket {
            family: Family::File,
            uid: Some(1000),
            suppressed,
            since_ns: 5,
        }
    }

    #[test]
    fn one_episode_is_one_start_and_one_stop_with_its_count() {
        let mut t = Tracker::default();
        let r = t.tick(&[b(10)]);
        assert_eq!(r.len(), 1);
        assert!(r[0].start);
        assert_eq!(r[0].suppressed, 10);
        // Still refusing: nothing new.
        assert!(t.tick(&[b(25)]).is_empty());
        let r = t.tick(&[b(25)]);
        assert_eq!(r.len(), 1);
        assert!(!r[0].start);
        assert_eq!(r[0].suppressed, 25);
        assert!(t.tick(&[b(25)]).is_empty());
        // A second episode counts from where the first ended.
        assert!(t.tick(&[b(30)])[0].start);
        assert!(t.finish().iter().all(|x| !x.start && x.suppressed == 5));
        assert!(t.finish().is_empty());
    }
}
