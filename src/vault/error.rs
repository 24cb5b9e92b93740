use std::fmt;

/// The upstream runtime libraries' error taxonomy (`docs/wire-format.md` §11.1).
///
/// Conformance vectors assert on these classes, and operators recognise the names
/// from their apps' boot logs, so every vault failure maps onto exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VaultErrorKind {
    ConfigMissing,
    ConfigUnsupportedVersion,
    S3Unreachable,
    ManifestNotFound,
    WrongPassphrase,
    BundleCorrupt,
    UnsupportedSpecVersion,
}

impl VaultErrorKind {
    /// The canonical class name, as the vectors and the other libraries spell it.
    pub fn class_name(self) -> &'static str {
        match self {
            VaultErrorKind::ConfigMissing => "ConfigMissingError",
            VaultErrorKind::ConfigUnsupportedVersion => "ConfigUnsupportedVersionError",
            VaultErrorKind::S3Unreachable => "S3UnreachableError",
            VaultErrorKind::ManifestNotFound => "ManifestNotFoundError",
            VaultErrorKind::WrongPassphrase => "WrongPassphraseError",
            VaultErrorKind::BundleCorrupt => "BundleCorruptError",
            VaultErrorKind::UnsupportedSpecVersion => "UnsupportedSpecVersionError",
        }
    }
}

impl fmt::Display for VaultErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.class_name())
    }
}

/// A vault read or decode failure: the upstream class plus what exactly was wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct VaultError {
    pub kind: VaultErrorKind,
    pub detail: String,
}

impl VaultError {
    pub fn new(kind: VaultErrorKind, detail: impl Into<String>) -> Self {
        VaultError {
            kind,
            detail: detail.into(),
        }
    }
    pub fn corrupt(detail: impl Into<String>) -> Self {
        Self::new(VaultErrorKind::BundleCorrupt, detail)
    }
}

/// `s` quoted for a message, cut after 40 characters: what fails to parse may be
/// vault content of any size written by anyone, and must not become a message (and
/// a summary, and a journal entry) of any size. A 40 MiB pointer once did.
pub(crate) fn excerpt(s: &str) -> String {
    const SHOWN: usize = 40;
    match s.char_indices().nth(SHOWN) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &s[..cut], s.len()),
    }
}
