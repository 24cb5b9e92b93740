//! RQE1: AES-256-GCM under a PBKDF2-HMAC-SHA256 key (`docs/wire-format.md` §4).

use super::error::{VaultError, VaultErrorKind};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use vsync_orchestrate_api::Passphrase;
use zeroize::Zeroizing;

pub const MAGIC: &[u8; 4] = b"RQE1";
pub const IV_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Header plus tag: an envelope of an empty plaintext. Not 48, whatever the
/// upstream vector description says.
pub const MIN_LEN: usize = 4 + IV_LEN + TAG_LEN;
pub const DEFAULT_ITERATIONS: u32 = 600_000;

/// Salt and work factor: what the deployed `VSYNC_CONFIG` carries and rotation keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdfParams {
    /// The salt *string*; its UTF-8 bytes are the PBKDF2 salt. Never base64-decoded.
    pub salt: String,
    pub iterations: u32,
}

impl KdfParams {
    pub fn new(salt: impl Into<String>, iterations: u32) -> Self {
        KdfParams {
            salt: salt.into(),
            iterations,
        }
    }
}

/// A derived 256-bit key, zeroized on drop.
pub struct Key(Zeroizing<[u8; 32]>);

impl Key {
    pub fn derive(passphrase: &Passphrase, kdf: &KdfParams) -> Key {
        let mut out = Zeroizing::new([0u8; 32]);
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
            passphrase.expose().as_bytes(),
            kdf.salt.as_bytes(),
            kdf.iterations,
            out.as_mut(),
        );
        Key(out)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Checks the header in the order the upstream readers do, so a corrupt envelope
/// is never reported as a wrong passphrase and vice versa.
pub fn check_header(envelope: &[u8]) -> Result<(), VaultError> {
    if envelope.len() < MIN_LEN {
        return Err(VaultError::corrupt(format!(
            "RQE1 envelope is {} bytes, shorter than the {MIN_LEN}-byte minimum",
            envelope.len()
        )));
    }
    if &envelope[..3] != b"RQE" {
        return Err(VaultError::corrupt("bad RQE1 magic"));
    }
    if envelope[3] != b'1' {
        return Err(VaultError::new(
            VaultErrorKind::UnsupportedSpecVersion,
            format!(
                "RQE envelope version byte {:?}, only '1' is understood",
                envelope[3] as char
            ),
        ));
    }
    Ok(())
}

pub fn decrypt(key: &Key, envelope: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    check_header(envelope)?;
    let cipher = Aes256Gcm::new_from_slice(key.bytes()).expect("32-byte key");
    let nonce = Nonce::from_slice(&envelope[4..4 + IV_LEN]);
    cipher
        .decrypt(nonce, &envelope[4 + IV_LEN..])
        .map(Zeroizing::new)
        .map_err(|_| {
            VaultError::new(
                VaultErrorKind::WrongPassphrase,
                "GCM authentication failed: wrong passphrase, salt or iterations, or a tampered bundle",
            )
        })
}

/// Encrypts with a fresh random IV: reusing an IV under one key breaks GCM.
pub fn encrypt(key: &Key, plaintext: &[u8]) -> Vec<u8> {
    let mut iv = [0u8; IV_LEN];
    getrandom::fill(&mut iv).expect("the OS random source is available");
    let cipher = Aes256Gcm::new_from_slice(key.bytes()).expect("32-byte key");
    let sealed = cipher
        .encrypt(Nonce::from_slice(&iv), plaintext)
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = Vec::with_capacity(4 + IV_LEN + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&iv);
    out.extend_from_slice(&sealed);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_uses_fresh_ivs() {
        let kdf = KdfParams::new("0123456789abcdef0123", 1000);
        let key = Key::derive(&Passphrase::from("a passphrase of some length"), &kdf);
        let a = encrypt(&key, b"payload");
        let b = encrypt(&key, b"payload");
        assert_ne!(a[4..16], b[4..16], "two encryptions reused an IV");
        assert_eq!(a.len(), 7 + MIN_LEN);
        assert_eq!(&decrypt(&key, &a).unwrap()[..], b"payload");
        let other = Key::derive(&Passphrase::from("another passphrase entirely"), &kdf);
        assert_eq!(
            decrypt(&other, &a).unwrap_err().kind,
            VaultErrorKind::WrongPassphrase
        );
    }
}
