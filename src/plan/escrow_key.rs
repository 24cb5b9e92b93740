//! The `[escrow]` section's keys: age X25519 recipients. Checked when the plan is
//! validated and used when the engine seals; defined once, here.

use std::str::FromStr;

/// Why a string is not an age X25519 recipient. Holds only the first characters of
/// what was given: a plan may paste something it should not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{shown:?}… is not an age X25519 public key (age1…): {why}")]
pub struct RecipientError {
    /// The first 12 characters of the value.
    pub shown: String,
    /// age's own reason.
    pub why: String,
}

/// An `age1…` X25519 recipient, or why it is not one.
pub fn parse_recipient(s: &str) -> Result<age::x25519::Recipient, RecipientError> {
    age::x25519::Recipient::from_str(s.trim()).map_err(|e| RecipientError {
        shown: s.chars().take(12).collect(),
        why: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_key_is_shown_by_its_first_characters_only() {
        let e = parse_recipient("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIsecret").unwrap_err();
        assert_eq!(e.shown, "ssh-ed25519 ");
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(
            e.to_string().contains("is not an age X25519 public key"),
            "{e}"
        );
    }
}
