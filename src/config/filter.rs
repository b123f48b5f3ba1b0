//! `[filter]`, `[filter.file]` and `[filter.network]`: the in-kernel filters
//! ([`Rules`]). Each list holds at most [`MAX_LIST`] entries; a bad entry is one line
//! naming the key and the fix.
use toml::Spanned;

use super::{Doc, Error, Leaf, Value, kind, show, table};
use crate::family::Family;
use crate::family::filter::{
    Cidr, CommPattern, MAX_LIST, Rate, Rules, UidRange, check_path, parse_uid_range,
};

table! {
    pub(super) struct RawFilter {
        families,
        include_comm,
        exclude_comm,
        include_uid,
        exclude_uid,
        include_cgroup,
        exclude_cgroup,
        include_pid_tree,
        file,
        network,
    }
}

table! {
    struct RawFileFilter { include_path, exclude_path, only_writes }
}

table! {
    struct RawNetworkFilter { include_port, exclude_port, include_cidr, exclude_cidr }
}

table! {
    /// `[rate_limit]`: a bucket per family, and one per (family, uid).
    pub(super) struct RawRateLimit { process, file, network, syscall, cgroup, anomaly, per_uid }
}

/// One list entry: its text, or why it is wrong.
pub fn comm(s: &str) -> Result<CommPattern, String> {
    CommPattern::parse(s)
}

pub fn uid(s: &str) -> Result<UidRange, String> {
    parse_uid_range(s)
}

pub fn path_prefix(s: &str) -> Result<String, String> {
    check_path(s, "path prefix").map(|()| s.to_string())
}

/// A cgroup v2 path as `/sys/fs/cgroup` (or `/sys/fs/cgroup/unified`) shows it below
/// its root, like "/system.slice/nginx.service"; a trailing / changes nothing.
pub fn cgroup(s: &str) -> Result<String, String> {
    check_path(s, "cgroup path")?;
    if s.starts_with("/sys/fs/cgroup") {
        return Err(format!(
            "{s:?} is a mount path; give the cgroup's path below the hierarchy's root, like \"/system.slice/nginx.service\""
        ));
    }
    let t = s.trim_end_matches('/');
    Ok(if t.is_empty() {
        "/".to_string()
    } else {
        t.to_string()
    })
}

pub fn cidr(s: &str) -> Result<Cidr, String> {
    Cidr::parse(s)
}

impl Doc<'_> {
    /// A list of at most MAX_LIST entries, each read by `item`; duplicates dropped. An
    /// empty list is no rule.
    fn entries<T: PartialEq>(
        &self,
        v: &Spanned<Value>,
        key: &str,
        example: &str,
        item: impl Fn(&Value) -> Result<T, String>,
    ) -> Result<Vec<T>, Error> {
        let Value::Array(a) = v.get_ref() else {
            return Err(self.err(
                v,
                key,
                &format!(
                    "expected a list like {example}, found {}",
                    kind(v.get_ref())
                ),
            ));
        };
        if a.len() > MAX_LIST {
            return Err(self.err(
                v,
                key,
                &format!(
                    "has {} entries, more than the {MAX_LIST} the kernel filter holds; merge entries (a shorter prefix, a wider range)",
                    a.len()
                ),
            ));
        }
        let mut out = Vec::new();
        for x in a {
            let t = item(x).map_err(|m| self.err(v, key, &m))?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
        Ok(out)
    }

    fn strings<T: PartialEq>(
        &self,
        v: &Leaf,
        key: &str,
        example: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, Error> {
        let Some(v) = v else {
            return Ok(Vec::new());
        };
        self.entries(v, key, example, |x| match x {
            Value::String(s) => parse(s),
            other => Err(format!(
                "expected strings like {example}, found {}",
                show(other)
            )),
        })
    }

    fn numbers<T: PartialEq>(
        &self,
        v: &Leaf,
        key: &str,
        example: &str,
        parse: impl Fn(i64) -> Result<T, String>,
    ) -> Result<Vec<T>, Error> {
        let Some(v) = v else {
            return Ok(Vec::new());
        };
        self.entries(v, key, example, |x| match x {
            Value::Integer(i) => parse(*i),
            other => Err(format!(
                "expected numbers like {example}, found {}",
                show(other)
            )),
        })
    }

    fn rate(&self, v: &Spanned<Value>, key: &str) -> Result<Rate, Error> {
        match v.get_ref() {
            Value::String(s) => Rate::parse(s).map_err(|m| self.err(v, key, &m)),
            other => Err(self.err(
                v,
                key,
                &format!("expected a rate like \"20000/s\", found {}", show(other)),
            )),
        }
    }

    /// `[rate_limit]` into `out`.
    pub(super) fn rate_limit(&self, r: &RawRateLimit, out: &mut Rules) -> Result<(), Error> {
        out.rate_family.clear();
        for (family, v) in [
            (Family::Process, &r.process),
            (Family::File, &r.file),
            (Family::Network, &r.network),
            (Family::Syscall, &r.syscall),
            (Family::Cgroup, &r.cgroup),
            (Family::Anomaly, &r.anomaly),
        ] {
            if let Some(v) = v {
                let rate = self.rate(v, &format!("rate_limit.{family}"))?;
                out.rate_family.push((family, rate));
            }
        }
        out.rate_per_uid = match &r.per_uid {
            Some(v) => Some(self.rate(v, "rate_limit.per_uid")?),
            None => None,
        };
        Ok(())
    }

    /// `[filter]` and its subtables into `out`.
    pub(super) fn filter(&self, r: &RawFilter, out: &mut Rules) -> Result<(), Error> {
        if let Some(v) = &r.families {
            out.families = self.entries(v, "filter.families", "[\"process\", \"file\"]", |x| {
                match x {
                    Value::String(s) => Family::parse(s).ok_or_else(|| {
                        format!(
                            "unknown family {s:?}; choose from process, file, network, syscall, cgroup, anomaly"
                        )
                    }),
                    other => Err(format!("expected family names, found {}", show(other))),
                }
            })?;
            if out.families.is_empty() {
                return Err(self.err(
                    v,
                    "filter.families",
                    "is empty: the rules would apply to no family; name the families, or remove the key for every family but anomaly",
                ));
            }
            out.families.sort();
        }
        out.include_comm = self.strings(
            &r.include_comm,
            "filter.include_comm",
            "[\"nginx\", \"php-fpm*\"]",
            comm,
        )?;
        out.exclude_comm = self.strings(
            &r.exclude_comm,
            "filter.exclude_comm",
            "[\"systemd-journal\", \"prometheus*\"]",
            comm,
        )?;
        let uids = |key: &'static str| {
            move |x: &Value| match x {
                Value::Integer(i) => u32::try_from(*i)
                    .map(|u| (u, u))
                    .map_err(|_| format!("{i} is not a uid (0 to 4294967295)")),
                Value::String(s) => uid(s),
                other => Err(format!(
                    "{key}: expected uids or ranges like 65534 or \"1000-60000\", found {}",
                    show(other)
                )),
            }
        };
        if let Some(v) = &r.include_uid {
            out.include_uid = self.entries(
                v,
                "filter.include_uid",
                "[\"1000-60000\"]",
                uids("include_uid"),
            )?;
        }
        if let Some(v) = &r.exclude_uid {
            out.exclude_uid =
                self.entries(v, "filter.exclude_uid", "[65534]", uids("exclude_uid"))?;
        }
        out.include_cgroup = self.strings(
            &r.include_cgroup,
            "filter.include_cgroup",
            "[\"/system.slice/nginx.service\"]",
            cgroup,
        )?;
        out.exclude_cgroup = self.strings(
            &r.exclude_cgroup,
            "filter.exclude_cgroup",
            "[\"/system.slice/backup.service\"]",
            cgroup,
        )?;
        out.include_pid_tree = self.numbers(
            &r.include_pid_tree,
            "filter.include_pid_tree",
            "[1234]",
            |i| {
                u32::try_from(i)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{i} is not a pid"))
            },
        )?;
        if let Some(v) = &r.file {
            let f = RawFileFilter::read(self, v, "filter.file")?;
            out.include_path = self.strings(
                &f.include_path,
                "filter.file.include_path",
                "[\"/etc/\", \"/home/\"]",
                path_prefix,
            )?;
            out.exclude_path = self.strings(
                &f.exclude_path,
                "filter.file.exclude_path",
                "[\"/proc/\", \"/sys/\"]",
                path_prefix,
            )?;
            if let Some(v) = &f.only_writes {
                out.only_writes = self.boolean(v, "filter.file.only_writes")?;
            }
        }
        if let Some(v) = &r.network {
            let n = RawNetworkFilter::read(self, v, "filter.network")?;
            let port = |i: i64| {
                u16::try_from(i)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{i} is not a port (1 to 65535)"))
            };
            out.include_port = self.numbers(
                &n.include_port,
                "filter.network.include_port",
                "[443]",
                port,
            )?;
            out.exclude_port =
                self.numbers(&n.exclude_port, "filter.network.exclude_port", "[53]", port)?;
            out.include_cidr = self.strings(
                &n.include_cidr,
                "filter.network.include_cidr",
                "[\"10.0.0.0/8\", \"fd00::/8\"]",
                cidr,
            )?;
            out.exclude_cidr = self.strings(
                &n.exclude_cidr,
                "filter.network.exclude_cidr",
                "[\"127.0.0.0/8\"]",
                cidr,
            )?;
        }
        Ok(())
    }
}

/// A comma-separated command-line list (`--exclude-comm a,b*`), each entry read by
/// `parse`; the message names the option.
pub fn cli_list<T: PartialEq>(
    opt: &str,
    v: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for part in v.split(',').filter(|p| !p.is_empty()) {
        let t = parse(part).map_err(|e| format!("{opt}: {e}"))?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.is_empty() {
        return Err(format!("{opt}: empty list; give at least one entry"));
    }
    if out.len() > MAX_LIST {
        return Err(format!(
            "{opt}: {} entries, more than the {MAX_LIST} the kernel filter holds",
            out.len()
        ));
    }
    Ok(out)
}

/// The command line's filter options, each replacing the file's list of the same name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FilterOverrides {
    pub exclude_comm: Option<Vec<CommPattern>>,
    pub include_uid: Option<Vec<UidRange>>,
    pub include_cgroup: Option<Vec<String>>,
    pub include_path: Option<Vec<String>>,
    pub exclude_path: Option<Vec<String>>,
}

impl FilterOverrides {
    pub fn apply(&self, r: &mut Rules) {
        if let Some(v) = &self.exclude_comm {
            r.exclude_comm = v.clone();
        }
        if let Some(v) = &self.include_uid {
            r.include_uid = v.clone();
        }
        if let Some(v) = &self.include_cgroup {
            r.include_cgroup = v.clone();
        }
        if let Some(v) = &self.include_path {
            r.include_path = v.clone();
        }
        if let Some(v) = &self.exclude_path {
            r.exclude_path = v.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    fn parse(src: &str) -> Result<crate::family::filter::Rules, String> {
        Settings::from_toml(src, 4096)
            .map(|s| s.filter)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_issue_example_parses() {
        let r = parse(
            r#"
[filter]
exclude_comm = ["systemd-journal", "prometheus*"]
include_uid  = ["1000-60000"]
exclude_uid  = [65534]
include_cgroup = ["/system.slice/nginx.service"]
exclude_cgroup = ["/system.slice/ringwarden-test.scope"]
include_pid_tree = []
[filter.file]
include_path = ["/etc/", "/home/", "/root/"]
exclude_path = ["/proc/", "/sys/", "/dev/"]
only_writes = false
[filter.network]
exclude_port = [53]
include_cidr = ["10.0.0.0/8", "fd00::/8"]
"#,
        )
        .unwrap();
        assert_eq!(r.exclude_comm.len(), 2);
        assert_eq!(r.include_uid, vec![(1000, 60000)]);
        assert_eq!(r.exclude_uid, vec![(65534, 65534)]);
        assert!(r.include_pid_tree.is_empty());
        assert_eq!(r.include_path.len(), 3);
        assert_eq!(r.exclude_port, vec![53]);
        assert_eq!(r.include_cidr.len(), 2);
        assert!(!r.families.contains(&crate::family::Family::Anomaly));
    }

    #[test]
    fn bad_entries_name_the_key_and_the_fix() {
        for (src, want) in [
            (
                "[filter.network]\ninclude_cidr = [\"10.0.0.300/8\"]",
                "filter.network.include_cidr",
            ),
            (
                "[filter.network]\ninclude_cidr = [\"10.0.0.1/8\"]",
                "first address",
            ),
            ("[filter.file]\ninclude_path = [\"\"]", "empty path prefix"),
            ("[filter.file]\nexclude_path = [\"proc/\"]", "absolute"),
            ("[filter]\ninclude_uid = [\"60000-1000\"]", "\"1000-60000\""),
            (
                "[filter]\nexclude_comm = [\"systemd-journald\"]",
                "15 bytes",
            ),
            (
                "[filter]\ninclude_cgroup = [\"/sys/fs/cgroup/x\"]",
                "mount path",
            ),
            ("[filter.network]\nexclude_port = [0]", "not a port"),
            ("[filter]\nfamilies = [\"disk\"]", "unknown family"),
            ("[filter]\nbogus = 1", "bogus"),
            ("[filter]\nfamilies = []", "apply to no family"),
            (
                "[filter.file]\ninclude_path = [\"/etc/*\"]",
                "not a pattern; write \"/etc/\"",
            ),
        ] {
            let e = parse(src).unwrap_err();
            assert!(e.contains(want), "{src}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let many: Vec<String> = (0..65).map(|i| format!("\"/p{i}/\"")).collect();
        let e = parse(&format!(
            "[filter.file]\ninclude_path = [{}]",
            many.join(",")
        ))
        .unwrap_err();
        assert!(e.contains("65 entries"), "{e}");
        let ok: Vec<String> = (0..64).map(|i| format!("\"/p{i}/\"")).collect();
        assert!(parse(&format!("[filter.file]\ninclude_path = [{}]", ok.join(","))).is_ok());
    }

    #[test]
    fn rate_limits() {
        let r = parse("[rate_limit]\nfile = \"20000/s\"\nper_uid = \"100/h\"\n").unwrap();
        assert_eq!(r.rate_family.len(), 1);
        assert_eq!(r.rate_family[0].1.count, 20000);
        assert_eq!(r.rate_per_uid.map(|x| x.period_ns), Some(3_600_000_000_000));
        for (src, want) in [
            ("[rate_limit]\nfile = \"fast\"", "rate_limit.file"),
            ("[rate_limit]\nfile = \"0/s\"", "lets nothing through"),
            (
                "[rate_limit]\nper_uid = \"5/d\"",
                "per second, minute or hour",
            ),
            ("[rate_limit]\nper_uid = 5", "expected a rate"),
            ("[rate_limit]\ndisk = \"5/s\"", "disk"),
        ] {
            let e = parse(src).unwrap_err();
            assert!(e.contains(want), "{src}: {e}");
        }
    }

    #[test]
    fn anomaly_only_when_named() {
        let r = parse("[filter]\nfamilies = [\"anomaly\", \"file\"]\nexclude_uid = [0]").unwrap();
        assert_eq!(
            r.families,
            vec![crate::family::Family::File, crate::family::Family::Anomaly]
        );
    }
}
