//! The one error type of kunci, classified by what the caller should do about it.

use std::{error::Error as StdError, fmt, sync::Arc};

use time::OffsetDateTime;

/// What went wrong, in terms of what the caller should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is wrong or incomplete (a missing variable, a value out of range, a bad
    /// URL): fix it; retrying will not help.
    Configuration,
    /// The provider rejected the credentials or the refresh material has expired: a person has to
    /// log in again or issue new credentials.
    ReauthenticationRequired,
    /// Nothing may be sent to the provider before `until`.
    RateLimited {
        /// The earliest moment a new attempt is allowed.
        until: OffsetDateTime,
    },
    /// The provider or the network failed in a way that may pass (connection error, timeout,
    /// 5xx): retry later.
    Transient,
    /// The provider answered something unexpected (malformed, oversized, an unknown status).
    Protocol,
    /// The token store failed (unreachable, corrupt, permission denied).
    Store,
}

impl ErrorKind {
    /// One short sentence telling the caller what to do.
    pub fn advice(&self) -> &'static str {
        match self {
            Self::Configuration => "fix the configuration",
            Self::ReauthenticationRequired => "log in again or issue new credentials",
            Self::RateLimited { .. } => "wait until the given time before trying again",
            Self::Transient => "retry later",
            Self::Protocol => {
                "the provider answered something unexpected; report it if it persists"
            }
            Self::Store => "check the token store",
        }
    }

    fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Transient | Self::RateLimited { .. } | Self::Store
        )
    }
}

type Source = Arc<dyn StdError + Send + Sync + 'static>;

/// A kunci error: a [`ErrorKind`], a message that never contains a secret, and optionally the
/// provider's own detail as the [`source`](StdError::source).
///
/// Cheap to clone, so one failed refresh can be handed to every caller that waited for it.
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: Box<str>,
    retry_after: Option<OffsetDateTime>,
    source: Option<Source>,
}

impl Error {
    /// An error of the given kind. The message must not contain a secret.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                message: message.into().into_boxed_str(),
                retry_after: None,
                source: None,
            }),
        }
    }

    /// A configuration error.
    pub fn configuration(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Configuration, message)
    }

    /// The provider wants a person to log in again.
    pub fn reauthentication_required(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ReauthenticationRequired, message)
    }

    /// Nothing may be sent before `until`.
    pub fn rate_limited(until: OffsetDateTime, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::RateLimited { until }, message).with_retry_after(until)
    }

    /// A failure that may pass.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    /// An unexpected answer.
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, message)
    }

    /// A token store failure.
    pub fn store(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Store, message)
    }

    /// Attaches the underlying cause (for example a provider's error body, parsed).
    #[must_use]
    pub fn with_source(self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.map_inner(|inner| inner.source = Some(Arc::new(source)))
    }

    /// Records the moment the server asked us not to retry before (`Retry-After`).
    #[must_use]
    pub fn with_retry_after(self, at: OffsetDateTime) -> Self {
        self.map_inner(|inner| inner.retry_after = Some(at))
    }

    fn map_inner(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                kind: shared.kind,
                message: shared.message.clone(),
                retry_after: shared.retry_after,
                source: shared.source.clone(),
            },
        };
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The message, without the advice.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The earliest moment a retry makes sense, when the server or a cool-down said so.
    pub fn retry_after(&self) -> Option<OffsetDateTime> {
        self.inner.retry_after
    }

    /// Whether retrying later may succeed without a person doing anything.
    pub fn is_retryable(&self) -> bool {
        self.inner.kind.is_retryable()
    }

    /// The same error, rate limited until `until` (keeping its message and cause): a
    /// `RateLimited` error from a source whose real "not before" is later than it said.
    pub(crate) fn rate_limited_until(&self, until: OffsetDateTime) -> Self {
        let mut err = Self::rate_limited(until, self.message());
        if let Some(source) = &self.inner.source {
            err = err.map_inner(|inner| inner.source = Some(source.clone()));
        }
        err
    }

    /// The same error as seen by a caller while a cool-down is in force: rate limited until `until`.
    pub(crate) fn cooling_down(&self, until: OffsetDateTime) -> Self {
        let message = format!(
            "no request is sent until the cool-down after a failed attempt ends: {}",
            self.message()
        );
        let mut err = Self::rate_limited(until, message);
        if let Some(source) = &self.inner.source {
            err = err.map_inner(|inner| inner.source = Some(source.clone()));
        }
        err
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.kind {
            ErrorKind::RateLimited { until } => write!(
                f,
                "{} (rate limited until {}: wait until then)",
                self.inner.message,
                crate::clock::format_rfc3339(until)
            ),
            kind => write!(f, "{} ({})", self.inner.message, kind.advice()),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Error");
        s.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(at) = self.inner.retry_after {
            s.field("retry_after", &at);
        }
        if let Some(source) = &self.inner.source {
            s.field("source", source);
        }
        s.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("server said: token has expired")]
    struct Detail;

    #[test]
    fn display_carries_advice_and_source_is_kept() {
        let err =
            Error::reauthentication_required("kalsel refresh token expired").with_source(Detail);
        assert_eq!(
            err.to_string(),
            "kalsel refresh token expired (log in again or issue new credentials)"
        );
        assert_eq!(
            err.source().unwrap().to_string(),
            "server said: token has expired"
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn rate_limited_names_the_time() {
        let until = datetime!(2026-11-22 10:00:00 UTC);
        let err = Error::rate_limited(until, "too many attempts");
        assert_eq!(err.kind(), ErrorKind::RateLimited { until });
        assert_eq!(err.retry_after(), Some(until));
        assert!(err.to_string().contains("2026-11-22T10:00:00Z"), "{err}");
        assert!(err.is_retryable());
    }

    #[test]
    fn cooling_down_keeps_cause() {
        let until = datetime!(2026-11-22 10:00:00 UTC);
        let err = Error::transient("gateway timeout")
            .with_source(Detail)
            .cooling_down(until);
        assert_eq!(err.kind(), ErrorKind::RateLimited { until });
        assert!(err.message().contains("gateway timeout"));
        assert!(err.source().is_some());
    }

    #[test]
    fn clones_share_and_builders_copy_on_write() {
        let a = Error::transient("x");
        let b = a.clone();
        let c = b.clone().with_retry_after(datetime!(2026-01-01 00:00 UTC));
        assert_eq!(a.retry_after(), None);
        assert!(c.retry_after().is_some());
    }
}
