//! A bearer token: the one credential type of the REST adapters.

use reqwest::header::HeaderValue;
use vsync_orchestrate_api::{Error, Result};
use zeroize::Zeroizing;

/// An API token, sent as `Authorization: Bearer …`.
///
/// Like a passphrase it has no `Display`, a redacted `Debug`, and is zeroized on
/// drop; the header built from it is marked sensitive so no HTTP layer logs it.
pub struct BearerToken(Zeroizing<String>);

impl BearerToken {
    /// Refuses what cannot be a header value (control characters, a line break a
    /// file or an environment variable left at the end is trimmed first).
    pub fn new(token: impl Into<String>) -> Result<Self> {
        let mut t = Zeroizing::new(token.into());
        let keep = t.trim_end_matches(['\r', '\n', '\t', ' ']).len();
        t.truncate(keep);
        if t.is_empty() {
            return Err(Error::invalid_config("the API token is empty"));
        }
        if !t.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::invalid_config(
                "the API token contains spaces, control or non-ASCII characters",
            ));
        }
        Ok(BearerToken(t))
    }

    pub(crate) fn header_value(&self) -> HeaderValue {
        let text = Zeroizing::new(format!("Bearer {}", self.0.as_str()));
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
    }
}
