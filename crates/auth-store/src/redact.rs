//! Store URLs as they may be shown: without passwords.

/// A store URL with its secrets removed, for `describe()`, `Debug` and error messages:
/// `redis://user:secret@host:6379/0?x=y` → `redis://[redacted]@host:6379/0`.
///
/// The user information (user and password) becomes `[redacted]`, and the query and fragment
/// are dropped: `redis+unix://…?pass=` and `postgres://…?password=` carry passwords there. Text
/// that is not a URL becomes `[unparsable URL]`, since it could be anything, a password too.
///
/// ```
/// assert_eq!(
///     auth_store::redact_url("postgres://app:hunter2@db.internal/kunci?sslmode=require"),
///     "postgres://[redacted]@db.internal/kunci"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = without_query.split_once("://") else {
        return "[unparsable URL]".to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://[redacted]@{host}{path}"),
        None => format!("{scheme}://{authority}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("redis://:hunter2@10.0.0.1:6379/2"),
            "redis://[redacted]@10.0.0.1:6379/2"
        );
        assert_eq!(
            redact_url("rediss://app:hunter2@cache.example:6380"),
            "rediss://[redacted]@cache.example:6380"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("redis+unix:///run/redis.sock?pass=hunter2"),
            "redis+unix:///run/redis.sock"
        );
        assert_eq!(redact_url("hunter2"), "[unparsable URL]");
        assert_eq!(
            redact_url("redis://a:b@c@host/0"),
            "redis://[redacted]@host/0"
        );
        assert_eq!(
            redact_url("postgresql://kunci:hunter2@[::1]:5433/db?password=hunter2&sslmode=require"),
            "postgresql://[redacted]@[::1]:5433/db"
        );
        assert_eq!(
            redact_url("postgres://db/kunci?password=hunter2"),
            "postgres://db/kunci"
        );
        assert_eq!(
            redact_url("postgres://app:hunter2@db#frag"),
            "postgres://[redacted]@db"
        );
    }
}
