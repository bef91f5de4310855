//! Reading SATUSEHAT's answers: the flat, all-string success and the FHIR `OperationOutcome`
//! of its errors.

use auth_core::{Error, Token, expiry, http::HttpResponse, time::OffsetDateTime};
use secrecy::SecretString;
use serde::Deserialize;

use crate::NAME;

/// A number SATUSEHAT sends as a string (`"14399"`), or, tolerated, as a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Num {
    Text(String),
    Int(i64),
}

impl Num {
    fn value(&self) -> Option<i64> {
        match self {
            Self::Text(t) => t.trim().parse().ok(),
            Self::Int(i) => Some(*i),
        }
    }
}

/// The success answer (only what kunci reads; the rest — `developer.email`,
/// `organization_name`, `refresh_count`, … — is ignored). No `Debug`: it holds a token.
#[derive(Deserialize)]
struct Grant {
    access_token: String,
    expires_in: Num,
    #[serde(default)]
    status: Option<String>,
}

/// A FHIR `OperationOutcome`, as SATUSEHAT answers errors: the texts of its issues.
#[derive(Debug, Clone, Deserialize)]
pub struct Outcome {
    /// Always `"OperationOutcome"`.
    #[serde(rename = "resourceType", default)]
    pub resource_type: String,
    /// Its issues.
    #[serde(default)]
    pub issue: Vec<Issue>,
}

/// One issue of an [`Outcome`].
#[derive(Debug, Clone, Deserialize)]
pub struct Issue {
    /// `error`, `fatal`, …
    #[serde(default)]
    pub severity: String,
    /// `invalid`, `forbidden`, `throttled`, …
    #[serde(default)]
    pub code: String,
    /// The human text.
    #[serde(default)]
    pub details: Option<Details>,
}

/// The details of an [`Issue`].
#[derive(Debug, Clone, Deserialize)]
pub struct Details {
    /// The text.
    #[serde(default)]
    pub text: String,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let texts: Vec<&str> = self
            .issue
            .iter()
            .map(|i| {
                i.details
                    .as_ref()
                    .map_or(i.code.as_str(), |d| d.text.as_str())
            })
            .collect();
        write!(f, "OperationOutcome: {}", texts.join("; "))
    }
}

impl std::error::Error for Outcome {}

/// The token in a 200 answer: `expires_in` seconds from `sent_at`.
pub(crate) fn token(response: &HttpResponse, sent_at: OffsetDateTime) -> Result<Token, Error> {
    let grant: Grant = response.json(NAME)?;
    if grant.status.as_deref().is_some_and(|s| s != "approved") {
        return Err(Error::reauthentication_required(format!(
            "the {NAME} application is not approved: ask its administrator to approve it"
        )));
    }
    let secs = grant.expires_in.value().ok_or_else(|| {
        Error::protocol(format!(
            "{NAME} answered an expires_in that is not a number"
        ))
    })?;
    let expires = expiry::after_secs(sent_at, secs).ok_or_else(|| {
        Error::protocol(format!("{NAME} answered a token that has already expired"))
    })?;
    if grant.access_token.trim().is_empty() {
        return Err(Error::protocol(format!(
            "{NAME} answered an empty access token"
        )));
    }
    Token::bearer(
        SecretString::from(grant.access_token),
        sent_at,
        Some(expires),
    )
}

/// The error for an answer that is not a success.
pub(crate) fn rejection(response: &HttpResponse, now: OffsetDateTime) -> Error {
    let outcome = response
        .error_json::<Outcome>()
        .ok()
        .filter(|o| o.resource_type == "OperationOutcome");
    let said = outcome
        .as_ref()
        .map(|o| response.server_text(&o.to_string(), 200))
        .unwrap_or_default();
    let status = response.status.as_u16();
    let error = match status {
        400 | 401 | 403 => Error::reauthentication_required(format!(
            "{NAME} refused the client ID or secret (status {status}{}{said}): check them in the SATUSEHAT developer portal",
            if said.is_empty() { "" } else { ": " }
        )),
        _ => return response.unexpected_status(NAME, now),
    };
    match outcome {
        Some(outcome) => error.with_source(Outcome {
            issue: outcome
                .issue
                .into_iter()
                .map(|mut i| {
                    if let Some(d) = i.details.as_mut() {
                        d.text = response.server_text(&d.text, 200);
                    }
                    i
                })
                .collect(),
            ..outcome
        }),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use auth_core::{ErrorKind, http::StatusCode};

    use super::*;

    const SENT: OffsetDateTime = auth_core::time::macros::datetime!(2026-03-01 08:00 UTC);

    fn answer(status: u16, body: &str) -> HttpResponse {
        HttpResponse::new(
            StatusCode::from_u16(status).unwrap(),
            Some("application/json"),
            body.to_owned(),
        )
    }

    #[test]
    fn the_flat_all_string_answer_gives_a_token_for_expires_in_seconds() {
        let body = r#"{"refresh_token_expires_in":"0","api_product_list":"[api-dev]","organization_name":"ihs-prod-1","developer.email":"x@y.id","token_type":"BearerToken","issued_at":"1700000000000","client_id":"cid","access_token":"abc","application_name":"app","scope":"","expires_in":"14399","refresh_count":"0","status":"approved"}"#;
        let token = token(&answer(200, body), SENT).unwrap();
        assert_eq!(
            token.expires_at(),
            Some(SENT + std::time::Duration::from_secs(14399))
        );
    }

    #[test]
    fn absurd_or_missing_lifetimes_are_protocol_errors() {
        for body in [
            r#"{"access_token":"abc","expires_in":"-1"}"#,
            r#"{"access_token":"abc","expires_in":"soon"}"#,
            r#"{"access_token":"abc"}"#,
            r#"{"access_token":"","expires_in":"60"}"#,
        ] {
            assert_eq!(
                token(&answer(200, body), SENT).unwrap_err().kind(),
                ErrorKind::Protocol,
                "{body}"
            );
        }
        let far = token(
            &answer(
                200,
                &format!(r#"{{"access_token":"a","expires_in":"{}"}}"#, i64::MAX),
            ),
            SENT,
        )
        .unwrap();
        assert_eq!(far.expires_at(), Some(expiry::LATEST));
    }

    #[test]
    fn an_operation_outcome_is_the_errors_source_and_its_text_is_shown() {
        let body = r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","details":{"text":"Invalid client credentials"}}]}"#;
        let err = rejection(&answer(401, body), SENT);
        assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);
        assert!(
            err.to_string().contains("Invalid client credentials"),
            "{err}"
        );
        assert!(std::error::Error::source(&err).is_some());
    }
}
