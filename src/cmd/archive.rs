//! `ringwarden archive verify DIR`: reads an event archive (plain or gzip files, ours or
//! logrotate's), checks that every line is a whole JSON object, and accounts for every
//! `seq` of every ring: present, declared lost by the ring (`lost` records), lost at the
//! output (`lost` records with `reason: "sink"`), or deleted with the oldest files
//! (`expired` records). Exit 0: whole and accounted for; 1: not; 66: DIR cannot be read.
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use crate::obs::jsonread::{self, Value};
use crate::output::{archive, gzip};

/// A longer line is damaged (the daemon's are a few KiB at most).
const MAX_LINE: usize = 16 << 20;
/// Damaged lines shown (the rest are counted).
const SHOWN: usize = 10;

/// One run of a ring's seqs: a daemon's lifetime (seqs start at 0 again after a
/// restart: a seq below the run's first, or one already present).
#[derive(Debug, Default)]
struct Run {
    /// Present seqs as sorted, disjoint, non-adjacent ranges `a..=b`. Records of one ring
    /// arrive a little out of order (several CPUs): a late one fills its hole.
    present: Vec<(u64, u64)>,
    /// Ranges `lost` records declared.
    declared: Vec<(u64, u64)>,
    /// Seq-less `lost` records' counts (a 5.10 variant's ring).
    declared_count: u64,
}

impl Run {
    fn first(&self) -> u64 {
        self.present.first().map_or(0, |r| r.0)
    }

    fn last(&self) -> u64 {
        self.present.last().map_or(0, |r| r.1)
    }

    fn count(&self) -> u64 {
        self.present
            .iter()
            .fold(0u64, |n, (a, b)| n.saturating_add(b - a + 1))
    }

    /// Adds `seq`; false when it cannot belong to this run (present already, or before
    /// its first).
    fn add(&mut self, seq: u64) -> bool {
        let Some(&(_, last)) = self.present.last() else {
            self.present.push((seq, seq));
            return true;
        };
        if seq > last {
            match self.present.last_mut() {
                Some(r) if seq == last + 1 => r.1 = seq,
                _ => self.present.push((seq, seq)),
            }
            return true;
        }
        if seq < self.first() {
            return false;
        }
        // Inside: the range after it starts above seq; the one before must end below it.
        let i = self.present.partition_point(|r| r.0 <= seq);
        let (pa, pb) = self.present[i - 1];
        if seq <= pb {
            return false;
        }
        let joins_prev = seq == pb + 1;
        let joins_next = self.present.get(i).is_some_and(|n| n.0 == seq + 1);
        match (joins_prev, joins_next) {
            (true, true) => {
                let nb = self.present[i].1;
                self.present[i - 1] = (pa, nb);
                self.present.remove(i);
            }
            (true, false) => self.present[i - 1].1 = seq,
            (false, true) => self.present[i].0 = seq,
            (false, false) => self.present.insert(i, (seq, seq)),
        }
        true
    }

    /// The holes between present ranges.
    fn gaps(&self) -> Vec<(u64, u64)> {
        self.present
            .windows(2)
            .map(|w| (w[0].1 + 1, w[1].0 - 1))
            .collect()
    }

    /// Seqs of `a..=b` that the declared ranges cover (each counted once).
    fn covered(&self, a: u64, b: u64) -> u64 {
        let mut d: Vec<(u64, u64)> = self
            .declared
            .iter()
            .filter(|r| r.0 <= r.1)
            .map(|&(x, y)| (x.max(a), y.min(b)))
            .filter(|r| r.0 <= r.1)
            .collect();
        d.sort_unstable();
        let (mut n, mut upto) = (0u64, None::<u64>);
        for (x, y) in d {
            let x = match upto {
                Some(u) if u >= y => continue,
                Some(u) if u >= x => u + 1,
                _ => x,
            };
            n = n.saturating_add(y - x + 1);
            upto = Some(y);
        }
        n
    }

    /// Whether a declared range names a seq that is present.
    fn declares_present(&self) -> bool {
        self.declared.iter().any(|&(x, y)| {
            let i = self.present.partition_point(|r| r.1 < x);
            self.present.get(i).is_some_and(|r| r.0 <= y)
        })
    }
}

/// A ring's name and shard.
type RingKey = (String, Option<u64>);

#[derive(Debug, Default)]
struct Verify {
    files: usize,
    lines: u64,
    bad: u64,
    shown: Vec<String>,
    /// By (ring, shard), in the order first seen: its runs, oldest first. (A few dozen
    /// rings at most: a list, not a map.)
    rings: Vec<(RingKey, Vec<Run>)>,
    sink_lost: u64,
    sink_records: u64,
    /// Per daemon (pid): the largest `total_events` of its `expired` records.
    expired: Vec<(u64, u64)>,
    expired_files: u64,
}

impl Verify {
    fn line(&mut self, file: &str, n: u64, text: &[u8]) {
        self.lines += 1;
        let parsed = std::str::from_utf8(text)
            .map_err(|_| "not UTF-8".to_string())
            .and_then(|t| jsonread::parse(t).map_err(|e| e.to_string()));
        let v = match parsed {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return self.damaged(file, n, "not a JSON object"),
            Err(e) => return self.damaged(file, n, &e),
        };
        let ty = v.get("type").as_str().unwrap_or("");
        let daemon = v.get("origin").as_str() == Some("daemon");
        let key = || {
            (
                v.get("ring").as_str().unwrap_or("?").to_string(),
                v.get("shard").as_u64(),
            )
        };
        match (ty, daemon) {
            ("lost", true) if v.get("reason").as_str() == Some("sink") => {
                self.sink_lost = self
                    .sink_lost
                    .saturating_add(v.get("count").as_u64().unwrap_or(0));
                self.sink_records += 1;
            }
            ("lost", true) => {
                let runs = self.runs(key());
                if runs.is_empty() {
                    runs.push(Run::default());
                }
                if let Some(run) = runs.last_mut() {
                    match (v.get("first_seq").as_u64(), v.get("last_seq").as_u64()) {
                        (Some(a), Some(b)) => run.declared.push((a, b)),
                        _ => {
                            run.declared_count = run
                                .declared_count
                                .saturating_add(v.get("count").as_u64().unwrap_or(0))
                        }
                    }
                }
            }
            ("expired", true) => {
                let pid = v.get("pid").as_u64().unwrap_or(0);
                let total = v.get("total_events").as_u64().unwrap_or(0);
                match self.expired.iter_mut().find(|(p, _)| *p == pid) {
                    Some((_, e)) => *e = (*e).max(total),
                    None => self.expired.push((pid, total)),
                }
                self.expired_files += 1;
            }
            (_, false) => {
                if let Some(seq) = v.get("seq").as_u64() {
                    self.seq(key(), seq);
                }
            }
            _ => {}
        }
    }

    /// The runs of ring `key`, made empty when new.
    fn runs(&mut self, key: RingKey) -> &mut Vec<Run> {
        let i = match self.rings.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.rings.push((key, Vec::new()));
                self.rings.len() - 1
            }
        };
        &mut self.rings[i].1
    }

    fn seq(&mut self, key: RingKey, seq: u64) {
        let runs = self.runs(key);
        if !runs.last_mut().is_some_and(|r| r.add(seq)) {
            runs.push(Run {
                present: vec![(seq, seq)],
                ..Run::default()
            });
        }
    }

    fn damaged(&mut self, file: &str, n: u64, why: &str) {
        self.bad += 1;
        if self.shown.len() < SHOWN {
            self.shown.push(format!("{file}: line {n}: {why}"));
        }
    }

    /// Reads one file (gzip by its magic bytes, so logrotate's `.1.gz` reads too).
    fn file(&mut self, path: &Path) -> io::Result<()> {
        let name = path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        self.files += 1;
        let mut magic = [0u8; 2];
        let gz = File::open(path)?.read(&mut magic)? == 2 && magic == [0x1f, 0x8b];
        let mut pending: Vec<u8> = Vec::new();
        // Past MAX_LINE a line is damaged: the rest of it is skipped, not held (a file
        // without a newline must not take the memory).
        let mut too_long = false;
        let mut n = 0u64;
        let mut feed = |chunk: &[u8], v: &mut Verify| {
            let mut rest = chunk;
            while let Some(i) = rest.iter().position(|&c| c == b'\n') {
                n += 1;
                if too_long {
                    v.lines += 1;
                    v.damaged(&name, n, "longer than 16 MiB");
                    too_long = false;
                } else if pending.is_empty() {
                    v.line(&name, n, &rest[..i]);
                } else {
                    pending.extend_from_slice(&rest[..i]);
                    let line = std::mem::take(&mut pending);
                    v.line(&name, n, &line);
                }
                rest = &rest[i + 1..];
            }
            if !too_long && pending.len() + rest.len() > MAX_LINE {
                too_long = true;
                pending = Vec::new();
            }
            if !too_long {
                pending.extend_from_slice(rest);
            }
        };
        let f = File::open(path)?;
        let r = if gz {
            gzip::read_all(f, &mut |b| feed(b, self)).map_err(|e| e.to_string())
        } else {
            archive::read_chunks(f, &mut |b| feed(b, self)).map_err(|e| e.to_string())
        };
        if !pending.is_empty() || too_long {
            self.lines += 1;
            self.damaged(&name, n + 1, "cut off: no end of line (a truncated file)");
        }
        if let Err(e) = r {
            self.damaged(&name, n + 1, &format!("the file cannot be read on: {e}"));
        }
        Ok(())
    }
}

/// The files of an archive in `dir`, oldest first: every regular file with `.json` in
/// its name (`events.jsonl`, `events-….jsonl.gz`, logrotate's `events.jsonl.1`), by
/// modification time (compressing keeps it), then name.
fn archive_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut v: Vec<(SystemTime, String, PathBuf)> = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.contains(".json") || name.ends_with(".tmp") || name.starts_with('.') {
            continue;
        }
        let m = match fs::symlink_metadata(e.path()) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if m.is_file() {
            v.push((
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                name,
                e.path(),
            ));
        }
    }
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    Ok(v.into_iter().map(|(_, _, p)| p).collect())
}

pub fn verify(dir: &Path) -> ExitCode {
    let files = match archive_files(dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "ringwarden: archive verify: cannot read {}: {e}; give the directory of the archive",
                dir.display()
            );
            return ExitCode::from(crate::sys::exit::NOINPUT);
        }
    };
    let mut v = Verify::default();
    for f in &files {
        // Gone since the listing (retention or compression of a live archive): skipped.
        if let Err(e) = v.file(f)
            && e.kind() != io::ErrorKind::NotFound
        {
            eprintln!(
                "ringwarden: archive verify: cannot read {}: {e}",
                f.display()
            );
            return ExitCode::from(crate::sys::exit::NOINPUT);
        }
    }
    let (text, ok) = report(&v, dir);
    print!("{text}");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::sys::exit::RUNTIME)
    }
}

/// What `verify` prints, and whether the archive is whole and accounted for.
fn report(v: &Verify, dir: &Path) -> (String, bool) {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "archive {}: {} files, {} lines",
        dir.display(),
        v.files,
        v.lines
    );
    if v.bad == 0 {
        let _ = writeln!(o, "lines: every line is a whole JSON object");
    } else {
        let _ = writeln!(o, "lines: {} damaged:", v.bad);
        for s in &v.shown {
            let _ = writeln!(o, "  {s}");
        }
        if v.bad as usize > v.shown.len() {
            let _ = writeln!(o, "  ... and {} more", v.bad as usize - v.shown.len());
        }
    }
    let (mut undeclared, mut head) = (0u64, 0u64);
    let expired = v
        .expired
        .iter()
        .fold(0u64, |n, (_, e)| n.saturating_add(*e));
    let mut ring_declared_ok = true;
    for ((ring, shard), runs) in &v.rings {
        let label = match shard {
            Some(s) => format!("{ring}/{s}"),
            None => ring.clone(),
        };
        for (i, r) in runs.iter().enumerate() {
            if r.present.is_empty() {
                continue;
            }
            let gaps = r.gaps();
            let missing = gaps
                .iter()
                .fold(0u64, |n, (a, b)| n.saturating_add(b - a + 1));
            let declared = gaps
                .iter()
                .fold(0u64, |n, &(a, b)| n.saturating_add(r.covered(a, b)));
            // Seq-less lost records (5.10) vouch for as many as they count.
            let declared = declared.saturating_add(r.declared_count).min(missing);
            undeclared = undeclared.saturating_add(missing - declared);
            // Before the first present seq: declared lost, else (the first run) expired
            // with the oldest files, or (a later run) lost at the output.
            let before = r.first() - r.covered(0, r.first().saturating_sub(1)).min(r.first());
            if i == 0 {
                head = head.saturating_add(before);
            } else {
                undeclared = undeclared.saturating_add(before);
            }
            ring_declared_ok &= !r.declares_present();
            let _ = writeln!(
                o,
                "ring {label}{}: seq {}..{}, {} present, {} gaps ({} events): {} declared lost by the ring, {} not",
                if runs.len() > 1 {
                    format!(" run {}", i + 1)
                } else {
                    String::new()
                },
                r.first(),
                r.last(),
                r.count(),
                gaps.len(),
                missing,
                declared,
                missing - declared
            );
        }
    }
    let _ = writeln!(
        o,
        "output: {} events lost at the output ({} lost records, reason sink)",
        v.sink_lost, v.sink_records
    );
    let _ = writeln!(
        o,
        "expired: {expired} events in deleted files (expired records: {}); the archive starts {head} events into its first run",
        v.expired_files
    );
    let gaps_ok = undeclared <= v.sink_lost;
    let exact = undeclared == v.sink_lost && head == expired;
    // The head is not a failure: an archive may begin after its first events (logrotate
    // deleted them, or the records of older deletions went with later ones).
    let head_note = if head == expired {
        String::new()
    } else {
        format!("; {head} events missing before the oldest file, {expired} told by expired records")
    };
    let verdict = if v.bad > 0 {
        "damaged lines".to_string()
    } else if !ring_declared_ok {
        "a lost record names seqs that are present".to_string()
    } else if !gaps_ok {
        format!(
            "{} missing events are not accounted for: gaps no lost record explains",
            undeclared - v.sink_lost
        )
    } else if exact {
        "every gap is accounted for exactly: declared ring losses, the output's losses and the expired files".to_string()
    } else {
        format!(
            "every gap between events is accounted for ({} events the output lost left no gap: lost at a run's end, or the daemon's own records){head_note}",
            v.sink_lost - undeclared,
        )
    };
    let ok = v.bad == 0 && ring_declared_ok && gaps_ok;
    let _ = writeln!(
        o,
        "verdict: {}: {verdict}",
        if ok { "ok" } else { "FAILED" }
    );
    (o, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str]) -> (String, bool) {
        let mut v = Verify::default();
        for (i, l) in lines.iter().enumerate() {
            v.line("f", i as u64 + 1, l.as_bytes());
        }
        report(&v, Path::new("d"))
    }

    #[test]
    fn gaps_are_matched_to_what_declared_them() {
        let ev = |s: u64| format!("{{\"type\":\"open\",\"ring\":\"file\",\"seq\":{s}}}");
        let lost = r#"{"type":"lost","origin":"daemon","ring":"file","first_seq":2,"last_seq":3,"count":2}"#;
        let sink = r#"{"type":"lost","origin":"daemon","reason":"sink","count":1}"#;
        let (a, b, c, d, e) = (ev(0), ev(1), ev(4), ev(6), ev(0));
        let (text, ok) = run(&[&a, &b, lost, &c, sink, &d, &e]);
        assert!(ok, "{text}");
        assert!(text.contains("ring file run 1: seq 0..6, 4 present, 2 gaps (3 events): 2 declared lost by the ring, 1 not"), "{text}");
        assert!(text.contains("ring file run 2: seq 0..0"), "{text}");
        assert!(text.contains("accounted for exactly"), "{text}");
        // Without the sink record the gap at 5 is unexplained.
        let (text, ok) = run(&[&a, &b, lost, &c, &d]);
        assert!(
            !ok && text.contains("1 missing events are not accounted for"),
            "{text}"
        );
        // Out of order (several CPUs): a late record fills its hole.
        let order: Vec<String> = [0, 1, 4, 2, 3, 5].iter().map(|&s| ev(s)).collect();
        let refs: Vec<&str> = order.iter().map(String::as_str).collect();
        let (text, ok) = run(&refs);
        assert!(ok && text.contains("seq 0..5, 6 present, 0 gaps"), "{text}");
        // Drops declared in two records, one past the last event (at the stop).
        let two = [
            ev(0),
            r#"{"type":"lost","origin":"daemon","ring":"file","first_seq":1,"last_seq":2,"count":2}"#.into(),
            r#"{"type":"lost","origin":"daemon","ring":"file","first_seq":3,"last_seq":4,"count":2}"#.into(),
            ev(5),
            r#"{"type":"lost","origin":"daemon","ring":"file","first_seq":6,"last_seq":9,"count":4}"#.into(),
        ];
        let refs: Vec<&str> = two.iter().map(String::as_str).collect();
        let (text, ok) = run(&refs);
        assert!(
            ok && text.contains("4 declared lost by the ring, 0 not"),
            "{text}"
        );
        // A damaged line.
        let (text, ok) = run(&[&a, "{\"type\":\"open\",\"ri"]);
        assert!(!ok && text.contains("f: line 2: invalid JSON"), "{text}");
    }
}
