//! `kunci verify [PROFILE]`: Stamps' verify-token on the current token, its claims as JSON.

use kunci::{EnvProvider as _, ProviderKind, SharedTokenSource, providers::stamps};

use crate::{
    context::{Context, configuration_hint, outcome_hint},
    failure::{Failure, code},
    output::out_line,
};

/// `kunci verify PROFILE`.
pub(crate) async fn run(ctx: &Context, profile: Option<&str>) -> Result<(), Failure> {
    let profile = ctx.profile(profile)?;
    if profile.kind != ProviderKind::Stamps {
        return Err(Failure::configuration(format!(
            "`kunci verify` is for Stamps tokens; profile `{}` is {}",
            profile.name,
            profile.kind.display_name()
        )));
    }
    let store = ctx.open_store().await?;
    let vars = ctx.variables(&profile, &store).await?;
    let source =
        stamps::StampsSource::from_lookup(&|name| vars.get(name).cloned(), ctx.http.clone())
            .map_err(|e| configuration_hint(e.into(), &profile))?;
    if matches!(
        source.config().credentials(),
        stamps::Credentials::Static(_)
    ) {
        return Err(Failure::configuration(
            "a Stamps static token is not a JWT and cannot be verified (verify-token checks access tokens from STAMPS_TOKEN and STAMPS_MERCHANT_ID)",
        ));
    }
    let key = source.config().store_key();
    let manager = ctx
        .manager(SharedTokenSource::new(source.clone()), key, store)
        .await?;
    let token = manager
        .token()
        .await
        .map_err(|e| outcome_hint(e.into(), &profile))?;
    match source.verify(token.secret()).await? {
        stamps::Verification::Valid(claims) => {
            // Every claim as Stamps wrote it (a `user_id` string stays a string), documented
            // ones first in simplejwt's order.
            let text = serde_json::to_string_pretty(&claims)
                .map_err(|e| Failure::new(code::OTHER, format!("cannot render the claims: {e}")))?;
            out_line(&text)
        }
        stamps::Verification::Rejected(rejection) if rejection.is_token_not_valid() => {
            Err(Failure::new(
                code::REAUTHENTICATE,
                format!("stamps refused the stored token: {rejection}"),
            )
            .hint(format!(
                "run `kunci logout {0}` and `kunci token {0}` to get a new one",
                profile.name
            )))
        }
        stamps::Verification::Rejected(rejection) => Err(Failure::new(
            code::REAUTHENTICATE,
            format!("stamps refused the credential behind the stored token: {rejection}"),
        )
        .hint(
            "a new token will not help: check STAMPS_TOKEN and STAMPS_MERCHANT_ID, or ask Stamps about the account",
        )),
        other => Err(Failure::new(
            code::PROTOCOL,
            format!("stamps answered verify-token in an unknown way: {other:?}"),
        )),
    }
}
