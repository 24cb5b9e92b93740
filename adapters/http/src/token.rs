//! A bearer token: the one credential type of the REST adapters.

use reqwest::header::HeaderValue;
use vsync_orchestrate_api::{Error, Result};
use zeroize::Zeroizing;

/// An API token, sent as `Authorization: Bearer …` (or, built with
/// [`BearerToken::with_scheme`], as the whole `Authorization` value).
///
/// Like a passphrase it has no `Display`, a redacted `Debug`, and is zeroized on
/// drop; the header built from it is marked sensitive so no HTTP layer logs it.
pub struct BearerToken(Zeroizing<String>);

/// Refuses what cannot be (part of) a header value; `spaces` allows the one
/// between a scheme and its credentials.
fn checked(t: &str, spaces: bool) -> Result<()> {
    if t.is_empty() {
        return Err(Error::invalid_config("the API token is empty"));
    }
    if !t
        .chars()
        .all(|c| c.is_ascii_graphic() || (spaces && c == ' '))
    {
        return Err(Error::invalid_config(
            "the API token contains spaces, control or non-ASCII characters",
        ));
    }
    Ok(())
}

impl BearerToken {
    /// Refuses what cannot be a header value (control characters, a line break a
    /// file or an environment variable left at the end is trimmed first).
    pub fn new(token: impl Into<String>) -> Result<Self> {
        let mut t = Zeroizing::new(token.into());
        let keep = t.trim_end_matches(['\r', '\n', '\t', ' ']).len();
        t.truncate(keep);
        checked(&t, false)?;
        Ok(BearerToken(Zeroizing::new(format!(
            "Bearer {}",
            t.as_str()
        ))))
    }

    /// A token that is a whole `Authorization` value with its own scheme, sent
    /// verbatim (Fly.io tokens from `fly tokens create` start `FlyV1 `). Single
    /// spaces are allowed inside; control characters are not.
    pub fn with_scheme(value: impl Into<String>) -> Result<Self> {
        let mut t = Zeroizing::new(value.into());
        let keep = t.trim_end_matches(['\r', '\n', '\t', ' ']).len();
        t.truncate(keep);
        checked(&t, true)?;
        if !t.contains(' ') {
            return Err(Error::invalid_config(
                "an Authorization value with a scheme has the form \"<scheme> <credentials>\"",
            ));
        }
        Ok(BearerToken(t))
    }

    pub(crate) fn header_value(&self) -> HeaderValue {
        let text = Zeroizing::new(self.0.as_str().to_owned());
        let mut v = HeaderValue::from_str(&text).expect("checked in BearerToken::new");
        v.set_sensitive(true);
        v
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_trimmed_checked_and_redacted() {
        let t = BearerToken::new("abc.DEF-123\n").unwrap();
        assert_eq!(t.header_value().to_str().unwrap(), "Bearer abc.DEF-123");
        assert!(t.header_value().is_sensitive());
        assert_eq!(format!("{t:?}"), "BearerToken(<redacted>)");
        assert!(BearerToken::new("\n").is_err());
        assert!(BearerToken::new("a b").is_err());
        assert!(BearerToken::new("a\u{e9}").is_err());
        let f = BearerToken::with_scheme("FlyV1 fm2_abc,fm2_def\n").unwrap();
        assert_eq!(f.header_value().to_str().unwrap(), "FlyV1 fm2_abc,fm2_def");
        assert!(f.header_value().is_sensitive());
        assert!(BearerToken::with_scheme("nospace").is_err());
        assert!(BearerToken::with_scheme("FlyV1 a\tb").is_err());
    }
}
