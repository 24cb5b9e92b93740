//! The `[escrow]` section's keys: age X25519 recipients. Checked when the plan is
//! validated and used when the engine seals; defined once, here.

use std::str::FromStr;

/// An `age1…` X25519 recipient, or why it is not one (never echoing more than the
/// first characters of what was given).
pub fn parse_recipient(s: &str) -> Result<age::x25519::Recipient, String> {
    age::x25519::Recipient::from_str(s.trim()).map_err(|e| {
        let shown: String = s.chars().take(12).collect();
        format!("{shown:?}… is not an age X25519 public key (age1…): {e}")
    })
}
