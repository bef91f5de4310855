//! The one place where entries become bytes and back: a JSON document with `"format": 1`,
//! optionally sealed by a [`Cipher`]. Secrets are exposed here and nowhere else in the crate.
//!
//! Plain:
//! `{"format":1,"version":3,"token":{"secret":"…","scheme":"Bearer","issued_at":"…","expires_at":"…"},"refresh":"…","cooldown_until":null,"credential":"hmac-sha256:…"}`
//!
//! `credential` (the fingerprint of the credential that made the entry) was added within format
//! 1: older entries lack it and still load (as entries of unknown origin), and older readers
//! ignore it.
//!
//! Encrypted: `{"format":1,"cipher":"xchacha20poly1305","key_id":"1a2b3c4d","nonce":"<base64>","ciphertext":"<base64>"}`,
//! where the ciphertext seals the plain document and the associated data is
//! `kunci-store/1` + NUL + the store key.

use std::borrow::Cow;

use auth_core::{
    AuthScheme, FailureKind, Fingerprint, SharedFailure, StoreKey, StoredEntry, Token, expiry,
};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::{Zeroize as _, Zeroizing};

use crate::cipher::{ALGORITHM, Cipher};

/// The format version written today.
pub(crate) const FORMAT: u32 = 1;

/// The largest entry version a store writes: `i64::MAX`, so Redis counts it exactly
/// (`HINCRBY`) and no store ever wraps around to a version a writer already holds.
pub(crate) const MAX_VERSION: u64 = i64::MAX as u64;

/// The version a save over version `found` writes, or an error when `found` is already the
/// largest (an entry edited by hand, or 2^63 saves): never a wrapped-around number.
pub(crate) fn next_version(key: &StoreKey, found: u64) -> Result<u64, auth_core::StoreError> {
    found
        .checked_add(1)
        .filter(|v| *v <= MAX_VERSION)
        .ok_or_else(|| {
            auth_core::StoreError::corrupt(format!(
                "the entry `{key}` is at version {found}, past which versions cannot grow; delete the entry (for example with `kunci logout`) to start it over"
            ))
        })
}

/// Why bytes could not be read back as an entry. Messages never contain data from the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Not a kunci document at all (torn, truncated, edited by hand): set aside for inspection.
    Malformed(String),
    /// A kunci document from a newer version: left alone.
    UnsupportedFormat(u64),
    /// Encrypted under another key, or tampered with: left alone.
    Decrypt {
        entry_key_id: String,
        our_key_id: String,
    },
    /// Encrypted, but no key is configured: left alone.
    NoKey { entry_key_id: String },
    /// Plain, but a key is configured (entries must be encrypted): left alone.
    NotEncrypted,
}

impl DecodeError {
    /// Whether the bytes are unusable by any version of kunci with any key, so the file is
    /// better moved aside than kept in the way.
    pub(crate) fn is_malformed(&self) -> bool {
        matches!(self, Self::Malformed(_))
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "not a valid kunci entry ({why})"),
            Self::UnsupportedFormat(n) => {
                write!(
                    f,
                    "entry format {n} is newer than this kunci understands (format {FORMAT}); upgrade kunci"
                )
            }
            Self::Decrypt {
                entry_key_id,
                our_key_id,
            } if entry_key_id != our_key_id => write!(
                f,
                "cannot decrypt: wrong key or tampered entry (the entry names key id {entry_key_id}, the configured key is {our_key_id})"
            ),
            Self::Decrypt { .. } => write!(f, "cannot decrypt: wrong key or tampered entry"),
            Self::NoKey { entry_key_id } => {
                write!(
                    f,
                    "the entry is encrypted (key id {entry_key_id}) but no encryption key is configured"
                )
            }
            Self::NotEncrypted => {
                write!(
                    f,
                    "the entry is not encrypted but an encryption key is configured; delete it or drop the key"
                )
            }
        }
    }
}

#[derive(Serialize)]
struct PlainOut<'a> {
    format: u32,
    version: u64,
    token: Option<TokenOut<'a>>,
    refresh: Option<&'a str>,
    #[serde(with = "time::serde::rfc3339::option")]
    cooldown_until: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<FailureDoc<'a>>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    fetching_until: Option<OffsetDateTime>,
}

/// A shared failure record (added within format 1: older readers ignore it).
#[derive(Serialize, Deserialize)]
struct FailureDoc<'a> {
    #[serde(with = "time::serde::rfc3339")]
    until: OffsetDateTime,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

#[derive(Serialize)]
struct TokenOut<'a> {
    secret: &'a str,
    scheme: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    issued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

#[derive(Serialize)]
struct SealedOut<'a> {
    format: u32,
    cipher: &'a str,
    key_id: &'a str,
    nonce: String,
    ciphertext: String,
}

/// Every field any format-1 document may carry; which ones are present tells plain from
/// sealed. Unknown fields are ignored, so a later format-1 writer may add optional ones.
#[derive(Deserialize)]
struct DocIn<'a> {
    format: u64,
    #[serde(default)]
    version: Option<u64>,
    #[serde(default, borrow)]
    token: Option<TokenIn<'a>>,
    #[serde(default, borrow)]
    refresh: Option<Cow<'a, str>>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    cooldown_until: Option<OffsetDateTime>,
    #[serde(default)]
    credential: Option<String>,
    #[serde(default, borrow)]
    failure: Option<FailureDoc<'a>>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    fetching_until: Option<OffsetDateTime>,
    #[serde(default)]
    cipher: Option<String>,
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    ciphertext: Option<String>,
}

#[derive(Deserialize)]
struct TokenIn<'a> {
    #[serde(borrow)]
    secret: Cow<'a, str>,
    scheme: String,
    #[serde(with = "time::serde::rfc3339")]
    issued_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

fn aad(key: &StoreKey) -> Vec<u8> {
    let mut aad = b"kunci-store/1\0".to_vec();
    aad.extend_from_slice(key.as_str().as_bytes());
    aad
}

/// Serialises `entry` at `version` (the version it will have once stored), sealed when a
/// cipher is given. The buffer is zeroed when dropped.
pub(crate) fn encode(
    key: &StoreKey,
    entry: &StoredEntry,
    version: u64,
    cipher: Option<&Cipher>,
) -> Result<Zeroizing<Vec<u8>>, EncodeError> {
    let doc = PlainOut {
        format: FORMAT,
        version,
        token: entry.token.as_ref().map(|t| TokenOut {
            secret: t.secret().expose_secret(),
            scheme: t.scheme().as_str(),
            issued_at: t.issued_at(),
            expires_at: t.expires_at(),
        }),
        refresh: entry.refresh.as_ref().map(|r| r.expose_secret()),
        // Within the years RFC 3339 can write, whoever built the entry.
        cooldown_until: entry.cooldown_until.map(expiry::clamp),
        credential: entry.credential.as_ref().map(Fingerprint::as_str),
        failure: entry.failure.as_ref().map(|f| FailureDoc {
            until: expiry::clamp(f.until),
            kind: Cow::Borrowed(f.kind.as_str()),
            message: Cow::Borrowed(&f.message),
        }),
        fetching_until: entry.fetching_until.map(expiry::clamp),
    };
    let plain = Zeroizing::new(serde_json::to_vec(&doc).map_err(|_| EncodeError)?);
    let Some(cipher) = cipher else {
        return Ok(plain);
    };
    let (nonce, ciphertext) = cipher.seal(&plain, &aad(key)).map_err(|_| EncodeError)?;
    let sealed = SealedOut {
        format: FORMAT,
        cipher: ALGORITHM,
        key_id: cipher.key_id(),
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(ciphertext),
    };
    Ok(Zeroizing::new(
        serde_json::to_vec(&sealed).map_err(|_| EncodeError)?,
    ))
}

/// An entry could not be serialised (a time outside RFC 3339's range).
#[derive(Debug, thiserror::Error)]
#[error("the entry cannot be serialised (a date outside the years 0000-9999?)")]
pub(crate) struct EncodeError;

/// Reads bytes written by [`encode`] for the same `key`.
pub(crate) fn decode(
    key: &StoreKey,
    bytes: &[u8],
    cipher: Option<&Cipher>,
) -> Result<StoredEntry, DecodeError> {
    let doc = parse(bytes)?;
    match (doc.cipher.is_some(), cipher) {
        (false, None) => plain_entry(doc),
        (false, Some(_)) => Err(DecodeError::NotEncrypted),
        (true, None) => Err(DecodeError::NoKey {
            entry_key_id: doc.key_id.unwrap_or_default(),
        }),
        (true, Some(cipher)) => {
            let malformed = || DecodeError::Malformed("incomplete encrypted entry".to_owned());
            if doc.cipher.as_deref() != Some(ALGORITHM) {
                return Err(DecodeError::Malformed("unknown cipher".to_owned()));
            }
            let entry_key_id = doc.key_id.ok_or_else(malformed)?;
            let nonce = doc
                .nonce
                .and_then(|n| B64.decode(n).ok())
                .ok_or_else(malformed)?;
            let ciphertext = doc
                .ciphertext
                .and_then(|c| B64.decode(c).ok())
                .ok_or_else(malformed)?;
            let plain = cipher.open(&nonce, &ciphertext, &aad(key)).ok_or_else(|| {
                DecodeError::Decrypt {
                    entry_key_id,
                    our_key_id: cipher.key_id().to_owned(),
                }
            })?;
            let inner = parse(&plain)?;
            if inner.cipher.is_some() {
                return Err(DecodeError::Malformed("nested encryption".to_owned()));
            }
            plain_entry(inner)
        }
    }
}

fn parse(bytes: &[u8]) -> Result<DocIn<'_>, DecodeError> {
    // serde_json's messages may quote the offending value, which could be a secret: only the
    // category and position are reported.
    let doc: DocIn<'_> = serde_json::from_slice(bytes).map_err(|e| {
        DecodeError::Malformed(format!(
            "{:?} error at line {}, column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    if doc.format != u64::from(FORMAT) {
        return Err(DecodeError::UnsupportedFormat(doc.format));
    }
    Ok(doc)
}

fn plain_entry(doc: DocIn<'_>) -> Result<StoredEntry, DecodeError> {
    let version = doc
        .version
        .ok_or_else(|| DecodeError::Malformed("no version".to_owned()))?;
    let token = match doc.token {
        None => None,
        Some(t) => {
            let scheme = AuthScheme::parse(&t.scheme)
                .map_err(|_| DecodeError::Malformed("invalid authorization scheme".to_owned()))?;
            let secret = into_secret(t.secret);
            Some(
                Token::new(secret, scheme, t.issued_at, t.expires_at).map_err(|_| {
                    DecodeError::Malformed("the token cannot be sent in a header".to_owned())
                })?,
            )
        }
    };
    let credential =
        match doc.credential {
            None => None,
            Some(text) => Some(Fingerprint::from_stored(&text).ok_or_else(|| {
                DecodeError::Malformed("invalid credential fingerprint".to_owned())
            })?),
        };
    let mut entry = StoredEntry::default();
    entry.token = token;
    entry.refresh = doc.refresh.map(into_secret);
    entry.cooldown_until = doc.cooldown_until.map(expiry::clamp);
    entry.credential = credential;
    entry.failure = doc.failure.map(|f| {
        SharedFailure::new(
            expiry::clamp(f.until),
            FailureKind::parse(&f.kind),
            f.message.into_owned(),
        )
    });
    entry.fetching_until = doc.fetching_until.map(expiry::clamp);
    entry.version = version;
    Ok(entry)
}

fn into_secret(value: Cow<'_, str>) -> SecretString {
    let secret = SecretString::from(value.as_ref());
    if let Cow::Owned(mut owned) = value {
        owned.zeroize();
    }
    secret
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;

    fn key() -> StoreKey {
        StoreKey::new("test:codec").unwrap()
    }

    fn sample() -> StoredEntry {
        let token = Token::bearer(
            SecretString::from("s3cr3t-t0ken"),
            datetime!(2026-01-01 00:00:00.123456789 UTC),
            Some(datetime!(2026-01-02 00:00 UTC)),
        )
        .unwrap();
        let mut entry = StoredEntry::with_token(token);
        entry.refresh = Some(SecretString::from("r3fr3sh\"quoted\\"));
        entry.cooldown_until = Some(datetime!(2026-01-01 00:01 UTC));
        entry.credential = Some(
            auth_core::Credential::new("test")
                .secret("s", &SecretString::from("c"))
                .fingerprint(&key()),
        );
        entry
    }

    fn assert_same(a: &StoredEntry, b: &StoredEntry) {
        let (ta, tb) = (a.token.as_ref().unwrap(), b.token.as_ref().unwrap());
        assert!(ta.same_secret(tb));
        assert_eq!(ta.scheme(), tb.scheme());
        assert_eq!(ta.issued_at(), tb.issued_at());
        assert_eq!(ta.expires_at(), tb.expires_at());
        assert_eq!(
            a.refresh.as_ref().map(|r| r.expose_secret()),
            b.refresh.as_ref().map(|r| r.expose_secret())
        );
        assert_eq!(a.cooldown_until, b.cooldown_until);
        assert_eq!(a.credential, b.credential);
    }

    #[test]
    fn plain_round_trip_and_layout() {
        let bytes = encode(&key(), &sample(), 7, None).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with(r#"{"format":1,"version":7,"token":{"secret":"s3cr3t-t0ken","scheme":"Bearer","issued_at":"2026-01-01T00:00:00.123456789Z""#), "{text}");
        let back = decode(&key(), &bytes, None).unwrap();
        assert_eq!(back.version, 7);
        assert_same(&sample(), &back);
    }

    #[test]
    fn an_entry_written_before_fingerprints_loads_without_one() {
        // what kunci wrote before the `credential` field existed
        let old = br#"{"format":1,"version":4,"token":{"secret":"s3cr3t","scheme":"Token","issued_at":"2026-01-01T00:00:00Z","expires_at":null},"refresh":null,"cooldown_until":null}"#;
        let entry = decode(&key(), old, None).unwrap();
        assert_eq!(entry.version, 4);
        assert_eq!(entry.credential, None);
        assert_eq!(entry.token.unwrap().secret().expose_secret(), "s3cr3t");
        // and an entry without a fingerprint is written without the field
        let text = encode(&key(), &StoredEntry::default(), 1, None).unwrap();
        assert!(!std::str::from_utf8(&text).unwrap().contains("credential"));
    }

    #[test]
    fn the_fingerprint_is_written_and_a_mangled_one_is_malformed() {
        let bytes = encode(&key(), &sample(), 1, None).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.contains(r#""credential":"hmac-sha256:"#), "{text}");
        let mangled = text.replace("hmac-sha256:", "hmac sha256:");
        let err = decode(&key(), mangled.as_bytes(), None).unwrap_err();
        assert!(err.is_malformed(), "{err}");
    }

    #[test]
    fn times_outside_what_rfc3339_writes_are_clamped_not_refused() {
        let mut entry = sample();
        entry.cooldown_until = Some(datetime!(-9999-01-01 00:00 UTC));
        let bytes = encode(&key(), &entry, 1, None).unwrap();
        let back = decode(&key(), &bytes, None).unwrap();
        assert_eq!(back.cooldown_until, Some(expiry::EARLIEST));
        let far = br#"{"format":1,"version":1,"token":null,"refresh":null,"cooldown_until":"9999-12-31T23:59:59-23:59"}"#;
        let back = decode(&key(), far, None).unwrap();
        assert_eq!(back.cooldown_until, Some(expiry::LATEST));
    }

    #[test]
    fn sealed_round_trip_hides_secrets() {
        let cipher = Cipher::from_key_bytes(&[3u8; 32]).unwrap();
        let bytes = encode(&key(), &sample(), 2, Some(&cipher)).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(
            !text.contains("s3cr3t") && !text.contains("r3fr3sh"),
            "{text}"
        );
        assert!(text.contains(r#""cipher":"xchacha20poly1305""#), "{text}");
        let back = decode(&key(), &bytes, Some(&cipher)).unwrap();
        assert_eq!(back.version, 2);
        assert_same(&sample(), &back);
    }

    #[test]
    fn wrong_key_tamper_and_moved_entries_are_refused() {
        let cipher = Cipher::from_key_bytes(&[3u8; 32]).unwrap();
        let other = Cipher::from_key_bytes(&[4u8; 32]).unwrap();
        let bytes = encode(&key(), &sample(), 1, Some(&cipher)).unwrap();
        let err = decode(&key(), &bytes, Some(&other)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot decrypt: wrong key or tampered entry"),
            "{err}"
        );
        let moved =
            decode(&StoreKey::new("test:other").unwrap(), &bytes, Some(&cipher)).unwrap_err();
        assert_eq!(
            moved.to_string(),
            "cannot decrypt: wrong key or tampered entry"
        );
        let mut doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let ct = B64.decode(doc["ciphertext"].as_str().unwrap()).unwrap();
        let mut flipped = ct.clone();
        flipped[0] ^= 1;
        doc["ciphertext"] = B64.encode(flipped).into();
        let tampered = serde_json::to_vec(&doc).unwrap();
        assert!(matches!(
            decode(&key(), &tampered, Some(&cipher)),
            Err(DecodeError::Decrypt { .. })
        ));
        assert_eq!(
            decode(&key(), &bytes, None).unwrap_err(),
            DecodeError::NoKey {
                entry_key_id: cipher.key_id().into()
            }
        );
        let plain = encode(&key(), &sample(), 1, None).unwrap();
        assert_eq!(
            decode(&key(), &plain, Some(&cipher)).unwrap_err(),
            DecodeError::NotEncrypted
        );
    }

    #[test]
    fn malformed_documents_never_echo_their_content() {
        for bad in [
            &b""[..],
            b"{",
            b"null",
            b"{\"format\":1}",
            br#"{"format":1,"version":"s3cr3t"}"#,
        ] {
            let err = decode(&key(), bad, None).unwrap_err();
            assert!(err.is_malformed(), "{err}");
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
        }
        let newer = decode(&key(), br#"{"format":2,"whatever":true}"#, None).unwrap_err();
        assert_eq!(newer, DecodeError::UnsupportedFormat(2));
        assert!(!newer.is_malformed());
    }

    proptest! {
        #[test]
        fn any_entry_round_trips(
            secret in "[!-~]{1,64}",
            refresh in proptest::option::of("[ -~]{0,64}"),
            issued in 0i64..4_000_000_000,
            life in proptest::option::of(0i64..10_000_000),
            cooldown in proptest::option::of(0i64..4_000_000_000),
            nanos in 0u32..1_000_000_000,
            version in 1u64..u64::MAX,
            encrypted in any::<bool>(),
        ) {
            let issued_at = OffsetDateTime::from_unix_timestamp(issued).unwrap().replace_nanosecond(nanos).unwrap();
            let token = Token::bearer(SecretString::from(secret), issued_at, life.map(|l| issued_at + time::Duration::seconds(l))).unwrap();
            let mut entry = StoredEntry::with_token(token);
            entry.refresh = refresh.map(SecretString::from);
            entry.cooldown_until = cooldown.map(|c| OffsetDateTime::from_unix_timestamp(c).unwrap());
            let cipher = Cipher::from_key_bytes(&[9u8; 32]).unwrap();
            let cipher = encrypted.then_some(&cipher);
            let bytes = encode(&key(), &entry, version, cipher).unwrap();
            let back = decode(&key(), &bytes, cipher).unwrap();
            prop_assert_eq!(back.version, version);
            assert_same(&entry, &back);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            encrypted in any::<bool>(),
        ) {
            let cipher = Cipher::from_key_bytes(&[9u8; 32]).unwrap();
            // an error or an entry, never a panic
            let _ = decode(&key(), &bytes, encrypted.then_some(&cipher));
        }

        #[test]
        fn a_corrupted_byte_is_an_error_or_a_valid_entry(
            position in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
            encrypted in any::<bool>(),
        ) {
            let token = Token::bearer(SecretString::from("s3cr3t"), OffsetDateTime::UNIX_EPOCH, None).unwrap();
            let cipher = Cipher::from_key_bytes(&[9u8; 32]).unwrap();
            let cipher = encrypted.then_some(&cipher);
            let mut bytes = encode(&key(), &StoredEntry::with_token(token), 7, cipher).unwrap().to_vec();
            let at = position.index(bytes.len());
            bytes[at] ^= flip;
            match decode(&key(), &bytes, cipher) {
                // An encrypted entry's nonce and ciphertext are authenticated: a change there is
                // refused. Its `key_id` is only a hint for the "wrong key" message, so a changed
                // hint may still decode — but only ever to the original content.
                Ok(back) if encrypted => {
                    let secret = back.token.as_ref().map(|t| t.secret().expose_secret().to_owned());
                    prop_assert_eq!(secret.as_deref(), Some("s3cr3t"), "a tampered encrypted entry decoded to other content");
                }
                Ok(_) => {}
                Err(e) => prop_assert!(!e.to_string().contains("s3cr3t"), "{}", e),
            }
        }
    }
}
