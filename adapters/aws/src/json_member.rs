//! Reading and replacing one string member of a JSON object held as text.
//!
//! Secrets often bundle several values in one JSON object; other tools (and humans)
//! own the other members. Re-serialising the object would reorder keys, change number
//! formatting and escapes, so the other members are kept byte for byte by splicing the
//! new value into the original text instead.

use vsync_orchestrate_api::{Error, Passphrase, Result};

/// Byte range of the value of `key` in the top-level object `text`.
fn member_value_span(text: &str, key: &str) -> Result<std::ops::Range<usize>> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return Err(Error::invalid_config(
            "the secret is not a JSON object (json_key is set)",
        ));
    }
    i = skip_ws(b, i + 1);
    let mut found: Option<std::ops::Range<usize>> = None;
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if b.get(i) != Some(&b'"') {
                return Err(malformed());
            }
            let key_end = scan_string(b, i)?;
            let name: String = serde_json::from_str(&text[i..key_end]).map_err(|_| malformed())?;
            i = skip_ws(b, key_end);
            if b.get(i) != Some(&b':') {
                return Err(malformed());
            }
            let start = skip_ws(b, i + 1);
            let end = scan_value(b, start)?;
            if name == key {
                if found.is_some() {
                    return Err(Error::invalid_config(format!(
                        "the secret's JSON has key `{key}` more than once"
                    )));
                }
                found = Some(start..end);
            } else {
                // Validate other members without keeping them; they are not secret to us
                // but must be well-formed for the splice to be safe.
                serde_json::from_str::<serde_json::Value>(&text[start..end])
                    .map_err(|_| malformed())?;
            }
            i = skip_ws(b, end);
            match b.get(i) {
                Some(b',') => i = skip_ws(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return Err(malformed()),
            }
        }
    }
    if skip_ws(b, i) != b.len() {
        return Err(malformed());
    }
    found.ok_or_else(|| {
        Error::invalid_config(format!(
            "the secret's JSON object has no key `{key}` (json_key)"
        ))
    })
}

/// The passphrase stored under `key`.
pub(crate) fn extract(text: &str, key: &str) -> Result<Passphrase> {
    let span = member_value_span(text, key)?;
    let raw = &text[span];
    if !raw.starts_with('"') {
        return Err(Error::invalid_config(format!(
            "the value under JSON key `{key}` is not a string"
        )));
    }
    let value: String = serde_json::from_str(raw).map_err(|_| malformed())?;
    Ok(Passphrase::new(value))
}

/// `text` with only the value under `key` replaced by `new`.
pub(crate) fn replace(text: &str, key: &str, new: &Passphrase) -> Result<Passphrase> {
    let span = member_value_span(text, key)?;
    if !text[span.clone()].starts_with('"') {
        return Err(Error::invalid_config(format!(
            "the value under JSON key `{key}` is not a string"
        )));
    }
    let encoded = Passphrase::new(
        serde_json::to_string(new.expose())
            .map_err(|_| Error::failed("could not encode the passphrase as JSON"))?,
    );
    let mut out = String::with_capacity(text.len() + encoded.expose().len());
    out.push_str(&text[..span.start]);
    out.push_str(encoded.expose());
    out.push_str(&text[span.end..]);
    Ok(Passphrase::new(out))
}

// Deliberately says nothing about where: the text may hold secrets.
fn malformed() -> Error {
    Error::invalid_config("the secret's value is not well-formed JSON (json_key is set)")
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `b[i]` is an opening quote; returns the index just past the closing quote.
fn scan_string(b: &[u8], mut i: usize) -> Result<usize> {
    i += 1;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(malformed())
}

/// Returns the index just past the JSON value starting at `i`.
fn scan_value(b: &[u8], i: usize) -> Result<usize> {
    match b.get(i) {
        Some(b'"') => scan_string(b, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while let Some(&c) = b.get(j) {
                match c {
                    b'"' => {
                        j = scan_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Err(malformed())
        }
        Some(_) => {
            let mut j = i;
            while let Some(&c) = b.get(j) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                j += 1;
            }
            if j == i {
                Err(malformed())
            } else {
                Ok(j)
            }
        }
        None => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "{ \"db_url\" : \"postgres://x\",\n  \"n\": 1.50, \"nested\": {\"a\": [1, \"}\"]},\"pw\":\"old\\u0041\" , \"z\":null }";

    #[test]
    fn extracts_the_member() {
        assert_eq!(extract(DOC, "pw").unwrap().expose(), "oldA");
    }

    #[test]
    fn replaces_only_the_member() {
        let new = Passphrase::from("n\"e\\w");
        let out = replace(DOC, "pw", &new).unwrap();
        let expected = DOC.replace("\"old\\u0041\"", "\"n\\\"e\\\\w\"");
        assert_eq!(out.expose(), expected);
        assert!(extract(out.expose(), "pw").unwrap().same_as(&new));
    }

    #[test]
    fn refuses_what_it_cannot_splice() {
        assert!(extract("[1]", "pw").is_err());
        assert!(extract("{\"pw\": 3}", "pw").is_err());
        assert!(extract("{\"a\": 1}", "pw").is_err());
        assert!(extract("{\"pw\": \"a\", \"pw\": \"b\"}", "pw").is_err());
        assert!(extract("{\"pw\": \"a\"", "pw").is_err());
        assert!(extract("{\"pw\": \"a\"} x", "pw").is_err());
        assert!(extract("{\"x\": tru, \"pw\": \"a\"}", "pw").is_err());
    }
}
