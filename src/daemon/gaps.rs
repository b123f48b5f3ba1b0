//! Which sequence numbers of one ring have not arrived, and when a missing one is known
//! to be lost (a drop) rather than late.
//!
//! Every reserve attempt takes `seq = produced++` in the kernel, and a failed reserve is
//! counted as dropped, so the seqs that never arrive are exactly the drops. They do not
//! arrive in order: with several CPUs one producer can take seq 5, another seq 6 and
//! reserve first. A producer holds its seq only for one program run (microseconds), so:
//! a missing seq is declared lost once it is still missing one whole tick after the tick
//! at which it was known to be taken, because a later seq had been received or the
//! kernel's `produced` had passed it ([`Gaps::tick`], [`Gaps::due`]: the latter covers
//! drops at the end of a burst, after which nothing may come for a long time); and at
//! shutdown, once the programs are stopped and the ring drained, every seq below
//! `produced` not received is ([`Gaps::finish`]).
//!
//! The state is the holes, not the seqs received: `high` (one past the highest seq
//! received) and the missing ranges below it. An in-order record costs one compare and
//! one increment; memory grows with the number of distinct holes, not with how far
//! apart they are (a hole a tick old under 1.6 M records/s is still one entry). Holes
//! are capped at [`MAX_HOLES`]: past that the oldest is declared lost at once. That is
//! exact unless a producer holds its seq while 65 536 later holes open behind it (each
//! needs a later record received: tens of ms at the fastest drain, against the
//! microseconds a program runs); a record that arrives after all is counted as a
//! [`Gaps::strays`] and logged, never hidden.
use std::collections::VecDeque;

/// Holes kept per ring before the oldest is declared lost without waiting (16 bytes
/// each: 1 MiB).
pub const MAX_HOLES: usize = 1 << 16;

/// A settle that waits for the ring to be drained past what it held when it was due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Due {
    /// Seqs below this were taken before the last tick.
    below: u64,
    /// `received` at which a ring's worth of records has been consumed since.
    received_at_least: u64,
}

#[derive(Debug, Default)]
pub struct Gaps {
    /// One past the highest seq received (or accounted for by [`Gaps::finish`]).
    high: u64,
    /// Missing seqs below `high`: inclusive ranges, ascending, disjoint.
    holes: VecDeque<(u64, u64)>,
    /// At the last tick that started a settle: `high`, or `produced` if that was more.
    mark: u64,
    due: Option<Due>,
    strays: u64,
}

impl Gaps {
    /// One record's seq. Returns a range declared lost at once because the holes would
    /// pass [`MAX_HOLES`] (never, in practice: ticks settle them first).
    #[inline(always)]
    pub fn record(&mut self, seq: u64) -> Option<(u64, u64)> {
        if seq == self.high {
            self.high += 1;
            return None;
        }
        self.record_out_of_line(seq)
    }

    #[inline(never)]
    fn record_out_of_line(&mut self, seq: u64) -> Option<(u64, u64)> {
        if seq > self.high {
            self.holes.push_back((self.high, seq - 1));
            self.high = seq + 1;
            if self.holes.len() > MAX_HOLES {
                return self.holes.pop_front();
            }
            return None;
        }
        // A late record fills part of a hole: the first hole that ends at or after it.
        let i = self.holes.partition_point(|&(_, last)| last < seq);
        match self.holes.get_mut(i) {
            Some(h) if h.0 <= seq => {
                let (first, last) = *h;
                if first == last {
                    self.holes.remove(i);
                } else if seq == first {
                    h.0 = seq + 1;
                } else if seq == last {
                    h.1 = seq - 1;
                } else {
                    h.1 = seq - 1;
                    self.holes.insert(i + 1, (seq + 1, last));
                }
            }
            // Received twice, or after it was declared lost.
            _ => self.strays += 1,
        }
        None
    }

    /// At a tick: the seqs missing below the last tick's mark become due, to be declared
    /// lost once the ring has been drained past what it holds now (`received` plus
    /// `ring_records`, the most records the ring can hold, or an empty ring: see
    /// [`Gaps::due`]). The new mark is the highest seq known to be taken by now: the
    /// highest received, or below `produced` (the kernel's counter, read now, if it
    /// could be). A settle still waiting keeps its older mark.
    pub fn tick(&mut self, received: u64, ring_records: u64, produced: Option<u64>) {
        if self.due.is_none() {
            self.due = Some(Due {
                below: self.mark,
                received_at_least: received.saturating_add(ring_records),
            });
            self.mark = self.high.max(produced.unwrap_or(0));
        }
    }

    /// After a drain: if a settle is due and the ring was found empty or a ring's worth
    /// was consumed since the tick, every record committed before the tick has been
    /// read, so the missing seqs below the mark are lost: passed to `lost`, in order.
    pub fn due(&mut self, emptied: bool, received: u64, lost: impl FnMut(u64, u64)) {
        let Some(d) = self.due else {
            return;
        };
        if emptied || received >= d.received_at_least {
            self.due = None;
            self.take_below(d.below, lost);
        }
    }

    /// Once the programs are stopped and the ring drained: every seq below `produced`
    /// (when the counters could be read) not received is lost.
    pub fn finish(&mut self, produced: Option<u64>, lost: impl FnMut(u64, u64)) {
        self.take_below(self.high.max(produced.unwrap_or(0)), lost);
        self.mark = self.high;
        self.due = None;
    }

    /// Declares lost every missing seq below `below`: the holes, and those above the
    /// highest received (taken, as `produced` said, but never seen).
    fn take_below(&mut self, below: u64, mut lost: impl FnMut(u64, u64)) {
        while let Some(h) = self.holes.front_mut() {
            if h.0 >= below {
                break;
            }
            if h.1 < below {
                lost(h.0, h.1);
                self.holes.pop_front();
            } else {
                lost(h.0, below - 1);
                h.0 = below;
                break;
            }
        }
        if below > self.high {
            lost(self.high, below - 1);
            self.high = below;
        }
    }

    /// Records that were neither new nor filling a hole (should stay 0).
    pub fn strays(&self) -> u64 {
        self.strays
    }

    /// Missing seqs not yet declared lost.
    #[cfg(test)]
    fn missing(&self) -> u64 {
        self.holes.iter().map(|&(f, l)| l - f + 1).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(g: &mut Gaps, seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for s in seqs {
            out.extend(g.record(s));
        }
        out
    }

    fn due(g: &mut Gaps, emptied: bool, received: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        g.due(emptied, received, |f, l| out.push((f, l)));
        out
    }

    #[test]
    fn in_order_records_leave_no_holes() {
        let mut g = Gaps::default();
        assert!(run(&mut g, 0..1000).is_empty());
        g.tick(1000, 64, None);
        assert!(due(&mut g, true, 1000).is_empty());
        g.tick(1000, 64, None);
        assert!(due(&mut g, true, 1000).is_empty());
        assert_eq!((g.high, g.missing(), g.strays()), (1000, 0, 0));
    }

    #[test]
    fn late_arrivals_within_a_tick_are_not_lost() {
        let mut g = Gaps::default();
        // 2 and 5..=7 come after later seqs; 3 never comes; 9 comes after a tick.
        run(&mut g, [0, 1, 4, 8, 2, 6, 5, 7, 10]);
        assert_eq!(g.holes, [(3, 3), (9, 9)]);
        // The first tick only marks: nothing is declared before a whole tick passed.
        g.tick(9, 64, None);
        assert!(due(&mut g, true, 9).is_empty());
        run(&mut g, [9, 11]);
        // The next tick settles below the first tick's mark (11): 3 only.
        g.tick(11, 64, None);
        assert_eq!(due(&mut g, true, 11), [(3, 3)]);
        assert_eq!(g.strays(), 0);
        assert_eq!(g.missing(), 0);
    }

    #[test]
    fn a_hole_younger_than_a_tick_waits_for_the_next() {
        let mut g = Gaps::default();
        g.tick(0, 64, None); // mark 0
        assert!(due(&mut g, true, 0).is_empty());
        run(&mut g, [0, 1, 5]); // hole 2..=4 opened after the tick
        g.tick(3, 64, None); // settles below 0; marks 6
        assert!(due(&mut g, true, 3).is_empty());
        run(&mut g, [3]); // late, within the tick
        g.tick(4, 64, None); // settles below 6
        assert_eq!(due(&mut g, true, 4), [(2, 2), (4, 4)]);
    }

    #[test]
    fn a_settle_waits_until_the_ring_was_drained_past_the_tick() {
        let mut g = Gaps::default();
        run(&mut g, [0, 2]);
        g.tick(2, 10, None);
        assert!(due(&mut g, true, 2).is_empty()); // below mark 0: nothing
        g.tick(2, 10, None); // due below 3 once empty or received >= 12
        assert!(due(&mut g, false, 11).is_empty());
        // Still waiting: a tick keeps the older mark.
        run(&mut g, [3, 5]);
        g.tick(13, 10, None);
        assert_eq!(due(&mut g, false, 12), [(1, 1)]);
        // The tick after that settles below the mark that waited (3), then 6.
        g.tick(13, 10, None);
        assert!(due(&mut g, true, 13).is_empty());
        g.tick(13, 10, None);
        assert_eq!(due(&mut g, true, 13), [(4, 4)]);
    }

    #[test]
    fn finish_declares_every_hole_and_what_never_came_above_the_highest() {
        let mut g = Gaps::default();
        run(&mut g, [0]);
        g.tick(1, 64, None);
        due(&mut g, true, 1);
        run(&mut g, [10]); // hole 1..=9
        g.tick(2, 64, None); // marks 11
        due(&mut g, true, 2);
        run(&mut g, [30]); // hole 11..=29
        g.holes.push_back((31, 31)); // (as if 32 came)
        g.high = 33;
        g.tick(3, 64, None);
        assert_eq!(due(&mut g, true, 3), [(1, 9)]);
        // finish: the rest, and what was produced but never seen above the highest.
        let mut out = Vec::new();
        g.finish(Some(40), |f, l| out.push((f, l)));
        assert_eq!(out, [(11, 29), (31, 31), (33, 39)]);
        assert_eq!(g.high, 40);
        // A family switched on again continues from produced.
        assert!(run(&mut g, [40, 41]).is_empty());
    }

    #[test]
    fn drops_at_the_end_of_a_burst_are_lost_a_tick_after_produced_passed_them() {
        let mut g = Gaps::default();
        run(&mut g, [0, 1, 2]); // 3..=5 dropped: nothing later arrives
        g.tick(3, 64, Some(6)); // marks 6
        assert!(due(&mut g, true, 3).is_empty());
        g.tick(3, 64, Some(6));
        assert_eq!(due(&mut g, true, 3), [(3, 5)]);
        assert!(run(&mut g, [6]).is_empty());
        assert_eq!(g.strays(), 0);
        // A seq taken just before the tick may still come within the next.
        g.tick(4, 64, Some(8)); // 7 taken, not yet here
        assert!(due(&mut g, true, 4).is_empty());
        run(&mut g, [7]);
        g.tick(5, 64, Some(8));
        assert!(due(&mut g, true, 5).is_empty());
        assert_eq!((g.high, g.strays()), (8, 0));
    }

    #[test]
    fn duplicates_and_records_after_their_loss_are_strays() {
        let mut g = Gaps::default();
        run(&mut g, [0, 1, 1, 3]);
        assert_eq!(g.strays(), 1);
        let mut out = Vec::new();
        g.finish(Some(4), |f, l| out.push((f, l)));
        assert_eq!(out, [(2, 2)]);
        run(&mut g, [2]);
        assert_eq!(g.strays(), 2);
    }

    #[test]
    fn too_many_holes_declare_the_oldest_lost() {
        let mut g = Gaps::default();
        let mut lost = Vec::new();
        for i in 0..=MAX_HOLES as u64 {
            lost.extend(g.record(2 * i + 1));
        }
        assert_eq!(lost, [(0, 0)]);
        assert_eq!(g.holes.len(), MAX_HOLES);
    }

    #[test]
    fn every_seq_is_received_or_lost_exactly_once() {
        // A pseudo-random shuffle within windows of 8, with every 7th seq dropped.
        let n = 10_000u64;
        let mut order: Vec<u64> = (0..n).filter(|s| s % 7 != 3).collect();
        let mut x = 12345u64;
        for c in order.chunks_mut(8) {
            for i in (1..c.len()).rev() {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                c.swap(i, (x >> 33) as usize % (i + 1));
            }
        }
        let mut g = Gaps::default();
        let mut lost = Vec::new();
        for (i, &s) in order.iter().enumerate() {
            lost.extend(g.record(s));
            if i % 1000 == 999 {
                g.tick(i as u64, 64, None);
                g.due(true, i as u64, |f, l| lost.push((f, l)));
            }
        }
        g.finish(Some(n), |f, l| lost.push((f, l)));
        let mut seen = vec![0u32; n as usize];
        for &s in &order {
            seen[s as usize] += 1;
        }
        for &(f, l) in &lost {
            for s in f..=l {
                seen[s as usize] += 1;
                assert_eq!(s % 7, 3, "{s} was received, not lost");
            }
        }
        assert!(seen.iter().all(|&c| c == 1));
        assert_eq!(g.strays(), 0);
    }
}
