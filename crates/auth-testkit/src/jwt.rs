//! Making JWTs for simulators: HS256-signed ones (Stamps), and unsigned or RS256-looking ones
//! (KrmPesan's Cognito tokens, which a client can read but never verify).
//!
//! ```
//! use auth_testkit::jwt;
//! use serde_json::json;
//!
//! let token = jwt::hs256(&json!({"exp": 2_000_000_000, "user_id": 1}), b"TESTJWT");
//! assert_eq!(jwt::verify_hs256(&token, b"TESTJWT").unwrap()["user_id"], 1);
//! assert!(jwt::verify_hs256(&token, b"wrong").is_none());
//! assert_eq!(jwt::claims(&token).unwrap()["exp"], 2_000_000_000);
//! ```

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header Stamps' sample token carries, byte for byte.
pub const HS256_HEADER: &str = r#"{"typ":"JWT","alg":"HS256"}"#;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

/// Signs `header.payload` (both given as JSON text, encoded as is) with HS256.
///
/// Use it to reproduce a document's sample token exactly, where key order matters.
pub fn hs256_raw(header_json: &str, payload_json: &str, secret: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header_json.as_bytes()),
        b64(payload_json.as_bytes())
    );
    let mut mac = mac(secret);
    mac.update(signing_input.as_bytes());
    let signature = mac.finalize().into_bytes();
    format!("{signing_input}.{}", b64(&signature))
}

/// An HS256 JWT with `claims` as its payload and the header [`HS256_HEADER`].
pub fn hs256(claims: &Value, secret: &[u8]) -> String {
    hs256_raw(HS256_HEADER, &claims.to_string(), secret)
}

/// Verifies an HS256 JWT's signature (in constant time) and returns its claims; `None` when
/// the token is malformed, not HS256 or signed with another secret.
pub fn verify_hs256(token: &str, secret: &[u8]) -> Option<Value> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let (header, _) = signing_input.split_once('.')?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header.get("alg")?.as_str()? != "HS256" {
        return None;
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let mut mac = mac(secret);
    mac.update(signing_input.as_bytes());
    mac.verify_slice(&signature).ok()?;
    claims(token)
}

/// A JWT with header `{"alg":"none"}` and an empty signature.
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(claims.to_string().as_bytes())
    )
}

/// A JWT that looks like an AWS Cognito RS256 token: header `{"kid":…,"alg":"RS256"}` and 256
/// random bytes as the "signature". Nobody can verify it, just like a client cannot verify the
/// real ones (it has no key).
pub fn rs256_looking(claims: &Value, kid: &str) -> String {
    let header = serde_json::json!({"kid": kid, "alg": "RS256"});
    let signature: Vec<u8> = (0..256).map(|_| fastrand::u8(..)).collect();
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(&signature)
    )
}

/// The payload of a JWT, decoded without any verification.
pub fn claims(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_header, payload) = (parts.next()?, parts.next()?);
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The sample access token of the Stamps document (003), signed with `TESTJWT`.
    const STAMPS: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiZXhwIjoxNjU3MzMyNjE2LCJpYXQiOjE2NTcyNDYyMTYsImp0aSI6IjRlYWRjNDAxNGQwZDRkNzc4NjkxYjg0ZDU3MGE2ZGFmIiwidXNlcl9pZCI6NTg3MCwibWVyY2hhbnRfaWQiOjF9.b_TiGJEO7mKMT0BFTrF9VjPHjoGrt5Be8FPSgvn-4bY";

    #[test]
    fn reproduces_the_stamps_sample() {
        let payload = r#"{"token_type":"access","exp":1657332616,"iat":1657246216,"jti":"4eadc4014d0d4d778691b84d570a6daf","user_id":5870,"merchant_id":1}"#;
        assert_eq!(hs256_raw(HS256_HEADER, payload, b"TESTJWT"), STAMPS);
        let claims = verify_hs256(STAMPS, b"TESTJWT").unwrap();
        assert_eq!(claims["user_id"], 5870);
        assert!(verify_hs256(STAMPS, b"testjwt").is_none());
    }

    #[test]
    fn tampered_or_malformed_tokens_do_not_verify() {
        let token = hs256(&json!({"exp": 1}), b"k");
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 2, 'x');
        assert!(verify_hs256(&tampered, b"k").is_none());
        for bad in ["", "a", "a.b", "a.b.c", &unsigned(&json!({"exp": 1}))] {
            assert!(verify_hs256(bad, b"k").is_none(), "{bad}");
        }
    }

    #[test]
    fn unverifiable_tokens_are_readable_by_auth_core() {
        let claims = json!({"exp": 1_700_000_000, "iat": 1_699_913_600, "token_use": "id"});
        for token in [unsigned(&claims), rs256_looking(&claims, "kid-1")] {
            let times = auth_core::jwt::time_claims(&token).unwrap();
            assert_eq!(times.exp.unwrap().unix_timestamp(), 1_700_000_000);
        }
        assert_ne!(rs256_looking(&claims, "k"), rs256_looking(&claims, "k"));
    }
}
