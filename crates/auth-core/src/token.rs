//! The token a provider hands out, and the `Authorization` header it renders.

use std::fmt;

use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use crate::error::Error;

/// The word in front of the secret in an `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthScheme {
    /// `Authorization: Bearer <token>` (OAuth2, JWTs).
    Bearer,
    /// `Authorization: Token <token>` (Stamps' static tokens, Django REST framework).
    Token,
    /// Any other scheme word.
    Other(Box<str>),
}

impl AuthScheme {
    /// The scheme word as it is sent.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Bearer => "Bearer",
            Self::Token => "Token",
            Self::Other(word) => word,
        }
    }

    /// Parses a scheme word; `bearer` and `token` are matched without regard to case.
    pub fn parse(word: &str) -> Result<Self, Error> {
        if word.eq_ignore_ascii_case("bearer") {
            Ok(Self::Bearer)
        } else if word.eq_ignore_ascii_case("token") {
            Ok(Self::Token)
        } else if !word.is_empty()
            && word
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+".contains(&b))
        {
            Ok(Self::Other(word.into()))
        } else {
            Err(Error::protocol(format!(
                "`{}` is not a valid authorization scheme",
                word.escape_debug()
            )))
        }
    }
}

impl fmt::Display for AuthScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API token: the secret, its scheme, when it was issued and when it expires.
///
/// The secret is never printed: `Debug` shows `[redacted]`, and the rendered header value is
/// marked sensitive so `http`/`reqwest` keep it out of their own `Debug` output too.
#[derive(Clone)]
pub struct Token {
    secret: SecretString,
    scheme: AuthScheme,
    issued_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
    header: HeaderValue,
}

impl Token {
    /// Builds a token. `expires_at` is `None` for a permanent token.
    ///
    /// Both times are kept in UTC and clamped into the years kunci represents
    /// ([`expiry::EARLIEST`](crate::expiry::EARLIEST) to
    /// [`expiry::LATEST`](crate::expiry::LATEST)), so any token can be stored, compared and
    /// shown in any UTC offset without overflow, whatever a server stated.
    ///
    /// Fails with a protocol error when the secret cannot be sent in an HTTP header (empty, or
    /// containing control characters or non-ASCII bytes): a provider that hands out such a
    /// value answered something unexpected.
    pub fn new(
        secret: SecretString,
        scheme: AuthScheme,
        issued_at: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Self, Error> {
        let value = secret.expose_secret();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::protocol(
                "the token is empty or holds characters that cannot be sent in an HTTP header",
            ));
        }
        let mut rendered = String::with_capacity(scheme.as_str().len() + 1 + value.len());
        rendered.push_str(scheme.as_str());
        rendered.push(' ');
        rendered.push_str(value);
        let mut header = HeaderValue::try_from(rendered)
            .map_err(|_| Error::protocol("the token cannot be sent in an HTTP header"))?;
        header.set_sensitive(true);
        Ok(Self {
            secret,
            scheme,
            issued_at: crate::expiry::clamp(issued_at),
            expires_at: expires_at.map(crate::expiry::clamp),
            header,
        })
    }

    /// The value the manager's empty cache slot holds; never handed out (its deadlines have
    /// passed from the start).
    pub(crate) fn placeholder() -> Self {
        Self {
            secret: SecretString::from("-"),
            scheme: AuthScheme::Bearer,
            issued_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: Some(OffsetDateTime::UNIX_EPOCH),
            header: HeaderValue::from_static("Bearer -"),
        }
    }

    /// A bearer token.
    pub fn bearer(
        secret: SecretString,
        issued_at: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Self, Error> {
        Self::new(secret, AuthScheme::Bearer, issued_at, expires_at)
    }

    /// The secret value. Expose it only to put it on the wire.
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }

    /// The scheme the token is sent with.
    pub fn scheme(&self) -> &AuthScheme {
        &self.scheme
    }

    /// When the token was issued (the moment its request was sent, or its `iat` claim).
    pub fn issued_at(&self) -> OffsetDateTime {
        self.issued_at
    }

    /// When the token stops being accepted; `None` for a permanent token.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.expires_at
    }

    /// The `Authorization` header value (`Bearer <token>`), marked sensitive.
    pub fn header_value(&self) -> &HeaderValue {
        &self.header
    }

    /// Whether two tokens carry the same secret (constant-time in the length of the shorter).
    pub fn same_secret(&self, other: &Token) -> bool {
        constant_time_eq(
            self.secret.expose_secret().as_bytes(),
            other.secret.expose_secret().as_bytes(),
        )
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("secret", &"[redacted]")
            .field("scheme", &self.scheme)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn sample() -> Token {
        Token::bearer(
            SecretString::from("s3cr3t-value"),
            datetime!(2026-01-01 00:00 UTC),
            Some(datetime!(2026-01-02 00:00 UTC)),
        )
        .unwrap()
    }

    #[test]
    fn debug_is_redacted() {
        let token = sample();
        let printed = format!("{token:?} {token:#?} {:?}", token.header_value());
        assert!(printed.contains("[redacted]"), "{printed}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
    }

    #[test]
    fn renders_header_with_scheme() {
        let token = sample();
        assert_eq!(
            token.header_value().to_str().unwrap(),
            "Bearer s3cr3t-value"
        );
        assert!(token.header_value().is_sensitive());
        let static_token = Token::new(
            SecretString::from("abc"),
            AuthScheme::Token,
            datetime!(2026-01-01 00:00 UTC),
            None,
        )
        .unwrap();
        assert_eq!(static_token.header_value().to_str().unwrap(), "Token abc");
        assert_eq!(static_token.expires_at(), None);
    }

    #[test]
    fn rejects_values_that_break_headers() {
        for bad in ["", "a b", "line\nbreak", "tab\t", "ünï"] {
            let err = Token::bearer(
                SecretString::from(bad),
                datetime!(2026-01-01 00:00 UTC),
                None,
            )
            .unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Protocol, "{bad:?}");
            assert!(!err.to_string().contains(bad) || bad.is_empty());
        }
    }

    #[test]
    fn scheme_parsing() {
        assert_eq!(AuthScheme::parse("bearer").unwrap(), AuthScheme::Bearer);
        assert_eq!(AuthScheme::parse("Token").unwrap(), AuthScheme::Token);
        assert_eq!(
            AuthScheme::parse("MAC").unwrap(),
            AuthScheme::Other("MAC".into())
        );
        assert!(AuthScheme::parse("a b").is_err());
        assert!(AuthScheme::parse("").is_err());
    }

    #[test]
    fn times_are_kept_in_utc_and_clamped_to_what_kunci_represents() {
        let far = Token::bearer(
            SecretString::from("x"),
            datetime!(-9999-01-01 00:00 UTC),
            Some(datetime!(9999-12-31 23:59:59.999999999 -23:59)),
        )
        .unwrap();
        assert_eq!(far.issued_at(), crate::expiry::EARLIEST);
        assert_eq!(far.expires_at(), Some(crate::expiry::LATEST));
        let wib = Token::bearer(
            SecretString::from("x"),
            datetime!(2026-11-22 15:00 +07:00),
            None,
        )
        .unwrap();
        assert_eq!(wib.issued_at(), datetime!(2026-11-22 08:00 UTC));
        assert_eq!(wib.issued_at().offset(), time::UtcOffset::UTC);
    }

    #[test]
    fn same_secret_compares_values() {
        let a = sample();
        let b = sample();
        let c = Token::bearer(SecretString::from("other"), a.issued_at(), None).unwrap();
        assert!(a.same_secret(&b));
        assert!(!a.same_secret(&c));
    }
}
