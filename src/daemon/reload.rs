//! SIGHUP as a pure function: the settings in force, the new settings and what runs now
//! go in; the list of steps comes out, in the order they are taken. The daemon carries
//! them out (`Daemon::apply`).
//!
//! `[context]`: `ancestors` applies live (the parent chain is walked per event, to the
//! depth the settings in force give); `enabled`, `max_processes` and `max_cgroups` shape
//! what the daemon keeps from the start (whether the process and cgroup tables exist,
//! and their bounds), so a change to them is logged and waits for a restart, like
//! `output`.
use crate::config::Settings;
use crate::context::ContextSettings;
use crate::family::Family;

/// A running ring, as far as a reload cares.
#[derive(Clone, Debug, PartialEq)]
pub struct Running {
    pub family: Family,
    /// Each shard's current size (it may have grown or shrunk since the start).
    pub sizes: Vec<u64>,
    /// The syscall set its kernel filter holds, for a family that has one.
    pub syscalls: Option<Vec<u32>>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// `output` changed: it takes effect at the next start (said, not done).
    OutputChanged,
    /// `[context]` keys that take effect at the next start (said, not done): `enabled`,
    /// `max_processes`, `max_cgroups`, in that order, each only when it changed.
    ContextAtNextStart(Vec<&'static str>),
    /// `[tls]` changed which programs run: it takes effect when the family is next
    /// loaded (said, not done).
    TlsAtNextStart,
    /// `[tls] capture_bytes` changed while the family runs: written to its settings map,
    /// so capture shrinks or stops at once.
    TlsCapture(u32),
    /// `[context] ancestors` changed while context runs: events list this many parents
    /// from now on. The daemon takes the depth from the settings in force for each
    /// event, so this step only says so.
    ContextAncestors(usize),
    /// Switched off: drain, log the books, detach (the books are kept).
    Retire(Family),
    /// Switched on: load and attach (continuing earlier books).
    Enable(Family),
    /// The ring's bounds or the sizing settings changed: a new policy, and a resize
    /// of each shard (in slot order) whose start size changed or whose current size is
    /// out of the new bounds.
    NewPolicy {
        family: Family,
        resize_to: Vec<Option<u64>>,
    },
    /// Wake-up settings are re-applied from a fresh start of the batching timer.
    RestartWakeups,
    /// The family's kernel filter does not hold the configured syscall set (a write
    /// that failed half-way is retried by the next SIGHUP).
    SetSyscalls(Family),
}

/// What a reload from `before` to `after` does, given what runs now.
pub fn plan(before: &Settings, after: &Settings, running: &[Running]) -> Vec<Action> {
    let mut actions = Vec::new();
    if after.output != before.output || after.archive != before.archive {
        actions.push(Action::OutputChanged);
    }
    actions.extend(context(&before.context, &after.context));
    let is_running = |f: &Family| running.iter().any(|r| r.family == *f);
    for f in Family::ALL {
        if before.families.contains(f) && !after.families.contains(f) && is_running(f) {
            actions.push(Action::Retire(*f));
        }
    }
    let kept = running
        .iter()
        .filter(|r| after.families.contains(&r.family) || !before.families.contains(&r.family));
    let kept: Vec<&Running> = kept.collect();
    for f in Family::ALL {
        let stays = kept.iter().any(|r| r.family == *f);
        if after.families.contains(f) && !stays {
            actions.push(Action::Enable(*f));
        }
    }
    // `[tls]` chooses which programs the family attaches when it loads; the capture
    // size is a map the programs read on every call.
    if before.tls.programs_off() != after.tls.programs_off() {
        actions.push(Action::TlsAtNextStart);
    }
    let tls_runs = running.iter().any(|r| r.family == Family::Tls);
    if before.tls.capture_bytes != after.tls.capture_bytes && tls_runs {
        actions.push(Action::TlsCapture(after.tls.capture_bytes));
    }
    for r in &kept {
        let f = r.family;
        let (old, new) = (before.ring(f), after.ring(f));
        // An unchanged ring keeps its policy state (cooldown, smoothed rate) and the
        // size it has grown to.
        if old == new && before.adaptive == after.adaptive && before.sizing == after.sizing {
            continue;
        }
        // A new start size is applied; otherwise the current size is only brought into
        // the new bounds.
        let resize_to = r
            .sizes
            .iter()
            .map(|&size| {
                let want = if old.size != new.size {
                    new.size
                } else {
                    size.clamp(new.min, new.max)
                };
                (want != size).then_some(want)
            })
            .collect();
        actions.push(Action::NewPolicy {
            family: f,
            resize_to,
        });
    }
    actions.push(Action::RestartWakeups);
    for r in &kept {
        if let Some(held) = &r.syscalls
            && held != &after.syscalls
        {
            actions.push(Action::SetSyscalls(r.family));
        }
    }
    actions
}

/// The `[context]` steps: restart-only keys first, then the live one. A new depth is
/// news only while context is on in the settings in force; with it off the depth waits
/// for the start that turns it on. As with `output`, `before` is what the last reload
/// read, not what the daemon started with: a restart-only change is said once, by the
/// reload that reads it.
fn context(before: &ContextSettings, after: &ContextSettings) -> Vec<Action> {
    let mut out = Vec::new();
    let restart: Vec<&'static str> = [
        ("enabled", before.enabled != after.enabled),
        ("max_processes", before.max_processes != after.max_processes),
        ("max_cgroups", before.max_cgroups != after.max_cgroups),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect();
    if !restart.is_empty() {
        out.push(Action::ContextAtNextStart(restart));
    }
    // Whether tables run is the daemon's to know (an `enabled` changed by an earlier
    // reload waits for the next start): it applies a depth only where they do.
    if after.ancestors != before.ancestors {
        out.push(Action::ContextAncestors(after.ancestors));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn running(s: &Settings) -> Vec<Running> {
        s.families
            .iter()
            .map(|&f| Running {
                family: f,
                sizes: vec![s.ring(f).size],
                syscalls: None,
            })
            .collect()
    }

    #[test]
    fn nothing_changed_only_restarts_wakeups() {
        let s = Settings::default();
        assert_eq!(plan(&s, &s, &running(&s)), vec![Action::RestartWakeups]);
    }

    #[test]
    fn a_tls_change_waits_for_the_next_start_but_capture_applies_now() {
        let before = Settings::default();
        let mut after = before.clone();
        after.tls.count_bytes = true;
        assert_eq!(
            plan(&before, &after, &running(&before)),
            vec![Action::TlsAtNextStart, Action::RestartWakeups]
        );
        // Capture on with counting already on: the probes stay, the size is written.
        let mut capture = after.clone();
        capture.tls.capture_bytes = 32;
        assert_eq!(
            plan(&after, &capture, &running(&after)),
            vec![Action::TlsCapture(32), Action::RestartWakeups]
        );
        // Capture off: at once, and the probes it needed wait for the next start.
        let mut off = before.clone();
        off.tls.capture_bytes = 64;
        assert_eq!(
            plan(&off, &before, &running(&off)),
            vec![
                Action::TlsAtNextStart,
                Action::TlsCapture(0),
                Action::RestartWakeups
            ]
        );
        // Switched on by the same reload: it loads with the new settings.
        let mut off = before.clone();
        off.families.retain(|f| *f != Family::Tls);
        assert_eq!(
            plan(&off, &after, &running(&off)),
            vec![
                Action::Enable(Family::Tls),
                Action::TlsAtNextStart,
                Action::RestartWakeups
            ]
        );
    }

    #[test]
    fn families_switched_off_retire_first_then_new_ones_load() {
        let before = Settings::default();
        let mut after = before.clone();
        let (a, b) = (Family::ALL[0], Family::ALL[1]);
        after.families.retain(|f| *f != a);
        let mut only_b = before.clone();
        only_b.families = vec![b];
        let p = plan(&before, &after, &running(&before));
        assert_eq!(p, vec![Action::Retire(a), Action::RestartWakeups]);
        let p = plan(&only_b, &before, &running(&only_b));
        let enabled: Vec<&Action> = p
            .iter()
            .filter(|x| matches!(x, Action::Enable(_)))
            .collect();
        assert_eq!(enabled.len(), Family::ALL.len() - 1);
        assert!(!p.contains(&Action::Enable(b)));
    }

    #[test]
    fn a_new_start_size_resizes_new_bounds_clamp_and_grown_rings_keep_their_size() {
        let before = Settings::default();
        let f = Family::ALL[0];
        let mut grown = running(&before);
        grown[0].sizes = vec![before.ring(f).size * 4, before.ring(f).size];
        // Same settings: a grown ring keeps its size and its policy.
        assert_eq!(plan(&before, &before, &grown), vec![Action::RestartWakeups]);
        // A new start size is applied.
        let mut after = before.clone();
        after.ring_mut(f).size *= 2;
        assert_eq!(
            plan(&before, &after, &grown)[0],
            Action::NewPolicy {
                family: f,
                resize_to: vec![Some(after.ring(f).size); 2]
            }
        );
        // New bounds only: each shard's current size is brought into them (the second
        // shard, within them, keeps its size).
        let mut after = before.clone();
        after.ring_mut(f).max = before.ring(f).size * 2;
        assert_eq!(
            plan(&before, &after, &grown)[0],
            Action::NewPolicy {
                family: f,
                resize_to: vec![Some(before.ring(f).size * 2), None]
            }
        );
        // New adaptive settings: a new policy for every ring, no resize.
        let mut after = before.clone();
        after.adaptive.cooldown *= 2;
        let p = plan(&before, &after, &running(&before));
        assert_eq!(p.len(), before.families.len() + 1);
        assert!(p.iter().all(|a| match a {
            Action::NewPolicy { resize_to, .. } => resize_to == &[None],
            a => a == &Action::RestartWakeups,
        }));
    }

    #[test]
    fn context_ancestors_apply_live_the_rest_at_the_next_start() {
        let before = Settings::default();
        let r = running(&before);
        let mut after = before.clone();
        after.context.ancestors = 8;
        assert_eq!(
            plan(&before, &after, &r),
            vec![Action::ContextAncestors(8), Action::RestartWakeups]
        );
        after.context.ancestors = 0;
        assert_eq!(plan(&before, &after, &r)[0], Action::ContextAncestors(0));
        // Each restart-only key is named, in one step, before the live one.
        for (key, change) in [
            (
                "enabled",
                (|c: &mut ContextSettings| c.enabled = false) as fn(&mut ContextSettings),
            ),
            ("max_processes", |c| c.max_processes *= 2),
            ("max_cgroups", |c| c.max_cgroups = 16),
        ] {
            let mut after = before.clone();
            change(&mut after.context);
            assert_eq!(
                plan(&before, &after, &r),
                vec![
                    Action::ContextAtNextStart(vec![key]),
                    Action::RestartWakeups
                ],
                "{key}"
            );
        }
        let mut after = before.clone();
        after.context = ContextSettings {
            enabled: false,
            ancestors: 1,
            max_processes: 64,
            max_cgroups: 16,
        };
        after.output = Some(PathBuf::from("/tmp/x"));
        assert_eq!(
            plan(&before, &after, &r),
            vec![
                Action::OutputChanged,
                Action::ContextAtNextStart(vec!["enabled", "max_processes", "max_cgroups"]),
                Action::ContextAncestors(1),
                Action::RestartWakeups
            ]
        );
        // A file that said `enabled = false` in an earlier reload (still running: it
        // waits for the next start): a new depth is still planned, and the daemon applies
        // it where tables run; turning context on is a restart.
        let mut off = before.clone();
        off.context.enabled = false;
        let mut deeper = off.clone();
        deeper.context.ancestors = 8;
        assert_eq!(
            plan(&off, &deeper, &r),
            vec![Action::ContextAncestors(8), Action::RestartWakeups]
        );
        deeper.context.enabled = true;
        assert_eq!(
            plan(&off, &deeper, &r),
            vec![
                Action::ContextAtNextStart(vec!["enabled"]),
                Action::ContextAncestors(8),
                Action::RestartWakeups
            ]
        );
    }

    #[test]
    fn output_and_syscall_changes() {
        let before = Settings::default();
        let mut after = before.clone();
        after.output = Some(PathBuf::from("/tmp/x"));
        after.syscalls = vec![39];
        let mut r = running(&before);
        r[0].syscalls = Some(before.syscalls.clone());
        let p = plan(&before, &after, &r);
        assert_eq!(p.first(), Some(&Action::OutputChanged));
        assert_eq!(p.last(), Some(&Action::SetSyscalls(r[0].family)));
        // A filter that already holds the set is left alone.
        r[0].syscalls = Some(vec![39]);
        assert!(!plan(&before, &after, &r).contains(&Action::SetSyscalls(r[0].family)));
    }
}
