//! `audit.csv`: the upstream columns, quoting and the ETag-conditional append (§8).

use super::storage::{Meta, PutCondition, Storage, StorageError, StorageErrorKind};
use serde_json::Value;

pub const HEADER: &str =
    "ts,action,version_ts,hostname,local_ip,os_user,git_email,vsync_version,bun_version,meta";
pub const COLUMNS: [&str; 10] = [
    "ts",
    "action",
    "version_ts",
    "hostname",
    "local_ip",
    "os_user",
    "git_email",
    "vsync_version",
    "bun_version",
    "meta",
];
/// Upstream replaces a larger meta cell with `{"_truncated":true}`; we refuse such
/// input before any write instead.
pub const META_CAP: usize = 2048;
const ATTEMPTS: usize = 3;

/// `<repo>/<env-lowercased>/audit.csv`: upstream never puts it under a custom prefix.
pub fn audit_key(repo: &str, env: &str) -> String {
    format!("{repo}/{}/audit.csv", env.to_lowercase())
}

/// RFC 4180 subset: quote only when needed, double inner quotes.
pub fn quote(field: &str) -> String {
    if field.contains(['"', ',', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// One CSV line into fields (quoted fields may hold commas and doubled quotes).
pub fn parse_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, '"') if cur.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut cur)),
            (_, c) => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// The audit log as (column → value) rows, mapped by header name like upstream readers.
pub fn parse(text: &str) -> Vec<Vec<(String, String)>> {
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let names = parse_line(header);
    lines
        .map(|l| names.iter().cloned().zip(parse_line(l)).collect())
        .collect()
}

/// The meta cell of a rotate row: user keys first, then `event`, `gen`, `prev_gen`
/// (a colliding user key keeps its place and takes the rotation value, as upstream).
pub fn rotate_meta(user: &[(String, String)], gen: u64, prev_gen: u64) -> String {
    let mut pairs: Vec<(String, Value)> = user
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    for (k, v) in [
        ("event", Value::String("rotate".into())),
        ("gen", Value::from(gen)),
        ("prev_gen", Value::from(prev_gen)),
    ] {
        match pairs.iter_mut().find(|(pk, _)| pk == k) {
            Some(slot) => slot.1 = v,
            None => pairs.push((k.to_owned(), v)),
        }
    }
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// Compact JSON of the user's own meta keys, to check the 2 KB cap before writing.
pub fn user_meta_len(user: &[(String, String)]) -> usize {
    if user.is_empty() {
        return 0;
    }
    let map: serde_json::Map<String, Value> = user
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    serde_json::to_string(&map)
        .map(|s| s.len())
        .unwrap_or(usize::MAX)
}

/// Facts about the machine a row records.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub hostname: String,
    pub local_ip: String,
    pub os_user: String,
    pub git_email: String,
    pub version: String,
}

impl Origin {
    pub fn of_this_machine() -> Origin {
        Origin {
            hostname: hostname(),
            local_ip: local_ip(),
            os_user: std::env::var("USER")
                .or_else(|_| std::env::var("USERNAME"))
                .unwrap_or_default(),
            git_email: std::process::Command::new("git")
                .args(["config", "--get", "user.email"])
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default(),
            version: format!("vsync-orchestrate/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its full length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// First non-internal IPv4 address, else first non-internal IPv6, else empty.
fn local_ip() -> String {
    let mut v4 = None;
    let mut v6 = None;
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we walk read-only and free with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return String::new();
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let ifa = &*cur;
            let loopback = ifa.ifa_flags & (libc::IFF_LOOPBACK as u32) != 0;
            if !ifa.ifa_addr.is_null() && !loopback {
                match (*ifa.ifa_addr).sa_family as i32 {
                    libc::AF_INET if v4.is_none() => {
                        let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        v4 = Some(
                            std::net::Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)).to_string(),
                        );
                    }
                    libc::AF_INET6 if v6.is_none() => {
                        let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        v6 = Some(std::net::Ipv6Addr::from(sa.sin6_addr.s6_addr).to_string());
                    }
                    _ => {}
                }
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    v4.or(v6).unwrap_or_default()
}

/// A complete row, without the trailing newline.
pub fn rotate_row(ts: &str, version_ts: &str, origin: &Origin, meta: &str) -> String {
    [
        ts,
        "rotate",
        version_ts,
        &origin.hostname,
        &origin.local_ip,
        &origin.os_user,
        &origin.git_email,
        &origin.version,
        "",
        meta,
    ]
    .iter()
    .map(|f| quote(f))
    .collect::<Vec<_>>()
    .join(",")
}

/// What `append` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    Written,
    /// A `rotate` row for this stamp was already there (a resumed run).
    AlreadyPresent,
}

/// Appends the `rotate` row for `version_ts` with up to three If-Match /
/// If-None-Match attempts, unless the log already holds one (resume must not append
/// it twice; the check reads the same object the append needs anyway). Unlike
/// upstream, a 403 is an error: an audit row silently not written is an audit gap.
pub async fn append(
    storage: &dyn Storage,
    key: &str,
    row: &str,
    version_ts: &str,
) -> Result<Appended, StorageError> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let (body, cond) = match storage.get(key).await? {
            None => (format!("{HEADER}\n{row}\n"), PutCondition::IfAbsent),
            Some(obj) => {
                let mut text = String::from_utf8_lossy(&obj.body).into_owned();
                if has_rotate_row(&text, version_ts) {
                    return Ok(Appended::AlreadyPresent);
                }
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(row);
                text.push('\n');
                (text, PutCondition::IfMatch(obj.etag))
            }
        };
        match storage
            .put(key, body.into_bytes(), cond, &Meta::new())
            .await
        {
            Ok(_) => return Ok(Appended::Written),
            Err(e) if e.kind == StorageErrorKind::PreconditionFailed => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("loop ran"))
}

/// Whether the log text holds a `rotate` row for `version_ts`.
pub fn has_rotate_row(text: &str, version_ts: &str) -> bool {
    parse(text).iter().any(|row| {
        let get = |c: &str| row.iter().find(|(k, _)| k == c).map(|(_, v)| v.as_str());
        get("action") == Some("rotate") && get("version_ts") == Some(version_ts)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worked_example_row() {
        let origin = Origin {
            hostname: "ops-laptop.local".into(),
            local_ip: "10.0.4.17".into(),
            os_user: "alice".into(),
            git_email: "alice@example.com".into(),
            version: "0.17.0".into(),
        };
        let meta = rotate_meta(
            &[
                ("note".into(), "quarterly rotation".into()),
                ("ticket".into(), "SEC-42".into()),
            ],
            4,
            3,
        );
        let row = rotate_row(
            "2026-05-23T11:42:07.512Z",
            "20260523-114207",
            &origin,
            &meta,
        );
        assert_eq!(
            row,
            r#"2026-05-23T11:42:07.512Z,rotate,20260523-114207,ops-laptop.local,10.0.4.17,alice,alice@example.com,0.17.0,,"{""note"":""quarterly rotation"",""ticket"":""SEC-42"",""event"":""rotate"",""gen"":4,""prev_gen"":3}""#
        );
        assert_eq!(
            rotate_meta(&[], 4, 3),
            r#"{"event":"rotate","gen":4,"prev_gen":3}"#
        );
        let parsed = parse(&format!("{HEADER}\n{row}\n"));
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0][9].1, meta);
        assert_eq!(parsed[0][3].1, "ops-laptop.local");
    }

    #[test]
    fn a_colliding_user_key_keeps_its_place() {
        let m = rotate_meta(
            &[("gen".into(), "x".into()), ("a".into(), "b".into())],
            2,
            1,
        );
        assert_eq!(m, r#"{"gen":2,"a":"b","event":"rotate","prev_gen":1}"#);
    }
}
