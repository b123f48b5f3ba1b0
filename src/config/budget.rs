//! `[sizing] memory_budget` at start: checked against the rings' minimums, and the start
//! sizes fitted into it (the costliest families keep their configured size first).
use super::{Error, Settings, one_line};
use crate::family::Family;
use crate::family::loader::effective_shards;
use crate::sizing::budget::{self, Claim};
use crate::units::human;

impl Settings {
    /// With a budget, lowers start sizes until every loaded ring (each shard) fits with
    /// room for a first resize; an error when even the minimums do not fit. Returns the
    /// sizes lowered: (family, configured, fitted).
    pub fn fit_budget(&mut self) -> Result<Vec<(Family, u64, u64)>, Error> {
        let Some(b) = self.sizing.memory_budget else {
            return Ok(Vec::new());
        };
        // One claim per shard of every ring that loads, nothing held yet.
        let loaded = self.loaded_families(self.context.enabled);
        let mut of = Vec::new();
        let mut claims = Vec::new();
        for &f in &loaded {
            let r = self.ring(f);
            for _ in 0..effective_shards(r.shards) {
                of.push(f);
                claims.push(Claim::unmade(r));
            }
        }
        let mins: u64 = claims.iter().map(|c| c.min).sum();
        if mins > b {
            let each = loaded
                .iter()
                .map(|&f| {
                    let r = self.ring(f);
                    let n = effective_shards(r.shards);
                    let shards = if n > 1 {
                        format!(" ×{n}")
                    } else {
                        String::new()
                    };
                    format!("{f} {}{shards}", human(r.min))
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::Invalid(one_line(&format!(
                "sizing.memory_budget: {} is less than the rings' minimums together ({each}); raise it to at least {} or lower rings.*.min",
                human(b),
                human(mins)
            ))));
        }
        let sizes = budget::start_sizes(b, &claims);
        let mut lowered = Vec::new();
        for f in loaded {
            // Shards of a family share one size: the smallest any was given.
            if let Some(s) = of
                .iter()
                .zip(&sizes)
                .filter(|(g, _)| **g == f)
                .map(|(_, &s)| s)
                .min()
            {
                let was = self.ring(f).size;
                if s != was {
                    lowered.push((f, was, s));
                }
                self.ring_mut(f).size = s;
            }
        }
        Ok(lowered)
    }
}
