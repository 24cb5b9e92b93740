//! `audit.csv`: the upstream columns, quoting and the ETag-conditional append
//! (`docs/wire-format.md` §8).

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

/// The largest audit log read into memory. The log only grows (every upstream
/// push and pull appends a row), so it gets more room than a vault object
/// ([`super::storage::MAX_OBJECT_BYTES`]); past it the row is not appended (exit 4,
/// the manual row is printed) rather than reading an unbounded object.
pub const MAX_LOG_BYTES: u64 = 64 << 20;

/// One row of the log: (column, value) pairs in header order.
pub type Row = Vec<(String, String)>;

/// The writer upstream's rows match byte for byte: `,` between fields, `\n` after a
/// row, a field quoted only when it holds `"`, `,`, LF or CR, inner quotes doubled.
fn csv_writer() -> csv::WriterBuilder {
    let mut b = csv::WriterBuilder::new();
    b.delimiter(b',')
        .quote(b'"')
        .double_quote(true)
        .quote_style(csv::QuoteStyle::Necessary)
        .terminator(csv::Terminator::Any(b'\n'));
    b
}

/// Fields joined as one CSV line, without the line end.
fn encode_row(fields: &[&str]) -> String {
    let mut w = csv_writer().from_writer(Vec::new());
    w.write_record(fields)
        .expect("writing CSV into memory cannot fail");
    let mut bytes = w.into_inner().expect("writing CSV into memory cannot fail");
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    String::from_utf8(bytes).expect("CSV of UTF-8 fields is UTF-8")
}

/// A reader with RFC 4180 quoting (quoted fields may hold `,`, `""` and line ends),
/// LF, CRLF or CR line ends, blank lines skipped, and rows of any length: upstream
/// readers map columns by header name and columns may only be added on the right.
fn csv_reader(bytes: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .quoting(true)
        .double_quote(true)
        .from_reader(bytes)
}

/// Every record of a log (the header first), or the first CSV error.
fn records(bytes: &[u8]) -> Result<Vec<Vec<String>>, csv::Error> {
    csv_reader(bytes)
        .records()
        .map(|r| r.map(|rec| rec.iter().map(str::to_owned).collect()))
        .collect()
}

fn to_rows(mut recs: Vec<Vec<String>>) -> Vec<Row> {
    if recs.is_empty() {
        return Vec::new();
    }
    let names = recs.remove(0);
    recs.into_iter()
        .map(|r| names.iter().cloned().zip(r).collect())
        .collect()
}

/// The audit log as (column → value) rows, mapped by header name like upstream
/// readers. Lenient, for display: a log that stops parsing yields the rows before it.
pub fn parse(text: &str) -> Vec<Row> {
    let recs: Vec<Vec<String>> = csv_reader(text.as_bytes())
        .records()
        .map_while(Result::ok)
        .map(|rec| rec.iter().map(str::to_owned).collect())
        .collect();
    to_rows(recs)
}

/// Why an existing log is not appended to: rewriting bytes we cannot read would
/// destroy them (and someone's evidence), and a row appended to something that is
/// not the upstream log is a row no reader finds. Every variant says the log was
/// left as it is, under upstream's `BundleCorruptError` class.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{UNUSABLE} (not UTF-8 at byte {valid_up_to}){LEFT_ALONE}")]
    NotUtf8 { valid_up_to: usize },
    #[error("{UNUSABLE} ({0}){LEFT_ALONE}")]
    Csv(#[source] csv::Error),
    #[error("{UNUSABLE} (its first line is not the upstream header){LEFT_ALONE}")]
    NotUpstreamHeader,
    /// The existing log ends inside a quoted field, which would swallow the row.
    #[error("{UNUSABLE} (an appended row would not read back as a row of its own: an unterminated quoted field){LEFT_ALONE}")]
    RowSwallowed,
}

const UNUSABLE: &str = "BundleCorruptError: the audit log is not an upstream audit.csv";
const LEFT_ALONE: &str = "; it was left exactly as it is";

/// The existing log's rows, strictly: UTF-8, well-formed CSV, and a header that
/// starts with the upstream columns. `Ok(None)`: empty or whitespace only, which
/// is rewritten as a fresh log (header + row).
pub fn parse_strict(bytes: &[u8]) -> Result<Option<Vec<Row>>, AuditError> {
    let text = std::str::from_utf8(bytes).map_err(|e| AuditError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let recs = records(bytes).map_err(AuditError::Csv)?;
    let header = recs.first().map(Vec::as_slice).unwrap_or(&[]);
    if header.len() < COLUMNS.len() || header[..COLUMNS.len()] != COLUMNS {
        return Err(AuditError::NotUpstreamHeader);
    }
    Ok(Some(to_rows(recs)))
}

/// The new body of the log with `row` appended, or why the log is left alone.
/// Appending is byte-preserving (the existing bytes are kept as they are, a
/// missing final line end added), and the result is read back: `row` must be a
/// record of its own at the end, which it would not be after an unterminated
/// quoted field.
pub fn appended(existing: &[u8], row: &str) -> Result<Vec<u8>, AuditError> {
    let Some(rows) = parse_strict(existing)? else {
        return Ok(format!("{HEADER}\n{row}\n").into_bytes());
    };
    let mut body = existing.to_vec();
    if !body.ends_with(b"\n") {
        body.push(b'\n');
    }
    body.extend_from_slice(row.as_bytes());
    body.push(b'\n');
    let back = records(&body).map_err(AuditError::Csv)?;
    let want: Vec<String> = records(row.as_bytes())
        .ok()
        .and_then(|mut r| r.pop())
        .unwrap_or_default();
    if back.len() != rows.len() + 2 || back.last() != Some(&want) {
        return Err(AuditError::RowSwallowed);
    }
    Ok(body)
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
    encode_row(&[
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
    ])
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
/// So is a log that is not an upstream `audit.csv` (binary, not CSV, another
/// header, over [`MAX_LOG_BYTES`]): it is never rewritten, and the row is not
/// appended.
pub async fn append(
    storage: &dyn Storage,
    key: &str,
    row: &str,
    version_ts: &str,
) -> Result<Appended, StorageError> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let (body, cond) = match storage.get_limited(key, MAX_LOG_BYTES).await? {
            None => (
                format!("{HEADER}\n{row}\n").into_bytes(),
                PutCondition::IfAbsent,
            ),
            Some(obj) => {
                if has_rotate_row(&String::from_utf8_lossy(&obj.body), version_ts) {
                    return Ok(Appended::AlreadyPresent);
                }
                let body = appended(&obj.body, row).map_err(|why| {
                    StorageError::new(StorageErrorKind::Other, "append", key, why.to_string())
                })?;
                (body, PutCondition::IfMatch(obj.etag))
            }
        };
        match storage.put(key, body, cond, &Meta::new()).await {
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

    fn origin() -> Origin {
        Origin {
            hostname: "h".into(),
            local_ip: "10.0.0.1".into(),
            os_user: "u".into(),
            git_email: "u@example.com".into(),
            version: "v".into(),
        }
    }

    /// Upstream's `src/audit.ts` rule, restated (`docs/wire-format.md` §8.3), as an
    /// oracle.
    fn upstream_quote(field: &str) -> String {
        if field.contains(['"', ',', '\n', '\r']) {
            format!("\"{}\"", field.replace('"', "\"\""))
        } else {
            field.to_owned()
        }
    }

    #[test]
    fn rows_equal_upstream_join_of_quoted_fields() {
        let alphabet = ["", "a", ",", "\"", "\n", "\r", " ", "x\"y", "é", "\\", "'"];
        for a in alphabet {
            for b in alphabet {
                let field = format!("{a}{b}{a}");
                let o = Origin {
                    hostname: field.clone(),
                    ..origin()
                };
                let row = rotate_row("ts", "20260101-000000", &o, &field);
                let want = [
                    "ts",
                    "rotate",
                    "20260101-000000",
                    &field,
                    "10.0.0.1",
                    "u",
                    "u@example.com",
                    "v",
                    "",
                    &field,
                ]
                .map(upstream_quote)
                .join(",");
                assert_eq!(row, want, "{field:?}");
            }
        }
    }

    #[test]
    fn quoting_matches_upstream_field_by_field() {
        // Upstream quotes a field only when it holds `"`, `,`, LF or CR; empty stays empty.
        let cases = [
            ("plain", "plain"),
            ("", ""),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""),
            ("cr\rhere", "\"cr\rhere\""),
            ("crlf\r\n", "\"crlf\r\n\""),
            (" spaced ", " spaced "),
            ("tab\there", "tab\there"),
            ("#hash;semi", "#hash;semi"),
            ("ünïcödé", "ünïcödé"),
        ];
        for (field, want) in cases {
            assert_eq!(upstream_quote(field), want, "the oracle itself");
            let row = rotate_row("t", "s", &origin(), field);
            let meta_cell = row.splitn(10, ',').nth(9).unwrap();
            assert_eq!(meta_cell, want, "field {field:?}");
            // And it reads back as the same field, whatever it holds.
            let rows = parse(&format!("{HEADER}\n{row}\n"));
            assert_eq!(rows.len(), 1, "{field:?}");
            assert_eq!(rows[0][9], ("meta".into(), field.into()), "{field:?}");
        }
    }

    #[test]
    fn meta_with_commas_quotes_and_newlines_round_trips() {
        let meta = rotate_meta(
            &[
                ("note".into(), "line one,\nline \"two\"\r\nthree".into()),
                ("k,ey".into(), "v".into()),
            ],
            7,
            6,
        );
        let row = rotate_row(
            "2026-05-23T11:42:07.512Z",
            "20260523-114207",
            &origin(),
            &meta,
        );
        let log = format!("{HEADER}\n{row}\n");
        let rows = parse(&log);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0][9].1, meta);
        assert_eq!(rows[0][2].1, "20260523-114207");
        assert!(has_rotate_row(&log, "20260523-114207"));
        // A second row after it is still a row of its own.
        let again = appended(
            log.as_bytes(),
            &rotate_row("t2", "20260523-114208", &origin(), ""),
        )
        .unwrap();
        let rows = parse(std::str::from_utf8(&again).unwrap());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1][2].1, "20260523-114208");
    }

    #[test]
    fn reads_crlf_a_last_row_without_newline_and_blank_lines() {
        let crlf = format!("{HEADER}\r\n2026,push,20260101-000000,h,,u,,0.17.0,1.3.0,\r\n\r\n2026,pull,20260101-000001,h,,u,,0.17.0,1.3.0,\"{{\"\"a\"\":\"\"b\"\"}}\"");
        let rows = parse(&crlf);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][1].1, "push");
        assert_eq!(rows[1][1].1, "pull");
        assert_eq!(rows[1][9].1, r#"{"a":"b"}"#);
        assert_eq!(rows[0][9].1, "", "no stray CR in the last field");
        // Appending keeps every existing byte and adds the missing line end first.
        let row = rotate_row("t", "20260101-000002", &origin(), "");
        let body = appended(crlf.as_bytes(), &row).unwrap();
        assert!(body.starts_with(crlf.as_bytes()));
        assert_eq!(&body[crlf.len()..], format!("\n{row}\n").as_bytes());
        assert_eq!(parse(std::str::from_utf8(&body).unwrap()).len(), 3);
    }

    #[test]
    fn a_header_only_log_and_an_empty_one() {
        assert!(parse(&format!("{HEADER}\n")).is_empty());
        assert!(parse(HEADER).is_empty());
        assert!(parse("").is_empty());
        let row = rotate_row("t", "20260101-000000", &origin(), "");
        for existing in [format!("{HEADER}\n"), HEADER.to_owned()] {
            let body = appended(existing.as_bytes(), &row).unwrap();
            assert_eq!(body, format!("{HEADER}\n{row}\n").into_bytes());
        }
        // Empty (or whitespace) is a log nobody started: header first.
        for existing in ["", "\n", "  \r\n"] {
            let body = appended(existing.as_bytes(), &row).unwrap();
            assert_eq!(
                body,
                format!("{HEADER}\n{row}\n").into_bytes(),
                "{existing:?}"
            );
        }
        // Columns added on the right by a newer upstream are kept.
        let wider = format!("{HEADER},extra\n");
        assert!(appended(wider.as_bytes(), &row).is_ok());
    }

    #[test]
    fn a_log_that_is_not_an_audit_csv_is_left_alone() {
        let row = rotate_row("t", "20260101-000000", &origin(), "");
        let garbage: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let unterminated = format!("{HEADER}\n2026,push,x,h,,u,,v,,\"{{open\n");
        let cases: [(&str, &[u8]); 4] = [
            ("binary", &garbage),
            ("another header", b"a,b,c\n1,2,3\n"),
            ("unterminated quote", unterminated.as_bytes()),
            ("header cut short", b"ts,action,version_ts\n"),
        ];
        for (what, existing) in cases {
            let e = appended(existing, &row).unwrap_err().to_string();
            assert!(e.starts_with("BundleCorruptError: "), "{what}: {e}");
            assert!(e.ends_with("; it was left exactly as it is"), "{what}: {e}");
        }
        let e = appended(&garbage, &row).unwrap_err();
        assert!(
            matches!(e, AuditError::NotUtf8 { valid_up_to: 128 }),
            "{e:?}"
        );
        assert!(matches!(
            appended(b"a,b,c\n1,2,3\n", &row),
            Err(AuditError::NotUpstreamHeader)
        ));
        assert!(matches!(
            appended(b"ts,action,version_ts\n", &row),
            Err(AuditError::NotUpstreamHeader)
        ));
        assert!(matches!(
            appended(unterminated.as_bytes(), &row),
            Err(AuditError::RowSwallowed)
        ));
        // Lenient reading for display never fails.
        let _ = parse(&String::from_utf8_lossy(&garbage));
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
