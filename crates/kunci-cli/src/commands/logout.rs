//! `kunci logout [PROFILE]`: removes the account's stored token (and refresh material) and
//! the profile's saved login.
//!
//! It needs no secret: the account is told by the variables that identify it (a client ID, a
//! merchant ID, an account name), because a source's store key is never derived from a
//! secret (`TokenSource::store_key`). Secrets that are not at hand are stood in for by a
//! placeholder to build the source, which is only asked for its key and never sends anything.
//! A store that does not exist is not created.

use std::collections::HashMap;

use auth_core::StoreKey;

use crate::{config::Profile, context::Context, failure::Failure, logins, output::err_line};

/// What stands in for a secret that is not at hand; never sent.
const PLACEHOLDER: &str = "kunci-logout-placeholder";

/// `kunci logout PROFILE`.
pub(crate) async fn run(ctx: &Context, profile: Option<&str>) -> Result<(), Failure> {
    let profile = ctx.profile(profile)?;
    let (store, described) = ctx.open_store_to_read().await?;
    let login = logins::load(&store, &profile).await.unwrap_or_default();
    let vars = profile.available_variables(&login, &|name| std::env::var(name).ok());
    let token_key = account_key(ctx, &profile, &vars);
    let mut removed = Vec::new();
    if let Some(key) = &token_key {
        let had_token = store.load(key).await.map_err(kunci::Error::from)?.is_some();
        if had_token {
            store.delete(key).await.map_err(kunci::Error::from)?;
            removed.push(format!("the token entry `{key}`"));
        }
    }
    let had_login = logins::delete(&store, &profile).await?;
    if had_login {
        removed.push("the saved login".to_owned());
    }
    if token_key.is_none() && !had_login {
        let identifiers: Vec<&str> = profile
            .kind
            .variables()
            .iter()
            .filter(|v| v.credential && !v.secret)
            .map(|v| v.name)
            .collect();
        let what = if identifiers.is_empty() {
            "its variables".to_owned()
        } else {
            identifiers.join(" or ")
        };
        return Err(Failure::configuration(format!(
            "cannot tell which account profile `{}` is: {what} is not set and there is no saved login",
            profile.name
        ))
        .hint(format!(
            "set {what} as for `kunci token` (secrets are not needed)"
        )));
    }
    let what = if removed.is_empty() {
        "nothing was stored".to_owned()
    } else {
        format!("removed {}", removed.join(" and "))
    };
    err_line(&format!("{}: {what} ({described})", profile.name));
    Ok(())
}

/// The store key of the account `vars` name: built from them as they are, else with every
/// missing secret stood in for, else with one missing secret stood in for at a time (Stamps:
/// either a token with a merchant ID, or a static token), in declaration order.
fn account_key(
    ctx: &Context,
    profile: &Profile,
    vars: &HashMap<String, String>,
) -> Option<StoreKey> {
    let missing: Vec<&str> = profile
        .kind
        .variables()
        .iter()
        .filter(|v| v.secret && v.credential && !vars.contains_key(v.name))
        .map(|v| v.name)
        .collect();
    let with = |names: &[&str]| {
        let mut vars = vars.clone();
        for name in names {
            vars.insert((*name).to_owned(), PLACEHOLDER.to_owned());
        }
        vars
    };
    let mut candidates = vec![vars.clone()];
    if !missing.is_empty() {
        candidates.push(with(&missing));
        if missing.len() > 1 {
            candidates.extend(missing.iter().map(|name| with(&[name])));
        }
    }
    candidates
        .iter()
        .find_map(|vars| ctx.source_from(profile, vars).ok().map(|(_, key)| key))
}
