//! `kunci login`: secrets read from the terminal (without echo) or stdin, kept in the store
//! under `login:<profile>` as a JSON object in the entry's secret field (the file store writes
//! it mode 0600, encrypted at rest with `KUNCI_STORE_KEY`).

use std::{
    collections::HashMap,
    io::{IsTerminal as _, Write as _},
};

use kunci::SharedTokenStore;
use secrecy::ExposeSecret as _;

use crate::{
    commands::{Context, save_login},
    config::{Profile, Setting, is_credential, is_secret},
    failure::{Failure, code, err_line},
};

/// The secrets `kunci login` saved for `profile` (empty when there are none).
pub(crate) async fn load(
    store: &SharedTokenStore,
    profile: &Profile,
) -> Result<HashMap<String, String>, Failure> {
    let key = profile.login_key()?;
    let Some(entry) = store.load(&key).await.map_err(kunci::Error::from)? else {
        return Ok(HashMap::new());
    };
    let Some(secret) = entry.refresh else {
        return Ok(HashMap::new());
    };
    serde_json::from_str(secret.expose_secret()).map_err(|_| {
        Failure::new(
            code::UNAVAILABLE,
            format!("the saved login `{key}` is unreadable"),
        )
        .hint(format!(
            "run `kunci logout {0}` and `kunci login {0}` again",
            profile.name
        ))
    })
}

/// The variables `kunci login` asks for: the provider's credentials that the profile does not
/// already take from elsewhere.
pub(crate) fn prompts(profile: &Profile) -> Vec<&'static str> {
    profile
        .kind
        .env_vars()
        .iter()
        .copied()
        .filter(|v| is_credential(v))
        .filter(|v| matches!(profile.settings.get(v), None | Some(Setting::Login)))
        .collect()
}

/// `kunci login PROFILE`.
pub(crate) async fn run(ctx: &Context, profile_name: &str) -> Result<(), Failure> {
    let profile = ctx.config.profile(profile_name)?;
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
    let key = save_login(ctx, &profile, &store, secrets.clone()).await?;
    let mut names: Vec<&str> = secrets.keys().map(String::as_str).collect();
    names.sort_unstable();
    err_line(&format!(
        "{}: saved {} for {key} in {}",
        profile.name,
        names.join(", "),
        store.describe()
    ));
    Ok(())
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
    let mut secrets = HashMap::new();
    for &var in prompts {
        let value = if is_secret(var) {
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
