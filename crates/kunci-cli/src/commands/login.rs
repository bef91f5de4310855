//! `kunci login [PROFILE] [--email EMAIL]`: secrets read from the terminal (without echo) or
//! stdin, kept in the store as the profile's saved login ([`crate::logins`]).
//!
//! Kalsel.dev can also be logged in to with email and password (`--email`): they are sent
//! once to its login route, and only the refresh token it answers is saved — the password is
//! kept in a `SecretString` for that one request and goes nowhere else.

use std::{
    collections::HashMap,
    io::{IsTerminal as _, Write as _},
};

use auth_core::{Clock as _, StoreKey, StoredEntry};
use kunci::{
    ProviderKind, SharedTokenSource, SharedTokenStore, core::http::HttpClient, providers::kalsel,
};
use secrecy::{ExposeSecret as _, SecretString};

use crate::{
    config::{Profile, Setting},
    context::{Context, configuration_hint},
    failure::{Failure, code},
    logins,
    output::{err_line, local_time, relative},
};

/// The variables `kunci login` asks for: the provider's credentials that the profile does not
/// already take from elsewhere.
pub(crate) fn prompts(profile: &Profile) -> Vec<&'static str> {
    profile
        .kind
        .variables()
        .iter()
        .filter(|v| v.credential)
        .map(|v| v.name)
        .filter(|v| matches!(profile.settings.get(v), None | Some(Setting::Login)))
        .collect()
}

/// `kunci login PROFILE [--email EMAIL]`.
pub(crate) async fn run(
    ctx: &Context,
    profile: Option<&str>,
    email: Option<&str>,
) -> Result<(), Failure> {
    let profile = ctx.profile(profile)?;
    if let Some(email) = email {
        return with_password(ctx, &profile, email).await;
    }
    let store = ctx.open_store().await?;
    let prompts = prompts(&profile);
    if prompts.is_empty() {
        return Err(Failure::configuration(format!(
            "profile `{}` takes every credential from the config file; there is nothing to log in",
            profile.name
        )));
    }
    let secrets = if std::io::stdin().is_terminal() {
        read_terminal(&profile, &prompts)?
    } else {
        read_lines(&prompts, std::io::stdin().lock())?
    };
    if secrets.is_empty() {
        return Err(Failure::configuration(
            "nothing was entered; nothing was saved",
        ));
    }
    let (key, _, kept) = save_login(ctx, &profile, &store, secrets.clone()).await?;
    let mut names: Vec<&str> = secrets.keys().map(String::as_str).collect();
    names.sort_unstable();
    err_line(&format!(
        "{}: saved {} for {key} in {}",
        profile.name,
        names.join(", "),
        where_kept(kept, &store)
    ));
    Ok(())
}

/// `kunci login kalsel --email EMAIL`: the password read without echo (or as stdin's first
/// line), exchanged once for the refresh token, which is saved as `KALSEL_REFRESH_TOKEN`; the
/// login's access token is stored as the account's token, so the next command sends nothing.
async fn with_password(ctx: &Context, profile: &Profile, email: &str) -> Result<(), Failure> {
    if profile.kind != ProviderKind::Kalsel {
        return Err(Failure::configuration(format!(
            "--email is for Kalsel.dev, whose email and password are exchanged for a refresh token; profile `{}` is {}",
            profile.name,
            profile.kind.display_name()
        )));
    }
    if !prompts(profile).contains(&kalsel::ENV_REFRESH_TOKEN) {
        return Err(Failure::configuration(format!(
            "profile `{}` takes {} from the config file; a login could not replace it",
            profile.name,
            kalsel::ENV_REFRESH_TOKEN
        )));
    }
    let store = ctx.open_store().await?;
    // The base URL and the lifetime (`limit`) come from the profile as for every other
    // command, and are checked before the password is asked for.
    let vars = ctx.variables(profile, &store).await?;
    let request = kalsel::LoginRequest::from_lookup(email, |name| vars.get(name).cloned())
        .map_err(|e| configuration_hint(e.into(), profile))?;
    let password = read_password(request.email())?;
    let http = HttpClient::new(ctx.http.clone());
    let clock = &ctx.clock;
    let login = request
        .send(&http, &password, clock.now())
        .await
        .map_err(|e| {
            let failure = Failure::from(e);
            if failure.code == code::REAUTHENTICATE {
                failure.hint("check the email and password (nothing was saved)")
            } else {
                failure.or_hint("nothing was saved")
            }
        })?;
    let secrets = HashMap::from([(
        kalsel::ENV_REFRESH_TOKEN.to_owned(),
        login.refresh_token.expose_secret().to_owned(),
    )]);
    let (key, source, kept) = save_login(ctx, profile, &store, secrets).await?;
    // Best effort: without it the next command refreshes once. Tied to the new login's
    // credential, as the manager ties what it saves, or the manager would not adopt it.
    let mut entry = StoredEntry::with_token(login.access_token);
    entry.credential = source.credential().map(|c| c.fingerprint(&key));
    if let Err(e) = store.save(&key, &entry, 0).await {
        tracing::info!(key = %key, error = %e, "the login's access token was not stored");
    }
    let until = login
        .refresh_token_expires_at
        .map_or_else(String::new, |at| {
            format!(
                "; log in again before {} ({})",
                local_time(at, ctx.offset),
                relative(at - clock.now())
            )
        });
    err_line(&format!(
        "{}: logged in to Kalsel.dev as {}; saved {} for {key} in {}{until}",
        profile.name,
        request.email(),
        kalsel::ENV_REFRESH_TOKEN,
        where_kept(kept, &store)
    ));
    Ok(())
}

/// `file:/home/me/.local/share/kunci`, or `the OS keychain (named in file:…)`.
fn where_kept(kept: logins::Kept, store: &SharedTokenStore) -> String {
    match kept {
        logins::Kept::Store => store.describe(),
        logins::Kept::Keychain => format!("the OS keychain (named in {})", store.describe()),
    }
}

/// Saves the login of `profile` and drops the token entry of the account it names. Answers
/// that account's store key, the source the login configures and where the secrets were kept.
async fn save_login(
    ctx: &Context,
    profile: &Profile,
    store: &SharedTokenStore,
    secrets: HashMap<String, String>,
) -> Result<(StoreKey, SharedTokenSource, logins::Kept), Failure> {
    let vars = profile.variables(&secrets, &|name| std::env::var(name).ok())?;
    // For a bare provider name the environment wins over a saved login; here the values just
    // typed must be the ones checked, so they are laid over the environment's.
    let vars: HashMap<String, String> = vars.into_iter().chain(secrets.clone()).collect();
    let (source, key) = ctx
        .source_from(profile, &vars)
        .map_err(|e| e.hint("nothing was saved"))?;
    let kept = logins::save(store, profile, &secrets, &key).await?;
    Ok((key, source, kept))
}

/// The password: without echo on a terminal, else stdin's first line.
fn read_password(email: &str) -> Result<SecretString, Failure> {
    let raw = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Kalsel.dev password for {email}: "))
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    }
    .map_err(|e| Failure::configuration(format!("cannot read the password: {e}")))?;
    let password = SecretString::from(raw.trim_end_matches(['\r', '\n']).to_owned());
    if password.expose_secret().is_empty() {
        return Err(Failure::configuration(
            "no password was entered; nothing was sent or saved",
        ));
    }
    Ok(password)
}

fn read_terminal(
    profile: &Profile,
    prompts: &[&'static str],
) -> Result<HashMap<String, String>, Failure> {
    err_line(&format!(
        "{} credentials for profile `{}` (secrets are not echoed; an empty answer skips an optional one):",
        profile.kind.display_name(),
        profile.name
    ));
    if profile.kind == ProviderKind::Kalsel {
        err_line(&format!(
            "(or log in with email and password: `kunci login {} --email EMAIL`)",
            profile.name
        ));
    }
    let mut secrets = HashMap::new();
    for &var in prompts {
        let value = if profile.kind.declaration().is_secret(var) {
            rpassword::prompt_password(format!("{var}: "))
        } else {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{var}: ");
            let _ = err.flush();
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        }
        .map_err(|e| Failure::configuration(format!("cannot read {var}: {e}")))?;
        let value = value.trim_end_matches(['\r', '\n']).to_owned();
        if !value.is_empty() {
            secrets.insert(var.to_owned(), value);
        }
    }
    Ok(secrets)
}

/// Lines from a pipe: `NAME=value` in any order, or bare values in the order of `prompts`
/// (an empty line skips one). A line counts as `NAME=value` only when NAME is one of the
/// prompted variables, so a value holding `=` (base64) is read as a value.
pub(crate) fn read_lines(
    prompts: &[&'static str],
    input: impl std::io::BufRead,
) -> Result<HashMap<String, String>, Failure> {
    let mut secrets = HashMap::new();
    let mut next = prompts.iter();
    for line in input.lines() {
        let line = line.map_err(|e| Failure::configuration(format!("cannot read stdin: {e}")))?;
        let line = line.trim_end_matches('\r');
        if let Some((name, value)) = line.split_once('=')
            && let Some(var) = prompts.iter().find(|v| **v == name.trim())
        {
            if !value.is_empty() {
                secrets.insert((*var).to_owned(), value.to_owned());
            }
            continue;
        }
        let Some(var) = next.next() else {
            return Err(Failure::configuration(format!(
                "stdin has more lines than there are variables to read ({})",
                prompts.join(", ")
            )));
        };
        if !line.is_empty() {
            secrets.insert((*var).to_owned(), line.to_owned());
        }
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use kunci::ProviderKind;

    use super::*;
    use crate::config::Config;

    #[test]
    fn prompts_are_the_credentials() {
        let config = Config::default();
        let p = |name| prompts(&config.profile(name).unwrap());
        assert_eq!(p("sehatmu"), ["SEHATMU_CLIENT_ID", "SEHATMU_CLIENT_SECRET"]);
        assert_eq!(p("kalsel"), ["KALSEL_REFRESH_TOKEN"]);
        assert_eq!(
            p("stamps"),
            ["STAMPS_TOKEN", "STAMPS_MERCHANT_ID", "STAMPS_STATIC_TOKEN"]
        );
        assert_eq!(
            p("krmpesan"),
            [
                "KRMPESAN_REFRESH_TOKEN",
                "KRMPESAN_DEVICE_KEY",
                "KRMPESAN_ID_TOKEN"
            ]
        );
        let config = Config::parse(
            "[profiles.k]\nprovider = \"sehatmu\"\nclient_id = \"abc\"\nclient_secret = \"login\"\n",
        )
        .unwrap();
        assert_eq!(
            prompts(&config.profile("k").unwrap()),
            ["SEHATMU_CLIENT_SECRET"]
        );
        assert!(ProviderKind::from_name("sehatmu").is_some());
    }

    #[test]
    fn lines_by_position_or_by_name() {
        let prompts = ["STAMPS_TOKEN", "STAMPS_MERCHANT_ID", "STAMPS_STATIC_TOKEN"];
        let read = read_lines(&prompts, "abc==\n42\n".as_bytes()).unwrap();
        assert_eq!(read["STAMPS_TOKEN"], "abc==");
        assert_eq!(read["STAMPS_MERCHANT_ID"], "42");
        assert_eq!(read.len(), 2);
        let read = read_lines(&prompts, "STAMPS_STATIC_TOKEN=x=y\n".as_bytes()).unwrap();
        assert_eq!(read["STAMPS_STATIC_TOKEN"], "x=y");
        assert_eq!(read.len(), 1);
        let read = read_lines(&prompts, "\n\nperm\n".as_bytes()).unwrap();
        assert_eq!(read["STAMPS_STATIC_TOKEN"], "perm");
        assert!(read_lines(&prompts, "a\nb\nc\nd\n".as_bytes()).is_err());
    }
}
