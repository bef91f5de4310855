//! [`redact_url`]: a store URL as it may be shown in a message or a log line.

use url::Url;

/// `url` without any credential, for messages and logs: `rediss://app:s3cret@cache:6380/0?x=y`
/// → `rediss://[redacted]@cache:6380/0`.
///
/// The URL is parsed (WHATWG rules, as the Redis client parses it), so a password holding `/`,
/// `?`, `#` or `@` is never taken for a host or a path. The query and fragment are always
/// dropped (`redis+unix` URLs may carry `pass=` there). When the URL does not parse, or when an
/// `@` stands outside the user information — a password that was not percent-encoded, cut
/// short by a `/`, `?` or `#` — no part after the scheme is shown at all.
///
/// ```
/// assert_eq!(
///     auth_store::redact_url("postgres://app:hunter2@db.internal/kunci?sslmode=require"),
///     "postgres://[redacted]@db.internal/kunci"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let url = url.trim();
    let scheme = url.split_once("://").map(|(scheme, _)| scheme).filter(|s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    });
    let Some(scheme) = scheme else {
        return "[unparsable URL]".to_owned();
    };
    let Ok(parsed) = Url::parse(url) else {
        return format!("{scheme}://[unparsable URL]");
    };
    let has_userinfo = !parsed.username().is_empty() || parsed.password().is_some();
    if url.contains('@') && !has_userinfo {
        // The `@` was cut off from the authority: the host, port or path may be part of a
        // password.
        return format!("{scheme}://[redacted]");
    }
    let mut out = format!("{}://", parsed.scheme());
    if has_userinfo {
        out.push_str("[redacted]@");
    }
    if let Some(host) = parsed.host_str() {
        out.push_str(host);
    }
    if let Some(port) = parsed.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(parsed.path());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_queries_and_fragments_are_never_shown() {
        for (url, shown) in [
            (
                "redis://:hunter2@10.0.0.1:6379/2",
                "redis://[redacted]@10.0.0.1:6379/2",
            ),
            (
                "rediss://app:hunter2@cache.example:6380",
                "rediss://[redacted]@cache.example:6380",
            ),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            (
                "redis+unix:///run/redis.sock?pass=hunter2",
                "redis+unix:///run/redis.sock",
            ),
            ("hunter2", "[unparsable URL]"),
            ("redis://a:b@c@host/0", "redis://[redacted]@host/0"),
            ("rediss://[::1]:6380/1#frag", "rediss://[::1]:6380/1"),
            (
                "postgresql://kunci:hunter2@[::1]:5433/db?password=hunter2&sslmode=require",
                "postgresql://[redacted]@[::1]:5433/db",
            ),
            (
                "postgres://db/kunci?password=hunter2",
                "postgres://db/kunci",
            ),
            ("postgres://app:hunter2@db#frag", "postgres://[redacted]@db"),
            (
                "rediss://:p%2Fw%3D@cache.example:6380",
                "rediss://[redacted]@cache.example:6380",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn a_password_with_a_slash_question_mark_or_hash_is_never_shown_in_part() {
        // Azure Cache keys are base64: `/`, `+` and `=` appear unencoded in pasted URLs.
        for (url, parts) in [
            ("rediss://:abc/def=@host:6380", &["abc", "def"][..]),
            ("rediss://:abc?def=@host:6380", &["abc", "def"]),
            ("rediss://:abc#def=@host:6380", &["abc", "def"]),
            ("rediss://qwe:rty/uio@host:6380/0", &["qwe", "rty", "uio"]),
            ("redis://:12/34@host", &["12", "34"]),
            ("redis://qwe?rty@host", &["qwe", "rty"]),
            (
                "rediss://qwe:s3/cr?et#x@[::1]:6380",
                &["qwe", "s3", "cr", "et#"],
            ),
            ("not a url with :secretpart@ in it", &["secretpart"]),
            ("redis://:hunter2@", &["hunter2"]),
        ] {
            let shown = redact_url(url);
            for part in parts {
                assert!(!shown.contains(part), "{url} → {shown}");
            }
        }
    }
}
