//! Credentials encrypted at rest.
//!
//! XChaCha20-Poly1305 (AEAD) with a fresh random 24-byte nonce per record,
//! and the connection id as associated data, so a ciphertext copied onto
//! another connection's row fails to open. Each ciphertext names the key
//! that sealed it (the first 8 hex digits of the key's SHA-256), so keys can
//! be rotated: the new key seals, previous keys still open until every
//! record has been re-sealed (`tributary connections rotate-key`).

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// A 256-bit key, never printed.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.id())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("a credentials key must be 64 hex digits (32 bytes)")]
    BadKey,
    #[error(
        "credentials were sealed with key {0}, which is not configured (security.credentials_key or previous_credentials_keys)"
    )]
    UnknownKey(String),
    #[error(
        "credentials of connection {0} do not decrypt: tampered, or moved from another connection"
    )]
    Tampered(String),
}

impl Key {
    /// A new random key.
    pub fn generate() -> Key {
        Key(XChaCha20Poly1305::generate_key(&mut OsRng).into())
    }

    /// Reads 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Key, SecretError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(SecretError::BadKey);
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| SecretError::BadKey)?;
        }
        Ok(Key(key))
    }

    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Names the key without revealing it.
    pub fn id(&self) -> String {
        hex(&Sha256::digest(self.0)[..4])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One sealed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Seals with the current key; opens with the current or a previous one.
#[derive(Debug, Clone)]
pub struct Cipher {
    current: Key,
    previous: Vec<Key>,
}

impl Cipher {
    pub fn new(current: Key, previous: Vec<Key>) -> Cipher {
        Cipher { current, previous }
    }

    pub fn current_key_id(&self) -> String {
        self.current.id()
    }

    pub fn seal(&self, connection_id: &str, plaintext: &[u8]) -> Sealed {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let cipher = XChaCha20Poly1305::new((&self.current.0).into());
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: connection_id.as_bytes(),
                },
            )
            // Encryption fails only for messages larger than 256 GiB.
            .unwrap_or_default();
        Sealed {
            key_id: self.current.id(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    pub fn open(&self, connection_id: &str, sealed: &Sealed) -> Result<Vec<u8>, SecretError> {
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id() == sealed.key_id)
            .ok_or_else(|| SecretError::UnknownKey(sealed.key_id.clone()))?;
        let nonce: [u8; 24] = sealed
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| SecretError::Tampered(connection_id.to_string()))?;
        XChaCha20Poly1305::new((&key.0).into())
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: connection_id.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Tampered(connection_id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_refuses_tampering() {
        let cipher = Cipher::new(Key::generate(), vec![]);
        let a = cipher.seal("conn-a", b"refresh-token-SECRET");
        let b = cipher.seal("conn-a", b"refresh-token-SECRET");
        assert_ne!(a.nonce, b.nonce, "a fresh nonce per record");
        assert_ne!(a.ciphertext, b.ciphertext);
        assert!(!String::from_utf8_lossy(&a.ciphertext).contains("SECRET"));
        assert_eq!(cipher.open("conn-a", &a).unwrap(), b"refresh-token-SECRET");
        assert_eq!(
            cipher.open("conn-b", &a),
            Err(SecretError::Tampered("conn-b".into())),
            "bound to its connection"
        );
        let mut flipped = a.clone();
        flipped.ciphertext[0] ^= 1;
        assert!(cipher.open("conn-a", &flipped).is_err());
    }

    #[test]
    fn rotation_opens_old_records_and_seals_with_the_new_key() {
        let old = Key::generate();
        let sealed = Cipher::new(old.clone(), vec![]).seal("c", b"x");
        let new = Key::generate();
        let rotated = Cipher::new(new.clone(), vec![old.clone()]);
        assert_eq!(rotated.open("c", &sealed).unwrap(), b"x");
        assert_eq!(rotated.seal("c", b"x").key_id, new.id());
        let forgot = Cipher::new(new, vec![]);
        assert_eq!(
            forgot.open("c", &sealed),
            Err(SecretError::UnknownKey(old.id()))
        );
    }

    #[test]
    fn keys_read_from_hex_and_never_print() {
        let key = Key::generate();
        let hex = key.to_hex();
        assert_eq!(Key::from_hex(&format!(" {hex}\n")).unwrap().id(), key.id());
        assert!(!format!("{key:?}").contains(&hex));
        assert_eq!(Key::from_hex("abc").unwrap_err(), SecretError::BadKey);
        assert_eq!(
            Key::from_hex(&"zz".repeat(32)).unwrap_err(),
            SecretError::BadKey
        );
    }
}
