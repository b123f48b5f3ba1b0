//! Command line: hand-parsed (a parser crate would outweigh this file on an embedded host).
use std::path::PathBuf;

use crate::families::Family;
use crate::syscalls;

pub const USAGE: &str = "\
ringwarden - kernel events from eBPF, every loss counted

Usage:
  ringwarden [run] [OPTIONS]   load the BPF programs and stream events as JSON lines
  ringwarden check             report what this kernel supports and which programs attach
  ringwarden --help | --version

Options for run:
  -o, --output PATH            where events go: a file (appended) or - for stdout [default: -]
      --only LIST              families to load, comma-separated, from:
                               process,file,network,syscall,cgroup,anomaly [default: all]
      --ring-size FAMILY=SIZE  ring buffer size of one family (repeatable); a power of two,
                               at least 4KiB; suffixes KiB, MiB, GiB (or K, M, G)
      --syscalls LIST          syscalls the syscall family reports, by name or number,
                               comma-separated [default: a security-relevant set, see README]
      --stats-interval SECS    seconds between stats lines in the log [default: 10]
      --stats-json PATH        write per-ring stats as one JSON object to PATH, atomically,
                               every interval and at exit
  -h, --help                   this text
  -V, --version                print the version

Signals: SIGINT or SIGTERM stop the daemon after draining every ring; SIGHUP is logged.
Log level: RUST_LOG=debug|info|warn|error [default: info].
Exit codes: 0 ok, 1 runtime failure, 64 usage error, 78 bad configuration value.
";

#[derive(Debug)]
pub enum Command {
    Run(RunOptions),
    Check,
    Help,
    Version,
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub output: Option<PathBuf>,
    pub families: Vec<Family>,
    pub ring_sizes: Vec<(Family, u64)>,
    pub syscalls: Vec<u32>,
    pub stats_interval_s: u64,
    pub stats_json: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            output: None,
            families: Family::ALL.to_vec(),
            ring_sizes: Vec::new(),
            syscalls: syscalls::default_set(),
            stats_interval_s: 10,
            stats_json: None,
        }
    }
}

impl RunOptions {
    pub fn ring_size(&self, f: Family) -> u64 {
        self.ring_sizes
            .iter()
            .rev()
            .find(|(g, _)| *g == f)
            .map_or(f.default_ring_size(), |(_, s)| *s)
    }
}

/// A bad command line: `code` is the exit status (64 usage, 78 configuration value).
#[derive(Debug, PartialEq, Eq)]
pub struct CliError {
    pub code: i32,
    pub msg: String,
}

fn usage(msg: String) -> CliError {
    CliError { code: 64, msg }
}

fn config(msg: String) -> CliError {
    CliError { code: 78, msg }
}

pub fn parse(args: &[String]) -> Result<Command, CliError> {
    let mut it = args.iter().peekable();
    let mut opts = RunOptions::default();
    let mut sub: Option<&str> = None;
    if let Some(first) = it.peek()
        && !first.starts_with('-')
    {
        sub = Some(first.as_str());
        it.next();
    }
    match sub {
        None | Some("run") => {}
        Some("check") => {
            if let Some(a) = it.next() {
                if a == "-h" || a == "--help" {
                    return Ok(Command::Help);
                }
                return Err(usage(format!(
                    "check takes no arguments (got {a:?}); run `ringwarden check`"
                )));
            }
            return Ok(Command::Check);
        }
        Some(s) => {
            return Err(usage(format!(
                "unknown command {s:?}; commands are run and check (see --help)"
            )));
        }
    }
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |what: &str| -> Result<String, CliError> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            // `--output --only x` is a forgotten value, not a file named "--only".
            match it.next_if(|v| !v.starts_with('-') || v.as_str() == "-") {
                Some(v) => Ok(v.clone()),
                None => Err(usage(format!("{name} needs a value: {name} {what}"))),
            }
        };
        match name {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "-o" | "--output" => {
                let v = value("PATH")?;
                opts.output = if v == "-" {
                    None
                } else {
                    Some(PathBuf::from(v))
                };
            }
            "--only" => {
                let v = value("process,file,...")?;
                let mut fams = Vec::new();
                for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let f = Family::parse(part).ok_or_else(|| {
                        config(format!(
                            "--only: unknown family {part:?}; choose from process,file,network,syscall,cgroup,anomaly"
                        ))
                    })?;
                    if !fams.contains(&f) {
                        fams.push(f);
                    }
                }
                if fams.is_empty() {
                    return Err(config(
                        "--only: no family given; e.g. --only process,file".into(),
                    ));
                }
                fams.sort();
                opts.families = fams;
            }
            "--ring-size" => {
                let v = value("FAMILY=SIZE")?;
                let (f, s) = v.split_once('=').ok_or_else(|| {
                    config(format!(
                        "--ring-size {v:?}: expected FAMILY=SIZE, e.g. file=8MiB"
                    ))
                })?;
                let fam = Family::parse(f).ok_or_else(|| {
                    config(format!(
                        "--ring-size: unknown family {f:?}; choose from process,file,network,syscall,cgroup,anomaly"
                    ))
                })?;
                let size =
                    parse_ring_size(s).map_err(|e| config(format!("--ring-size {v:?}: {e}")))?;
                opts.ring_sizes.push((fam, size));
            }
            "--syscalls" => {
                let v = value("NAME,...")?;
                let mut nrs = Vec::new();
                for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let nr = syscalls::lookup(part).ok_or_else(|| {
                        config(format!(
                            "--syscalls: unknown syscall {part:?} on this architecture; use a name like openat or a number"
                        ))
                    })?;
                    if !nrs.contains(&nr) {
                        nrs.push(nr);
                    }
                }
                if nrs.is_empty() {
                    return Err(config(
                        "--syscalls: empty list; name at least one syscall or leave the syscall family out with --only".into(),
                    ));
                }
                opts.syscalls = nrs;
            }
            "--stats-interval" => {
                let v = value("SECS")?;
                opts.stats_interval_s = match v.parse::<u64>() {
                    Ok(n) if (1..=86_400).contains(&n) => n,
                    _ => {
                        return Err(config(format!(
                            "--stats-interval {v:?}: expected whole seconds from 1 to 86400"
                        )));
                    }
                };
            }
            "--stats-json" => opts.stats_json = Some(PathBuf::from(value("PATH")?)),
            other => {
                return Err(usage(format!(
                    "unknown option {other:?}; see ringwarden --help"
                )));
            }
        }
    }
    Ok(Command::Run(opts))
}

/// Parses `64KiB`, `8MiB`, `4096`, `1G`: a power of two, at least one page.
pub fn parse_ring_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; write e.g. 64KiB or 8MiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "k" | "KiB" | "KB" | "kB" => 1 << 10,
        "M" | "MiB" | "MB" => 1 << 20,
        "G" | "GiB" | "GB" => 1 << 30,
        u => return Err(format!("unknown unit {u:?}; use KiB, MiB or GiB")),
    };
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    let page = page_size();
    if bytes < page {
        return Err(format!("{s:?} is smaller than a page; use at least {page}"));
    }
    if !bytes.is_power_of_two() {
        return Err(format!(
            "{s:?} is not a power of two; use {} or {}",
            human(bytes.next_power_of_two() / 2),
            human(bytes.next_power_of_two())
        ));
    }
    if bytes > 1 << 31 {
        return Err(format!("{s:?} is larger than the kernel's 2GiB ring limit"));
    }
    Ok(bytes)
}

pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

/// 65536 -> "64KiB".
pub fn human(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (m, u) in UNITS {
        if bytes >= m && bytes.is_multiple_of(m) {
            return format!("{}{u}", bytes / m);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_ring_size("64KiB"), Ok(65536));
        assert_eq!(parse_ring_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_ring_size("4096"), Ok(4096));
        assert_eq!(parse_ring_size("1G"), Ok(1 << 30));
        assert!(
            parse_ring_size("100000")
                .unwrap_err()
                .contains("power of two")
        );
        assert!(
            parse_ring_size("1KiB")
                .unwrap_err()
                .contains("smaller than a page")
        );
        assert!(parse_ring_size("8XB").unwrap_err().contains("unknown unit"));
        assert!(parse_ring_size("big").unwrap_err().contains("not a size"));
        assert_eq!(human(64 << 10), "64KiB");
        assert_eq!(human(3), "3B");
    }

    #[test]
    fn run_options() {
        let Ok(Command::Run(o)) = parse(&args(
            "run --output /tmp/x --only file,process --ring-size file=8MiB --stats-interval 2 --syscalls getppid,59",
        )) else {
            panic!("should parse")
        };
        assert_eq!(o.output, Some(PathBuf::from("/tmp/x")));
        assert_eq!(o.families, vec![Family::Process, Family::File]);
        assert_eq!(o.ring_size(Family::File), 8 << 20);
        assert_eq!(
            o.ring_size(Family::Process),
            Family::Process.default_ring_size()
        );
        assert_eq!(o.stats_interval_s, 2);
        assert_eq!(o.syscalls.len(), 2);
        assert!(matches!(parse(&args("--output=-")), Ok(Command::Run(o)) if o.output.is_none()));
        assert!(matches!(parse(&[]), Ok(Command::Run(_))));
        assert!(matches!(parse(&args("check")), Ok(Command::Check)));
        assert!(matches!(parse(&args("--version")), Ok(Command::Version)));
    }

    #[test]
    fn errors_name_the_problem_and_exit_code() {
        assert_eq!(parse(&args("--bogus")).unwrap_err().code, 64);
        assert_eq!(parse(&args("frobnicate")).unwrap_err().code, 64);
        assert_eq!(parse(&args("--output")).unwrap_err().code, 64);
        let e = parse(&args("--output --only process")).unwrap_err();
        assert_eq!(e.code, 64);
        assert!(e.msg.contains("--output needs a value"), "{}", e.msg);
        let nl = vec!["--ring-size".to_string(), "file=x\ny".to_string()];
        assert!(!parse(&nl).unwrap_err().msg.contains('\n'));
        let e = parse(&args("--only disk")).unwrap_err();
        assert_eq!(e.code, 78);
        assert!(e.msg.contains("disk"));
        assert_eq!(parse(&args("--ring-size file")).unwrap_err().code, 78);
        assert_eq!(parse(&args("--ring-size file=3KiB")).unwrap_err().code, 78);
        assert_eq!(parse(&args("--stats-interval 0")).unwrap_err().code, 78);
        assert_eq!(parse(&args("--syscalls nosuchcall")).unwrap_err().code, 78);
        for e in [parse(&args("--only disk")), parse(&args("--ring-size x=1"))] {
            assert!(!e.unwrap_err().msg.contains('\n'));
        }
    }
}
