//! Reading a JWT's claims without verifying its signature.
//!
//! A client holds no key for the tokens it is given, but the expiry of some (Stamps) lives only
//! in the `exp` claim. Reading claims is safe for that purpose: a forged `exp` can only make a
//! token look shorter- or longer-lived to its own holder, and the server still checks it.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::error::Error;

/// Tokens longer than this are refused before any decoding.
pub const MAX_JWT_LEN: usize = 16 * 1024;

/// Why a JWT could not be read. Never contains any part of the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtError {
    /// Not three dot-separated parts.
    #[error("not a JWT: expected three dot-separated parts")]
    Shape,
    /// Longer than [`MAX_JWT_LEN`].
    #[error("the JWT is longer than {MAX_JWT_LEN} bytes")]
    TooLong,
    /// The payload is not base64url.
    #[error("the JWT payload is not base64url")]
    Base64,
    /// The payload is not a JSON object of the expected shape.
    #[error("the JWT payload is not valid JSON claims: {0}")]
    Json(String),
    /// A time claim is present but not a representable number of seconds.
    #[error("the JWT claim `{0}` is not a valid time")]
    Time(&'static str),
    /// The `exp` claim is missing.
    #[error("the JWT has no `exp` claim")]
    MissingExp,
}

impl From<JwtError> for Error {
    fn from(e: JwtError) -> Self {
        Error::protocol(format!("the provider's token could not be read: {e}")).with_source(e)
    }
}

/// Decodes a JWT's payload into `T`, without verifying the signature.
pub fn decode_claims<T: DeserializeOwned>(jwt: &str) -> Result<T, JwtError> {
    if jwt.len() > MAX_JWT_LEN {
        return Err(JwtError::TooLong);
    }
    let mut parts = jwt.split('.');
    let (Some(header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Shape);
    };
    if header.is_empty() || payload.is_empty() {
        return Err(JwtError::Shape);
    }
    // Some encoders keep the `=` padding; base64url without padding is the standard form.
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| JwtError::Base64)?;
    // RFC 7519: the claims set is a JSON object (serde would also accept a struct as an array).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(JwtError::Json(
            "the claims are not a JSON object".to_owned(),
        ));
    }
    // serde_json's messages name the offending input only by position and type, never values.
    serde_json::from_slice(&bytes).map_err(|e| JwtError::Json(e.classify_message()))
}

trait ClassifyMessage {
    fn classify_message(&self) -> String;
}

impl ClassifyMessage for serde_json::Error {
    fn classify_message(&self) -> String {
        let what = match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected shape",
            serde_json::error::Category::Eof => "truncated",
        };
        format!("{what} at line {} column {}", self.line(), self.column())
    }
}

#[derive(serde::Deserialize)]
struct RawTimes {
    #[serde(default)]
    exp: Option<serde_json::Number>,
    #[serde(default)]
    iat: Option<serde_json::Number>,
}

/// The time claims of a JWT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeClaims {
    /// `exp`: when the token expires.
    pub exp: Option<OffsetDateTime>,
    /// `iat`: when it was issued.
    pub iat: Option<OffsetDateTime>,
}

impl TimeClaims {
    /// `exp`, or [`JwtError::MissingExp`].
    pub fn require_exp(&self) -> Result<OffsetDateTime, JwtError> {
        self.exp.ok_or(JwtError::MissingExp)
    }
}

/// Reads `exp` and `iat` (NumericDate: seconds since the epoch, possibly fractional).
pub fn time_claims(jwt: &str) -> Result<TimeClaims, JwtError> {
    let raw: RawTimes = decode_claims(jwt)?;
    Ok(TimeClaims {
        exp: raw.exp.map(|n| numeric_date(&n, "exp")).transpose()?,
        iat: raw.iat.map(|n| numeric_date(&n, "iat")).transpose()?,
    })
}

fn numeric_date(n: &serde_json::Number, claim: &'static str) -> Result<OffsetDateTime, JwtError> {
    let secs = if let Some(i) = n.as_i64() {
        i
    } else {
        let f = n.as_f64().ok_or(JwtError::Time(claim))?;
        if !f.is_finite() || f.abs() > 253_402_300_799.0 {
            return Err(JwtError::Time(claim));
        }
        #[allow(
            clippy::cast_possible_truncation,
            reason = "range checked above; sub-second part dropped"
        )]
        let whole = f.trunc() as i64;
        whole
    };
    OffsetDateTime::from_unix_timestamp(secs).map_err(|_| JwtError::Time(claim))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;

    /// The sample access token of the Stamps document (003).
    const STAMPS: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiZXhwIjoxNjU3MzMyNjE2LCJpYXQiOjE2NTcyNDYyMTYsImp0aSI6IjRlYWRjNDAxNGQwZDRkNzc4NjkxYjg0ZDU3MGE2ZGFmIiwidXNlcl9pZCI6NTg3MCwibWVyY2hhbnRfaWQiOjF9.b_TiGJEO7mKMT0BFTrF9VjPHjoGrt5Be8FPSgvn-4bY";

    fn jwt_with(payload: &str) -> String {
        format!(
            "eyJhbGciOiJub25lIn0.{}.sig",
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn reads_stamps_sample() {
        let t = time_claims(STAMPS).unwrap();
        assert_eq!(t.exp, Some(datetime!(2022-07-09 02:10:16 UTC)));
        assert_eq!(t.iat, Some(datetime!(2022-07-08 02:10:16 UTC)));
    }

    #[test]
    fn missing_exp_is_an_error_when_required() {
        let t = time_claims(&jwt_with(r#"{"iat": 1}"#)).unwrap();
        assert_eq!(t.require_exp(), Err(JwtError::MissingExp));
    }

    #[test]
    fn past_exp_is_read_as_is() {
        let t = time_claims(&jwt_with(r#"{"exp": 1000}"#)).unwrap();
        assert_eq!(t.exp, Some(datetime!(1970-01-01 00:16:40 UTC)));
    }

    #[test]
    fn fractional_and_padded() {
        let jwt = jwt_with(r#"{"exp": 1657332616.75}"#);
        assert_eq!(
            time_claims(&jwt).unwrap().exp,
            Some(datetime!(2022-07-09 02:10:16 UTC))
        );
        // some encoders keep base64 padding on the payload
        let padded = format!("h.{}=.s", URL_SAFE_NO_PAD.encode(r#"{"exp":1}"#));
        assert_eq!(
            time_claims(&padded).unwrap().exp,
            Some(datetime!(1970-01-01 00:00:01 UTC))
        );
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert_eq!(time_claims("abc"), Err(JwtError::Shape));
        assert_eq!(time_claims("a.b.c.d"), Err(JwtError::Shape));
        assert_eq!(time_claims(".x.y"), Err(JwtError::Shape));
        assert_eq!(time_claims("a.!!!.c"), Err(JwtError::Base64));
        assert!(matches!(
            time_claims(&jwt_with("[1,2]")),
            Err(JwtError::Json(_))
        ));
        assert!(matches!(
            time_claims(&jwt_with(r#"{"exp":"soon"}"#)),
            Err(JwtError::Json(_))
        ));
        assert_eq!(
            time_claims(&jwt_with(r#"{"exp":1e300}"#)),
            Err(JwtError::Time("exp"))
        );
        assert_eq!(
            time_claims(&"a".repeat(MAX_JWT_LEN + 1)),
            Err(JwtError::TooLong)
        );
    }

    #[test]
    fn errors_never_echo_the_token() {
        let secretish = jwt_with(r#"{"exp":"SECRET-VALUE"}"#);
        let err: Error = time_claims(&secretish).unwrap_err().into();
        assert!(!format!("{err} {err:?}").contains("SECRET-VALUE"));
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(s in ".{0,300}") {
            let _ = time_claims(&s);
        }

        #[test]
        fn arbitrary_payload_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let jwt = format!("h.{}.s", URL_SAFE_NO_PAD.encode(&bytes));
            let _ = time_claims(&jwt);
        }

        #[test]
        fn valid_claims_round_trip(exp in 0i64..253_402_300_799, iat in 0i64..253_402_300_799) {
            let t = time_claims(&jwt_with(&format!(r#"{{"exp":{exp},"iat":{iat},"sub":"x"}}"#))).unwrap();
            prop_assert_eq!(t.exp.unwrap().unix_timestamp(), exp);
            prop_assert_eq!(t.iat.unwrap().unix_timestamp(), iat);
        }
    }
}
