//! RQEM0001: the stamp seal that binds a bundle to the pointer naming it
//! (`docs/wire-format.md` §5).

use super::error::VaultError;
use super::stamp::Stamp;

pub const MAGIC: &[u8; 8] = b"RQEM0001";
pub const HEADER_LEN: usize = 8 + Stamp::LEN;

pub fn seal(stamp: &Stamp, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(stamp.as_str().as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits a sealed buffer into its embedded stamp and payload.
pub fn unseal(bytes: &[u8]) -> Result<(Stamp, &[u8]), VaultError> {
    if bytes.len() < HEADER_LEN {
        return Err(VaultError::corrupt(
            "RQEM0001 seal shorter than its 23-byte header",
        ));
    }
    if &bytes[..8] != MAGIC {
        return Err(VaultError::corrupt("bad RQEM0001 magic"));
    }
    let stamp = std::str::from_utf8(&bytes[8..HEADER_LEN])
        .ok()
        .and_then(|s| Stamp::parse(s).ok())
        .ok_or_else(|| VaultError::corrupt("RQEM0001 stamp is not YYYYMMDD-HHMMSS"))?;
    Ok((stamp, &bytes[HEADER_LEN..]))
}

/// Unseals and checks the embedded stamp against the one the pointer claims: a
/// mismatch is an old bundle presented as current (or upstream's unsealed rotate).
pub fn unseal_expecting<'a>(
    bytes: &'a [u8],
    claimed: &Stamp,
) -> Result<(Stamp, &'a [u8]), VaultError> {
    let (embedded, payload) = unseal(bytes)?;
    if &embedded != claimed {
        return Err(VaultError::corrupt(format!(
            "embedded stamp {embedded} does not match the pointer's {claimed}"
        )));
    }
    Ok((embedded, payload))
}
