use std::fmt;
use zeroize::Zeroizing;

/// A vault passphrase.
///
/// It has no `Display`, its `Debug` is redacted, it implements no serde trait, and
/// its buffer is zeroized on drop: the only way to the bytes is [`Passphrase::expose`],
/// which makes every place that touches the value easy to find in review.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    pub fn new(value: String) -> Self {
        Passphrase(Zeroizing::new(value))
    }

    /// A passphrase read from a file, with the vsync runtime libraries' rule for
    /// `VSYNC_PASSPHRASE_FILE`: trailing CR, LF, tab and space are not part of it.
    /// Truncates in place, so the value is never copied.
    pub fn from_file_contents(mut text: String) -> Self {
        let keep = text.trim_end_matches(['\r', '\n', '\t', ' ']).len();
        text.truncate(keep);
        Passphrase::new(text)
    }

    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    pub fn len(&self) -> usize {
        self.0.chars().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// SHA-256 of the value, for comparing a remote copy without moving the value
    /// back over the wire. Never persisted or printed.
    pub fn sha256_hex(&self) -> String {
        use sha2::Digest;
        let d = sha2::Sha256::digest(self.0.as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Constant-time-ish equality; avoids early exit on the first differing byte.
    pub fn same_as(&self, other: &Passphrase) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl From<&str> for Passphrase {
    fn from(s: &str) -> Self {
        Passphrase::new(s.to_owned())
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let p = Passphrase::from("hunter2-hunter2-hunter2");
        let shown = format!("{p:?} {:?}", Some(&p));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn equality_compares_whole_value() {
        let a = Passphrase::from("abcdefghijkl");
        assert!(a.same_as(&Passphrase::from("abcdefghijkl")));
        assert!(!a.same_as(&Passphrase::from("abcdefghijkm")));
        assert!(!a.same_as(&Passphrase::from("abcdefghijk")));
    }
}
