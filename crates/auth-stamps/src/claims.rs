//! The claims of a Stamps JWT, read as the server wrote them.
//!
//! Stamps issues its JWTs with djangorestframework-simplejwt. The claim names and their order
//! are simplejwt's (`token_type`, `exp`, `iat`, `jti`, `user_id`) plus Stamps' `merchant_id`,
//! but the JSON types are not fixed: simplejwt 5.5.1 and later write `user_id` as a string
//! (`"5870"`, `Token.for_user` calls `str(user_id)`), 5.5.0 and earlier — and the page's sample
//! — as a number. So identifiers are kept as they came ([`ClaimId`]), every claim is kept for
//! printing ([`StampsClaims`] serializes to the object it was read from), and a claim that does
//! not fit is a protocol error that names it.

use std::fmt;

use auth_core::{Error, jwt};
use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// The documented claims, in the order simplejwt writes them.
const DOCUMENTED: [&str; 6] = ["token_type", "exp", "iat", "jti", "user_id", "merchant_id"];

/// An identifier claim (`user_id`, `merchant_id`) as the server wrote it: a JSON integer or a
/// string. simplejwt 5.5.1 and later write `user_id` as a string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClaimId {
    /// A JSON integer (`5870`).
    Integer(i64),
    /// A JSON string (`"5870"`, or a UUID for a user model keyed by one).
    Text(String),
}

impl ClaimId {
    /// The identifier as an integer: the integer itself, or a string that holds one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Integer(n) => Some(*n),
            Self::Text(s) => s.parse().ok(),
        }
    }

    fn from_json(field: &'static str, value: &Value) -> Result<Self, ClaimError> {
        match value {
            Value::String(s) => Ok(Self::Text(s.clone())),
            Value::Number(n) => n.as_i64().map(Self::Integer).ok_or(ClaimError::new(
                field,
                "is a number that is not a 64-bit integer",
            )),
            _ => Err(ClaimError::new(field, "is neither a string nor an integer")),
        }
    }
}

impl fmt::Display for ClaimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Integer(n) => write!(f, "{n}"),
            Self::Text(s) => f.write_str(s),
        }
    }
}

impl From<i64> for ClaimId {
    fn from(n: i64) -> Self {
        Self::Integer(n)
    }
}

impl From<&str> for ClaimId {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl Serialize for ClaimId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Integer(n) => serializer.serialize_i64(*n),
            Self::Text(s) => serializer.serialize_str(s),
        }
    }
}

/// The payload of a Stamps JWT, as `verify-token` returns it (and as the token itself carries).
///
/// The six documented claims are typed; every claim, documented or not, is kept as the server
/// wrote it: serializing a `StampsClaims` gives back the same values (documented claims first,
/// in simplejwt's order), so a `user_id` that came as `"5870"` is printed as `"5870"`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StampsClaims {
    /// `"access"` for access tokens.
    pub token_type: String,
    /// When the token expires.
    pub exp: OffsetDateTime,
    /// When the token was issued.
    pub iat: OffsetDateTime,
    /// The token's unique identifier (simplejwt: `uuid4().hex`).
    pub jti: String,
    /// The Stamps user the token belongs to: a string from simplejwt 5.5.1 on, a number before.
    pub user_id: ClaimId,
    /// The merchant the token gives access to.
    pub merchant_id: ClaimId,
    raw: Map<String, Value>,
}

impl StampsClaims {
    /// Reads the claims from a JSON object (a verify-token answer or a JWT payload).
    ///
    /// # Errors
    /// A [`Protocol`](auth_core::ErrorKind::Protocol) error naming the first claim that is
    /// missing or does not fit its type; `what` says where the claims came from.
    pub(crate) fn from_object(raw: Map<String, Value>, what: &str) -> Result<Self, Error> {
        Self::typed(raw).map_err(|e| {
            Error::protocol(format!(
                "{what} carries claims that do not fit: the claim `{}` {}",
                e.field, e.problem
            ))
        })
    }

    fn typed(raw: Map<String, Value>) -> Result<Self, ClaimError> {
        let get = |field: &'static str| raw.get(field).ok_or(ClaimError::new(field, "is missing"));
        let text = |field: &'static str| {
            get(field)?
                .as_str()
                .map(str::to_owned)
                .ok_or(ClaimError::new(field, "is not a string"))
        };
        Ok(Self {
            token_type: text("token_type")?,
            exp: numeric_date("exp", get("exp")?)?,
            iat: numeric_date("iat", get("iat")?)?,
            jti: text("jti")?,
            user_id: ClaimId::from_json("user_id", get("user_id")?)?,
            merchant_id: ClaimId::from_json("merchant_id", get("merchant_id")?)?,
            raw,
        })
    }

    /// A claim as the server wrote it, documented or not (for example simplejwt's
    /// `hash_password` when the server checks for changed passwords).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.raw.get(name)
    }

    /// The claims beyond the six documented ones, as the server wrote them.
    pub fn other_claims(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.raw
            .iter()
            .filter(|(k, _)| !DOCUMENTED.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v))
    }
}

impl Serialize for StampsClaims {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.raw.len()))?;
        for name in DOCUMENTED {
            if let Some(value) = self.raw.get(name) {
                map.serialize_entry(name, value)?;
            }
        }
        for (name, value) in self.other_claims() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Reads the JWT's claims without verifying its signature (the client holds no key).
///
/// # Errors
/// A [`Protocol`](auth_core::ErrorKind::Protocol) error when the value is not a JWT, or when
/// one of the six documented claims is missing or does not fit (the error names it).
pub fn read_claims(jwt: &str) -> Result<StampsClaims, Error> {
    let raw: Map<String, Value> = jwt::decode_claims(jwt)?;
    StampsClaims::from_object(raw, "the Stamps token")
}

/// Which claim did not fit, and how. Never holds the claim's value.
#[derive(Debug)]
struct ClaimError {
    field: &'static str,
    problem: &'static str,
}

impl ClaimError {
    const fn new(field: &'static str, problem: &'static str) -> Self {
        Self { field, problem }
    }
}

/// A NumericDate (RFC 7519: seconds since the epoch, possibly fractional), also accepted as a
/// string of digits. Moments `time` cannot represent (beyond the years ±9999) do not fit.
fn numeric_date(field: &'static str, value: &Value) -> Result<OffsetDateTime, ClaimError> {
    const NOT_A_TIME: &str = "is not a time (seconds since 1970, within the years -9999 to 9999)";
    let seconds = match value {
        Value::Number(n) => n.as_i64().map(Ok).or_else(|| n.as_f64().map(Err)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .map(Ok)
                .or_else(|| s.parse::<f64>().ok().map(Err))
        }
        _ => None,
    };
    let whole = match seconds {
        Some(Ok(whole)) => whole,
        // The sub-second part is dropped; the range check keeps the cast exact.
        Some(Err(f)) if f.is_finite() && f.abs() < 1e15 => {
            #[allow(
                clippy::cast_possible_truncation,
                reason = "range checked above; the fraction is dropped on purpose"
            )]
            let whole = f.trunc() as i64;
            whole
        }
        _ => return Err(ClaimError::new(field, NOT_A_TIME)),
    };
    OffsetDateTime::from_unix_timestamp(whole).map_err(|_| ClaimError::new(field, NOT_A_TIME))
}

#[cfg(test)]
mod tests {
    use auth_core::ErrorKind;
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn documented() -> Value {
        json!({
            "token_type": "access", "exp": 1_657_332_616, "iat": 1_657_246_216,
            "jti": "4eadc4014d0d4d778691b84d570a6daf", "user_id": "5870", "merchant_id": 1
        })
    }

    #[test]
    fn a_string_user_id_as_simplejwt_5_5_1_writes_it_is_kept_as_a_string() {
        let claims = StampsClaims::from_object(object(documented()), "x").unwrap();
        assert_eq!(claims.user_id, ClaimId::Text("5870".to_owned()));
        assert_eq!(claims.user_id.as_i64(), Some(5870));
        assert_eq!(claims.merchant_id, ClaimId::Integer(1));
        assert_eq!(claims.user_id.to_string(), "5870");
        // Printed back as the server wrote it: a string stays a string.
        let printed = serde_json::to_value(&claims).unwrap();
        assert_eq!(printed, documented());
    }

    #[test]
    fn printing_keeps_simplejwts_order_and_every_other_claim() {
        let mut raw = object(documented());
        raw.insert("hash_password".to_owned(), json!("d41d8cd9"));
        raw.insert("a_first".to_owned(), json!([1]));
        let claims = StampsClaims::from_object(raw, "x").unwrap();
        let text = serde_json::to_string(&claims).unwrap();
        assert!(
            text.starts_with(r#"{"token_type":"access","exp":1657332616,"iat":1657246216,"jti":"4eadc4014d0d4d778691b84d570a6daf","user_id":"5870","merchant_id":1,"#),
            "{text}"
        );
        assert_eq!(claims.get("hash_password"), Some(&json!("d41d8cd9")));
        assert_eq!(claims.other_claims().count(), 2);
    }

    #[test]
    fn a_claim_that_does_not_fit_is_named_and_its_value_is_not_shown() {
        let cases: &[(&str, Value, &str)] = &[
            ("user_id", json!(true), "is neither a string nor an integer"),
            (
                "user_id",
                json!(58.5),
                "is a number that is not a 64-bit integer",
            ),
            (
                "merchant_id",
                json!(null),
                "is neither a string nor an integer",
            ),
            ("exp", json!("soon-ish-value"), "is not a time"),
            ("exp", json!(1e300), "is not a time"),
            ("iat", json!(-400_000_000_000_i64), "is not a time"),
            ("jti", json!(17), "is not a string"),
            ("token_type", json!(["access"]), "is not a string"),
        ];
        for (field, value, problem) in cases {
            let mut raw = object(documented());
            raw.insert((*field).to_owned(), value.clone());
            let err = StampsClaims::from_object(raw, "stamps' verify-token answer").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol);
            let text = err.to_string();
            assert!(
                text.contains(&format!("the claim `{field}` {problem}")),
                "{text}"
            );
            assert!(text.contains("verify-token"), "{text}");
            assert!(!text.contains("soon-ish-value"), "{text}");
        }
        let mut raw = object(documented());
        raw.remove("merchant_id");
        let err = StampsClaims::from_object(raw, "x").unwrap_err();
        assert!(
            err.to_string()
                .contains("the claim `merchant_id` is missing"),
            "{err}"
        );
    }

    #[test]
    fn times_may_be_fractional_or_strings() {
        let mut raw = object(documented());
        raw.insert("exp".to_owned(), json!(1_657_332_616.75));
        raw.insert("iat".to_owned(), json!(" 1657246216 "));
        let claims = StampsClaims::from_object(raw, "x").unwrap();
        assert_eq!(claims.exp.unix_timestamp(), 1_657_332_616);
        assert_eq!(claims.iat.unix_timestamp(), 1_657_246_216);
        // The extremes `time` represents are accepted; a second beyond is not.
        for (secs, fits) in [
            (253_402_300_799_i64, true),
            (253_402_300_800, false),
            (-377_705_116_800, true),
            (-377_705_116_801, false),
        ] {
            let mut raw = object(documented());
            raw.insert("exp".to_owned(), json!(secs));
            assert_eq!(StampsClaims::from_object(raw, "x").is_ok(), fits, "{secs}");
        }
    }
}
