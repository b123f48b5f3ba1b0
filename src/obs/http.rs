//! The little HTTP the metrics endpoint needs (pure functions): parse one request head,
//! frame one response. HTTP/1.0 and 1.1, one request per connection, `Connection:
//! close`. `GET /metrics` only: 404 for other paths, 405 for other methods, 400 for
//! anything that is not an HTTP request, 431 for a head over [`MAX_HEAD`].
use super::metrics::CONTENT_TYPE;
use super::serve::{Parsed, Request};

/// The longest request head read (request line and headers).
pub const MAX_HEAD: usize = 8 << 10;

/// Methods are short tokens; a first word longer than this is not HTTP.
const MAX_METHOD: usize = 16;

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What to do with the bytes read so far (`eof`: the client has finished sending).
/// `hosts`: `Some(names)` when the server checks `Host` (it listens on loopback, or names
/// are configured). Then a `Host` other than an IP literal, `localhost` or one of `names`
/// (lowercase; with any port) is answered 421: a browser on this host that a page made
/// resolve the page's own name to 127.0.0.1 (DNS rebinding) sends that name, and must not
/// get the metrics. A request without `Host` (HTTP/1.0) is answered.
pub fn parse(buf: &[u8], eof: bool, hosts: Option<&[String]>) -> Parsed {
    let line_end = buf.iter().position(|&b| b == b'\n');
    let first = &buf[..line_end.unwrap_or(buf.len())];
    // Garbage is answered as soon as it shows, not after 8 KiB or the idle timeout: a
    // TLS hello or a binary probe has no short token before its first space.
    let method_len = first.iter().position(|&b| b == b' ').unwrap_or(first.len());
    if method_len > MAX_METHOD || !first[..method_len].iter().all(|&b| is_tchar(b)) {
        return Parsed::Reply(error(400));
    }
    let line = match line_end.map(|_| request_line(strip_cr(first))) {
        Some(Err(status)) => return Parsed::Reply(error(status)),
        Some(Ok(mt)) => Some(mt),
        None => None,
    };
    match (head_end(buf), line) {
        (Some(end), Some((method, target))) if end <= MAX_HEAD => {
            respond(method, target, &buf[first.len() + 1..end], hosts)
        }
        (Some(_), _) => Parsed::Reply(error(431)),
        (None, _) if buf.len() >= MAX_HEAD => Parsed::Reply(error(431)),
        // A half request and then the end: nobody to answer.
        (None, _) if eof => Parsed::Close,
        (None, _) => Parsed::More,
    }
}

fn strip_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// Offset just past the empty line that ends the head (CRLF or bare LF line ends).
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            if start > 0 && strip_cr(&buf[start..i]).is_empty() {
                return Some(i + 1);
            }
            start = i + 1;
        }
    }
    None
}

/// `METHOD SP TARGET SP HTTP/1.x` → (method, target), or the status to answer.
fn request_line(l: &[u8]) -> Result<(&[u8], &[u8]), u16> {
    let mut parts = l.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(400);
    }
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(400);
    }
    match version {
        b"HTTP/1.0" | b"HTTP/1.1" => Ok((method, target)),
        v if v.starts_with(b"HTTP/") && v.len() == 8 && v[6] == b'.' => Err(505),
        _ => Err(400),
    }
}

/// A whole head: the (checked) request line, then `Name: value` lines, then the empty line.
fn respond(method: &[u8], target: &[u8], headers: &[u8], hosts: Option<&[String]>) -> Parsed {
    for l in headers
        .split(|&b| b == b'\n')
        .map(strip_cr)
        .take_while(|l| !l.is_empty())
    {
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            return Parsed::Reply(error(400));
        };
        let (name, value) = (&l[..colon], &l[colon + 1..]);
        // A leading space would be an obsolete folded line: refused, as RFC 9112 allows.
        let bad_value = value.iter().any(|&b| b.is_ascii_control() && b != b'\t');
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) || bad_value {
            return Parsed::Reply(error(400));
        }
        if let Some(names) = hosts
            && name.eq_ignore_ascii_case(b"host")
            && !accepted_host(value.trim_ascii(), names)
        {
            return Parsed::Reply(error(421));
        }
    }
    if method != b"GET" {
        return Parsed::Reply(error(405));
    }
    // origin-form "/metrics?x", or absolute-form "http://host:port/metrics".
    let path = match target.strip_prefix(b"http://") {
        Some(rest) => rest
            .iter()
            .position(|&b| b == b'/')
            .map_or(&b"/"[..], |i| &rest[i..]),
        None => target,
    };
    let path = path
        .split(|&b| b == b'?' || b == b'#')
        .next()
        .unwrap_or(path);
    if path == b"/metrics" {
        Parsed::Request(Request::Metrics)
    } else {
        Parsed::Reply(error(404))
    }
}

/// An IP literal (`127.0.0.1`, `[::1]`), `localhost` or one of `names`, with or without
/// a port.
fn accepted_host(host: &[u8], names: &[String]) -> bool {
    let Ok(h) = std::str::from_utf8(host) else {
        return false;
    };
    let name = match h.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port.starts_with(':') => v6,
            _ => return false,
        },
        None => h.rsplit_once(':').map_or(h, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok()
        || names.iter().any(|n| name.eq_ignore_ascii_case(n))
}

fn response(status: u16, extra: &str, ctype: &str, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// 200 with the metrics.
pub fn ok(body: &[u8]) -> Vec<u8> {
    response(200, "", CONTENT_TYPE, body)
}

/// An error response with a one-line text body saying what is served here.
pub fn error(status: u16) -> Vec<u8> {
    let (extra, body) = match status {
        404 => ("", "not found: ringwarden serves only /metrics\n"),
        405 => ("Allow: GET\r\n", "method not allowed: use GET /metrics\n"),
        431 => ("", "request head too large (limit 8 KiB)\n"),
        503 => ("", "too many connections; try again\n"),
        505 => ("", "HTTP version not supported: use HTTP/1.0 or HTTP/1.1\n"),
        _ => ("", "bad request: send GET /metrics HTTP/1.1\n"),
    };
    response(status, extra, "text/plain; charset=utf-8", body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_loopback_only_addresses_and_localhost_may_name_the_server() {
        let ask = |host: &str, local_only: bool| {
            let req = format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n");
            match parse(req.as_bytes(), false, local_only.then_some(&[])) {
                Parsed::Request(Request::Metrics) => 200,
                Parsed::Reply(r) => String::from_utf8(r).expect("utf8")[9..12]
                    .parse()
                    .expect("status"),
                other => panic!("{other:?}"),
            }
        };
        for ok in [
            "127.0.0.1",
            "127.0.0.1:9731",
            "localhost",
            "LocalHost:1",
            "[::1]:9731",
            "[::1]",
            "10.1.2.3",
        ] {
            assert_eq!(ask(ok, true), 200, "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:9731",
            "x",
            "[::1",
            "[::1]x",
            "127.0.0.1.nip.io",
        ] {
            assert_eq!(ask(bad, true), 421, "{bad}");
            assert_eq!(ask(bad, false), 200, "{bad} on a non-loopback listener");
        }
        // HTTP/1.0 without Host is answered.
        assert!(matches!(
            parse(b"GET /metrics HTTP/1.0\r\n\r\n", false, Some(&[])),
            Parsed::Request(Request::Metrics)
        ));
    }

    fn status(p: &Parsed) -> Option<u16> {
        match p {
            Parsed::Reply(r) => std::str::from_utf8(&r[9..12]).ok()?.parse().ok(),
            _ => None,
        }
    }

    fn whole(req: &str) -> Parsed {
        parse(req.as_bytes(), false, None)
    }

    #[test]
    fn configured_names_are_accepted_too() {
        let names = ["metrics.example.lan".to_string()];
        let ask = |host: &str| {
            let req = format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n");
            status(&parse(req.as_bytes(), false, Some(&names)))
        };
        for ok in [
            "metrics.example.lan",
            "Metrics.Example.LAN:9731",
            "localhost",
            "[::1]",
        ] {
            assert_eq!(ask(ok), None, "{ok}");
        }
        for bad in [
            "example.lan",
            "x.metrics.example.lan",
            "metrics.example.lan.evil",
        ] {
            assert_eq!(ask(bad), Some(421), "{bad}");
        }
    }

    #[test]
    fn get_metrics_in_both_versions_and_line_ends() {
        for req in [
            "GET /metrics HTTP/1.1\r\nHost: localhost:9731\r\nAccept: */*\r\n\r\n",
            "GET /metrics HTTP/1.0\r\n\r\n",
            "GET /metrics HTTP/1.0\n\n",
            "GET /metrics?name[]=x HTTP/1.1\r\nUser-Agent: Prometheus/2.45\r\n\r\n",
            "GET http://127.0.0.1:9731/metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /metrics HTTP/1.1\r\nX-Empty:\r\nX-Tab: a\tb\r\n\r\n",
        ] {
            assert!(
                matches!(whole(req), Parsed::Request(Request::Metrics)),
                "{req:?}"
            );
        }
    }

    #[test]
    fn incomplete_heads_wait_and_a_closed_half_request_is_dropped() {
        for part in [
            "",
            "G",
            "GET",
            "GET /met",
            "GET /metrics HTTP/1.1\r\n",
            "GET /metrics HTTP/1.1\r\nHost: x\r\n",
        ] {
            assert!(matches!(whole(part), Parsed::More), "{part:?}");
            assert!(
                matches!(parse(part.as_bytes(), true, None), Parsed::Close),
                "{part:?}"
            );
        }
    }

    #[test]
    fn errors() {
        for (req, want) in [
            ("GET / HTTP/1.1\r\n\r\n", 404),
            ("GET /metricsx HTTP/1.1\r\n\r\n", 404),
            ("GET /metrics/ HTTP/1.1\r\n\r\n", 404),
            ("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
            ("HEAD /metrics HTTP/1.1\r\n\r\n", 405),
            ("DELETE / HTTP/1.1\r\n\r\n", 405),
            ("GET /metrics HTTP/2.0\r\n\r\n", 505),
            ("GET /metrics\r\n\r\n", 400),
            ("GET  /metrics HTTP/1.1\r\n\r\n", 400),
            ("GET /metrics HTTP/1.1 x\r\n\r\n", 400),
            ("GET /metrics FTP/1.0\r\n\r\n", 400),
            ("GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", 400),
            ("GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n", 400),
            ("GET /metrics HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
            ("GET /metrics HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400),
            ("\r\n\r\n", 400),
        ] {
            assert_eq!(status(&whole(req)), Some(want), "{req:?}");
        }
    }

    #[test]
    fn garbage_is_refused_as_soon_as_it_shows() {
        // No newline yet, but the first word cannot be a method.
        assert_eq!(
            status(&parse(b"\x16\x03\x01\x02\x00", false, None)),
            Some(400)
        );
        assert_eq!(status(&parse(b"hello world, this is", false, None)), None);
        assert_eq!(
            status(&parse(b"AAAAAAAAAAAAAAAAAAAAAAAAA", false, None)),
            Some(400)
        );
        assert_eq!(status(&parse(b"{\"json\": 1}", false, None)), Some(400));
        // A complete bad request line is answered before the headers end.
        assert_eq!(status(&parse(b"hello world\r\n", false, None)), Some(400));
        assert_eq!(
            status(&parse(b"GET /metrics HTTP/1.1 extra\r\nHost", false, None)),
            Some(400)
        );
    }

    #[test]
    fn head_size_limit() {
        let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
        while big.len() < MAX_HEAD {
            big.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(status(&parse(&big, false, None)), Some(431));
        big.extend_from_slice(b"\r\n");
        assert_eq!(status(&parse(&big, false, None)), Some(431));
        // Just under the limit is fine.
        let mut ok_head = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        ok_head.resize(MAX_HEAD - 4, b'a');
        ok_head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(ok_head.len(), MAX_HEAD);
        assert!(matches!(
            parse(&ok_head, false, None),
            Parsed::Request(Request::Metrics)
        ));
    }

    #[test]
    fn response_framing() {
        let r = String::from_utf8(ok(b"a 1\n")).expect("utf8");
        assert_eq!(
            r,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\nConnection: close\r\n\r\na 1\n"
        );
        let r = String::from_utf8(error(405)).expect("utf8");
        assert_eq!(
            r,
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 37\r\nConnection: close\r\nAllow: GET\r\n\r\nmethod not allowed: use GET /metrics\n"
        );
        for s in [400, 404, 431, 503, 505] {
            let r = error(s);
            let text = String::from_utf8(r).expect("utf8");
            let (head, body) = text.split_once("\r\n\r\n").expect("head");
            assert!(head.starts_with(&format!("HTTP/1.1 {s} ")), "{head}");
            assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
            assert!(body.ends_with('\n') && body.lines().count() == 1);
        }
    }
}
