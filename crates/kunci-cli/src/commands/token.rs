//! `kunci token [PROFILE] [--json]`: the token alone on one line, or as JSON.

use kunci::TokenGuard;
use secrecy::ExposeSecret as _;

use crate::{
    config::Profile,
    context::{Context, outcome_hint},
    failure::Failure,
    output::{State, out_json, out_line, rfc3339},
};

/// `kunci token`: from a running agent when one answers, else alone. `--json` always works
/// alone: the agent's answer to this client carries no expiry.
pub(crate) async fn run(ctx: &Context, profile: Option<&str>, json: bool) -> Result<(), Failure> {
    let profile = ctx.profile(profile)?;
    if !json && let Some(reply) = crate::agent::client::ask(&profile.name, ctx.timeout).await? {
        return out_line(reply.token.expose_secret());
    }
    let token = get(ctx, &profile).await?;
    if json {
        return out_json(&TokenJson::new(ctx, &profile, &token));
    }
    out_line(token.secret().expose_secret())
}

/// The token of `profile`: the stored one while it is valid, else one request (one for all
/// the processes that ask at once), stored before it is handed out.
pub(crate) async fn get(ctx: &Context, profile: &Profile) -> Result<TokenGuard, Failure> {
    let store = ctx.open_store().await?;
    let (source, key) = ctx.source(profile, &store).await?;
    let manager = ctx.manager(source, key, store).await?;
    manager
        .token()
        .await
        .map_err(|e| outcome_hint(e.into(), profile))
}

/// `kunci token --json`: one object on one line (documented in docs/cli.md).
#[derive(serde::Serialize)]
struct TokenJson<'a> {
    profile: &'a str,
    provider: &'static str,
    token: &'a str,
    scheme: &'a str,
    /// RFC 3339 in UTC; `null` for a token that does not expire.
    expires_at: Option<String>,
    state: State,
}

impl<'a> TokenJson<'a> {
    fn new(ctx: &Context, profile: &'a Profile, token: &'a TokenGuard) -> Self {
        Self {
            profile: &profile.name,
            provider: profile.kind.name(),
            token: token.secret().expose_secret(),
            scheme: token.scheme().as_str(),
            expires_at: token.expires_at().and_then(rfc3339),
            state: State::of(Some(token), &ctx.clock),
        }
    }
}
