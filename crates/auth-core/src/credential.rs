//! Tying a stored entry to the credential that made it.
//!
//! A source declares the credential it was configured with
//! ([`TokenSource::credential`](crate::TokenSource::credential)):
//! the secret parts (a refresh token, a device key, a client secret, a static token) and any
//! public parts that select the account (a merchant id). The manager turns it into a
//! [`Fingerprint`] and stores that with every entry it saves; an entry whose fingerprint is
//! not the manager's was made with another credential — the operator replaced a leaked one,
//! or pointed the process at another device — and is not adopted: its token is not served,
//! its refresh material is not used, and the next save replaces it.
//!
//! # The construction, and why this key
//!
//! The fingerprint is `HMAC-SHA-256(key = SHA-256(the credential's parts), message = a label
//! and the store key)`, cut to 128 bits and written as `hmac-sha256:<32 hex digits>`.
//!
//! - **The key is the credential itself** (its digest). The HMAC's key is the one secret that
//!   every process configured with this credential holds and that a reader of the store does
//!   not: the fingerprint can only be recomputed — and so checked — by someone who has the
//!   credential, and it reveals nothing about it (HMAC is a pseudorandom function of its key).
//!   A separate fingerprint key would have to be configured and shared across the fleet and
//!   kept as carefully as the credential, for no gain: whoever reads the entry also reads the
//!   token and refresh material stored beside the fingerprint (and with `KUNCI_STORE_KEY` the
//!   fingerprint sits inside the ciphertext with them).
//! - **The message is the store key**, so the same credential under two accounts gives
//!   unrelated fingerprints: entries of different accounts cannot be linked by comparing them.
//! - **The parts are length-prefixed and labelled** before hashing, so `("ab", "c")` and
//!   `("a", "bc")`, or a refresh token and a device key swapped, give different credentials.
//! - **128 bits** are plenty for telling two credentials apart (a collision needs about 2^64
//!   credentials) and keep the entry short.
//!
//! What it cannot do: a credential that can be guessed (a short password) can be tested
//! against a fingerprint offline, as against any hash of it. The credentials kunci's providers
//! issue are long random values (JWTs, 40-hex secrets, Cognito refresh tokens), where guessing
//! is hopeless.

use std::fmt;

use hmac::{Hmac, Mac as _, digest::KeyInit};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

use crate::store::StoreKey;

const LABEL: &[u8] = b"kunci credential fingerprint v1\0";
const PREFIX: &str = "hmac-sha256:";

/// The credential a source was configured with, as the parts that identify it. Built by a
/// provider crate in its [`TokenSource::credential`](crate::TokenSource::credential) override:
///
/// ```
/// use auth_core::{Credential, StoreKey};
/// use secrecy::SecretString;
///
/// let refresh = SecretString::from("eyJjdHkiOiJKV1QiLCJlbmMi…");
/// let device = SecretString::from("ap-southeast-1_3445xxxxx");
/// let credential = Credential::new("krmpesan")
///     .secret("refresh_token", &refresh)
///     .secret("device_key", &device);
/// let key = StoreKey::new("krmpesan:default")?;
/// let fingerprint = credential.fingerprint(&key);
/// assert!(fingerprint.as_str().starts_with("hmac-sha256:"));
/// assert!(!fingerprint.as_str().contains("eyJ"));
/// // another device: another fingerprint
/// let other = SecretString::from("ap-southeast-1_9999xxxxx");
/// let moved = Credential::new("krmpesan").secret("refresh_token", &refresh).secret("device_key", &other);
/// assert_ne!(moved.fingerprint(&key), fingerprint);
/// # Ok::<(), auth_core::Error>(())
/// ```
///
/// It holds a running hash of the parts, never the parts themselves; `Debug` prints nothing of
/// it.
#[derive(Clone)]
pub struct Credential {
    hash: Sha256,
}

impl Credential {
    /// A credential of `kind` (the provider, or the provider and the kind of credential, such
    /// as `"stamps:static"`), with no parts yet.
    pub fn new(kind: &str) -> Self {
        let mut credential = Self {
            hash: Sha256::new(),
        };
        credential.absorb(b"kind", kind.as_bytes());
        credential
    }

    /// Adds a secret part (a token, a key, a client secret).
    #[must_use]
    pub fn secret(mut self, label: &str, value: &SecretString) -> Self {
        self.absorb(label.as_bytes(), value.expose_secret().as_bytes());
        self
    }

    /// Adds a public part that selects what the secret parts unlock (an account or merchant
    /// id, a client id).
    #[must_use]
    pub fn public(mut self, label: &str, value: &str) -> Self {
        self.absorb(label.as_bytes(), value.as_bytes());
        self
    }

    fn absorb(&mut self, label: &[u8], value: &[u8]) {
        for part in [label, value] {
            self.hash.update((part.len() as u64).to_be_bytes());
            self.hash.update(part);
        }
    }

    /// The fingerprint stored with the entries of `key` (see the [module docs](self) for the
    /// construction).
    pub fn fingerprint(&self, key: &StoreKey) -> Fingerprint {
        // HMAC pads a key shorter than the hash's block (64 bytes) with zeros: the digest,
        // padded, is the key.
        let mut key_block = [0u8; 64];
        key_block[..32].copy_from_slice(&self.hash.clone().finalize());
        let mut mac = <Hmac<Sha256> as KeyInit>::new(&key_block.into());
        key_block.fill(0);
        mac.update(LABEL);
        mac.update(key.as_str().as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut text = String::with_capacity(PREFIX.len() + 32);
        text.push_str(PREFIX);
        for byte in &tag[..16] {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Fingerprint(text.into_boxed_str())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential([redacted])")
    }
}

/// A credential's one-way fingerprint under one store key, as stored with an entry. Not a
/// secret (it reveals nothing about the credential), but only someone holding the credential
/// can produce it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(Box<str>);

impl Fingerprint {
    /// The longest text accepted from a store.
    pub const MAX_LEN: usize = 128;

    /// A fingerprint read back from a store. `None` for text that no kunci writes (empty,
    /// longer than [`Fingerprint::MAX_LEN`], or not printable ASCII); a fingerprint of a
    /// scheme this version does not know is kept, and simply matches no credential.
    pub fn from_stored(text: &str) -> Option<Self> {
        (!text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| Self(text.into()))
    }

    /// The fingerprint as stored (`hmac-sha256:…`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Fingerprint").field(&self.0).finish()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> StoreKey {
        StoreKey::new(k).unwrap()
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn same_credential_same_fingerprint_and_any_change_shows() {
        let a = Credential::new("p")
            .secret("refresh", &secret("r-1"))
            .secret("device", &secret("d-1"));
        let k = key("p:default");
        assert_eq!(a.fingerprint(&k), a.clone().fingerprint(&k));
        let variants = [
            Credential::new("p")
                .secret("refresh", &secret("r-2"))
                .secret("device", &secret("d-1")),
            Credential::new("p")
                .secret("refresh", &secret("r-1"))
                .secret("device", &secret("d-2")),
            // parts swapped between labels
            Credential::new("p")
                .secret("refresh", &secret("d-1"))
                .secret("device", &secret("r-1")),
            // the boundary between parts moved
            Credential::new("p")
                .secret("refresh", &secret("r-1d"))
                .secret("device", &secret("-1")),
            Credential::new("q")
                .secret("refresh", &secret("r-1"))
                .secret("device", &secret("d-1")),
            a.clone().public("merchant", "7"),
        ];
        for v in variants {
            assert_ne!(v.fingerprint(&k), a.fingerprint(&k));
        }
        assert_ne!(a.fingerprint(&key("p:other")), a.fingerprint(&k));
    }

    #[test]
    fn the_fingerprint_and_debug_show_nothing_of_the_secret() {
        let c = Credential::new("p").secret("token", &secret("s3cr3t-value"));
        let fp = c.fingerprint(&key("p:default"));
        let shown = format!("{c:?} {fp:?} {fp}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert_eq!(fp.as_str().len(), PREFIX.len() + 32);
        assert!(
            fp.as_str()[PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        );
    }

    #[test]
    fn stored_fingerprints_are_read_back_or_refused() {
        let fp = Credential::new("p").fingerprint(&key("p:default"));
        assert_eq!(Fingerprint::from_stored(fp.as_str()), Some(fp));
        assert!(Fingerprint::from_stored("future-scheme:abc").is_some());
        for bad in ["", "has space", "ünï", &"x".repeat(129)] {
            assert_eq!(Fingerprint::from_stored(bad), None, "{bad}");
        }
    }
}
