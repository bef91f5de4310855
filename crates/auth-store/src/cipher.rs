//! Encryption at rest: [`Cipher`], an XChaCha20-Poly1305 key that the file and Redis stores
//! apply to every entry they write.

use std::{fmt, path::Path};

use base64::Engine as _;
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, AeadCore, OsRng, Payload},
};
use zeroize::Zeroizing;

/// The length of a key, in bytes.
pub const KEY_LEN: usize = 32;

/// The length of a nonce, in bytes (random per write).
pub(crate) const NONCE_LEN: usize = 24;

/// The name written into every encrypted entry.
pub(crate) const ALGORITHM: &str = "xchacha20poly1305";

/// A key for encryption at rest (XChaCha20-Poly1305, 32 bytes).
///
/// Every write draws a fresh random 24-byte nonce from the operating system, and the store key
/// is authenticated with the entry (associated data), so an entry copied to another key does
/// not decrypt. A wrong key or a tampered entry reads as [`StoreError::Corrupt`] with the
/// message "cannot decrypt: wrong key or tampered entry".
///
/// The key is zeroed when the `Cipher` is dropped and never printed: `Debug` shows only the
/// key id, a 4-byte fingerprint that reveals nothing about the key but tells two keys apart.
///
/// [`StoreError::Corrupt`]: auth_core::StoreError::Corrupt
#[derive(Clone)]
pub struct Cipher {
    key: Zeroizing<[u8; KEY_LEN]>,
    key_id: String,
}

/// A key that cannot be used: missing, unreadable, or not 32 bytes.
///
/// Converts into an [`auth_core::Error`] of kind `Configuration`. The message never contains
/// key material.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct KeyError {
    message: String,
}

impl KeyError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl From<KeyError> for auth_core::Error {
    fn from(e: KeyError) -> Self {
        auth_core::Error::configuration(e.message.clone()).with_source(e)
    }
}

impl Cipher {
    /// A cipher from 32 raw key bytes.
    pub fn from_key_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            KeyError::new(format!(
                "an encryption key must be {KEY_LEN} bytes, not {}",
                bytes.len()
            ))
        })?;
        let key = Zeroizing::new(key);
        let key_id = key_id(&key);
        Ok(Self { key, key_id })
    }

    /// A cipher from a key written as text: standard or URL-safe base64 (with or without
    /// padding) or 64 hexadecimal digits. Surrounding whitespace is ignored.
    pub fn from_encoded(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let bytes = decode_key_text(text).ok_or_else(|| {
            KeyError::new(format!(
                "an encryption key must be {KEY_LEN} bytes written as base64 or 64 hex digits"
            ))
        })?;
        Self::from_key_bytes(&bytes)
    }

    /// A cipher from the environment variable `var` (base64 or hex, see
    /// [`from_encoded`](Self::from_encoded)).
    pub fn from_env(var: &str) -> Result<Self, KeyError> {
        let value = Zeroizing::new(std::env::var(var).map_err(|e| match e {
            std::env::VarError::NotPresent => {
                KeyError::new(format!("the environment variable `{var}` is not set"))
            }
            std::env::VarError::NotUnicode(_) => KeyError::new(format!(
                "the environment variable `{var}` is not valid text"
            )),
        })?);
        Self::from_encoded(&value).map_err(|e| KeyError::new(format!("`{var}`: {e}")))
    }

    /// A cipher from a key file: the key as text — base64 or 64 hex digits, what
    /// [`from_encoded`](Self::from_encoded) reads, surrounding whitespace ignored — or exactly
    /// 32 raw bytes.
    ///
    /// The two are told apart without guessing: a file whose bytes are all printable ASCII or
    /// whitespace is text, anything else is raw. So a 32-byte text file (32 hex digits, 32
    /// base64 characters) is read as text — and refused, as it does not hold 32 bytes — rather
    /// than silently used as a raw key made of its characters. (Random raw keys are all
    /// printable with a probability below 10⁻¹³; such a key is refused too, never misread.)
    ///
    /// A key file that others can read is accepted with a warning in the log.
    pub fn from_key_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
            KeyError::new(format!("cannot read the key file {}: {e}", path.display()))
        })?);
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt as _;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the key file is readable by other users; make it mode 0600");
            }
        }
        let is_text = bytes
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
        if !is_text {
            if bytes.len() == KEY_LEN {
                return Self::from_key_bytes(&bytes);
            }
            return Err(KeyError::new(format!(
                "the key file {} is neither 32 raw bytes nor the key as base64 or hex text",
                path.display()
            )));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            KeyError::new(format!(
                "the key file {} is neither 32 bytes nor text",
                path.display()
            ))
        })?;
        Self::from_encoded(text)
            .map_err(|e| KeyError::new(format!("the key file {}: {e}", path.display())))
    }

    /// A new random key from the operating system, as standard base64 (what
    /// [`from_encoded`](Self::from_encoded) and [`from_env`](Self::from_env) read). The returned
    /// text is zeroed when dropped.
    pub fn generate_key_base64() -> Zeroizing<String> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&XChaCha20Poly1305::generate_key(&mut OsRng));
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.as_slice()))
    }

    /// A short fingerprint of the key (8 hex digits), written into every entry it encrypts so a
    /// wrong key can be told from a tampered entry. It reveals nothing about the key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    fn aead(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.as_ref().into())
    }

    /// Encrypts `plaintext`, binding it to `aad`. Returns the nonce and the ciphertext.
    pub(crate) fn seal(
        &self,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), SealError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .aead()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SealError)?;
        Ok((nonce.into(), ciphertext))
    }

    /// Decrypts and authenticates; `None` for a wrong key or tampered data.
    pub(crate) fn open(
        &self,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        if nonce.len() != NONCE_LEN {
            return None;
        }
        let nonce = XNonce::from_slice(nonce);
        self.aead()
            .decrypt(
                nonce,
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

/// Encryption failed (only possible for absurdly large entries).
#[derive(Debug, thiserror::Error)]
#[error("encryption failed")]
pub(crate) struct SealError;

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cipher")
            .field("algorithm", &ALGORITHM)
            .field("key", &"[redacted]")
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// A fingerprint of the key: the first 4 bytes of the Poly1305 tag of an empty message under a
/// fixed nonce and label. Computing it needs the key; learning the key from it is as hard as
/// forging a tag.
fn key_id(key: &[u8; KEY_LEN]) -> String {
    let aead = XChaCha20Poly1305::new(key.into());
    let nonce = XNonce::default();
    let tag = aead
        .encrypt(
            &nonce,
            Payload {
                msg: &[],
                aad: b"kunci key id v1",
            },
        )
        .unwrap_or_default();
    tag.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

fn decode_key_text(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    if text.len() == KEY_LEN * 2 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let bytes = (0..KEY_LEN)
            .map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        return Some(Zeroizing::new(bytes));
    }
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_key_id_is_stable() {
        let cipher = Cipher::from_key_bytes(&[7u8; 32]).unwrap();
        let printed = format!("{cipher:?} {cipher:#?}");
        assert!(printed.contains("[redacted]"), "{printed}");
        assert!(!printed.contains("7, 7"), "{printed}");
        assert_eq!(cipher.key_id().len(), 8);
        assert_eq!(
            cipher.key_id(),
            Cipher::from_key_bytes(&[7u8; 32]).unwrap().key_id()
        );
        assert_ne!(
            cipher.key_id(),
            Cipher::from_key_bytes(&[8u8; 32]).unwrap().key_id()
        );
    }

    #[test]
    fn keys_are_read_as_hex_or_base64() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let from_hex = Cipher::from_encoded(hex).unwrap();
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        assert_eq!(
            Cipher::from_encoded(&format!(" {b64}\n")).unwrap().key_id(),
            from_hex.key_id()
        );
        let generated = Cipher::generate_key_base64();
        assert!(Cipher::from_encoded(&generated).is_ok());
        for bad in ["", "abc", "00112233", &"zz".repeat(32)] {
            let err = Cipher::from_encoded(bad).unwrap_err();
            assert!(err.to_string().contains("32 bytes"), "{err}");
        }
        let err = Cipher::from_key_bytes(&[1u8; 16]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "an encryption key must be 32 bytes, not 16"
        );
    }

    #[test]
    fn a_32_byte_key_file_of_text_is_read_as_text_never_as_raw_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        // 32 hex digits (a 16-byte key) and 32 base64 characters (24 bytes): text, too short.
        for text in [
            "00112233445566778899aabbccddeeff",
            "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
        ] {
            assert_eq!(text.len(), KEY_LEN);
            std::fs::write(&path, text).unwrap();
            let err = Cipher::from_key_file(&path).unwrap_err();
            assert!(err.to_string().contains("32 bytes"), "{err}");
            assert!(!err.to_string().contains(text), "{err}");
        }
        // The documented text forms work, with a final line break.
        let encoded = Cipher::generate_key_base64();
        std::fs::write(&path, format!("{}\n", encoded.as_str())).unwrap();
        assert_eq!(
            Cipher::from_key_file(&path).unwrap().key_id(),
            Cipher::from_encoded(&encoded).unwrap().key_id()
        );
        // 32 raw bytes (not all printable) are a raw key.
        let mut raw = [b'a'; KEY_LEN];
        raw[5] = 0x00;
        raw[20] = 0xff;
        std::fs::write(&path, raw).unwrap();
        assert_eq!(
            Cipher::from_key_file(&path).unwrap().key_id(),
            Cipher::from_key_bytes(&raw).unwrap().key_id()
        );
        // Other binary sizes are refused.
        std::fs::write(&path, [0u8; 31]).unwrap();
        assert!(Cipher::from_key_file(&path).is_err());
    }

    #[test]
    fn seal_and_open_bind_the_associated_data() {
        let cipher = Cipher::from_key_bytes(&[1u8; 32]).unwrap();
        let (nonce, ct) = cipher.seal(b"hello", b"key-a").unwrap();
        assert_eq!(&*cipher.open(&nonce, &ct, b"key-a").unwrap(), b"hello");
        assert!(cipher.open(&nonce, &ct, b"key-b").is_none());
        let other = Cipher::from_key_bytes(&[2u8; 32]).unwrap();
        assert!(other.open(&nonce, &ct, b"key-a").is_none());
        let (nonce2, _) = cipher.seal(b"hello", b"key-a").unwrap();
        assert_ne!(nonce, nonce2, "a fresh nonce per write");
    }
}
