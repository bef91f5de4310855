//! `kunci header [PROFILE]`: `Authorization: <scheme> <token>`, for `curl -H`.

use secrecy::ExposeSecret as _;

use crate::{context::Context, failure::Failure, output::out_line};

/// `kunci header`: from a running agent when one answers, else alone (as `kunci token`).
pub(crate) async fn run(ctx: &Context, profile: Option<&str>) -> Result<(), Failure> {
    let profile = ctx.profile(profile)?;
    if let Some(reply) = crate::agent::client::ask(&profile.name, ctx.timeout).await? {
        return out_line(&format!(
            "Authorization: {} {}",
            reply.scheme,
            reply.token.expose_secret()
        ));
    }
    let token = super::token::get(ctx, &profile).await?;
    out_line(&format!(
        "Authorization: {} {}",
        token.scheme(),
        token.secret().expose_secret()
    ))
}
