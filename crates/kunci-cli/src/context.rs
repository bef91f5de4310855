//! The commands that work on a profile: token, header, status, login, logout, verify.

use std::{collections::HashMap, time::Duration};

use auth_core::{RefreshPolicy, StoreKey, StoredEntry, SystemClock};
use kunci::{
    Cipher, EnvProvider as _, HttpConfig, ManagerBuilder, ProviderKind, SharedTokenSource,
    SharedTokenStore, StoreSpec, TokenManager, providers::stamps,
};
use secrecy::{ExposeSecret as _, SecretString};
use time::UtcOffset;

use crate::{
    cli::Global,
    config::{Config, Profile},
    failure::{Failure, code, out_line},
    login, status,
};

/// What every profile command needs: the config, the store and the HTTP settings.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) config: Config,
    pub(crate) spec: StoreSpec,
    cipher: Option<Cipher>,
    store_ca: Option<std::path::PathBuf>,
    pub(crate) http: HttpConfig,
    pub(crate) timeout: Duration,
}

impl Context {
    /// Reads the config file and decides the store, without opening anything.
    pub(crate) fn new(global: &Global) -> Result<Self, Failure> {
        let config = Config::load(global.config.as_deref())?;
        let spec_text = global
            .store
            .clone()
            .or_else(|| config.store.clone())
            .unwrap_or_default();
        let spec = StoreSpec::parse(&spec_text)?;
        // Set but unusable — not text, or not a key — is a configuration error: never a
        // silent fall-back to entries stored unencrypted.
        let cipher = match std::env::var(kunci::ENV_STORE_KEY) {
            Ok(encoded) => {
                Some(Cipher::from_encoded(&encoded).map_err(|e| {
                    Failure::configuration(format!("{}: {e}", kunci::ENV_STORE_KEY))
                })?)
            }
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(Failure::configuration(format!(
                    "{} is set but is not valid text; set it to a 32-byte key in base64 or hex, or unset it to store entries unencrypted",
                    kunci::ENV_STORE_KEY
                )));
            }
        };
        let mut http = HttpConfig::default().with_timeout(global.timeout);
        if let Some(path) = &global.ca_file {
            http = http.with_ca_file(path)?;
        }
        Ok(Self {
            config,
            spec,
            cipher,
            store_ca: global.store_ca.clone(),
            http,
            timeout: global.timeout,
        })
    }

    /// Opens the store (connects, for Redis and PostgreSQL).
    pub(crate) async fn open_store(&self) -> Result<SharedTokenStore, Failure> {
        self.spec
            .open_with(self.cipher.clone(), self.store_ca.as_deref())
            .await
            .map_err(|e| {
                Failure::from(e).or_hint(format!(
                    "the store is {}; choose another with --store or KUNCI_STORE",
                    self.spec.describe()
                ))
            })
    }

    /// The refresh policy: the default, with room for one request of `--timeout`.
    pub(crate) fn policy(&self) -> RefreshPolicy {
        let mut policy = RefreshPolicy::default();
        policy.refresh_timeout = policy
            .refresh_timeout
            .max(self.timeout + Duration::from_secs(30));
        policy
    }

    /// The variables of `profile`, with its saved login.
    pub(crate) async fn variables(
        &self,
        profile: &Profile,
        store: &SharedTokenStore,
    ) -> Result<HashMap<String, String>, Failure> {
        let login = login::load(store, profile).await?;
        profile.variables(&login, &|name| std::env::var(name).ok())
    }

    /// The profile's source and its store key.
    pub(crate) async fn source(
        &self,
        profile: &Profile,
        store: &SharedTokenStore,
    ) -> Result<(SharedTokenSource, StoreKey), Failure> {
        let vars = self.variables(profile, store).await?;
        let lookup = |name: &str| vars.get(name).cloned();
        let hint = |e: kunci::Error| configuration_hint(e.into(), profile);
        // Building a source is cheap: its HTTP client is built only if a request is sent.
        let source = profile
            .kind
            .source_from_lookup(&lookup, self.http.clone())
            .map_err(hint)?;
        let key = store_key(&source)?;
        Ok((source, key))
    }

    async fn manager(
        &self,
        source: SharedTokenSource,
        key: StoreKey,
        store: SharedTokenStore,
    ) -> Result<TokenManager, Failure> {
        Ok(ManagerBuilder::from_source(source, key)
            .store(store)
            .policy(self.policy())
            .build()
            .await?)
    }
}

/// The store key of the account `source` serves: its own, else `<name>:default` (the
/// manager's default).
pub(crate) fn store_key(source: &SharedTokenSource) -> Result<StoreKey, Failure> {
    match source.store_key() {
        Some(key) => Ok(key),
        None => Ok(StoreKey::for_account(source.name(), "default")?),
    }
}

/// Adds the usual way out to a configuration failure.
pub(crate) fn configuration_hint(failure: Failure, profile: &Profile) -> Failure {
    if failure.code != code::CONFIGURATION {
        return failure;
    }
    let vars = profile
        .kind
        .variables()
        .iter()
        .filter(|v| v.credential)
        .map(|v| v.name)
        .collect::<Vec<_>>()
        .join(", ");
    failure.or_hint(format!(
        "set {vars} in the environment, or run `kunci login {}`",
        profile.name
    ))
}

/// Adds what to do after a rejection.
fn outcome_hint(failure: Failure, profile: &Profile) -> Failure {
    match failure.code {
        code::REAUTHENTICATE => failure.or_hint(format!(
            "run `kunci login {0}` with new credentials (or `kunci logout {0}` before setting new environment variables)",
            profile.name
        )),
        _ => failure,
    }
}

async fn fetch(ctx: &Context, profile_name: &str) -> Result<(Profile, kunci::TokenGuard), Failure> {
    let profile = ctx.config.profile(profile_name)?;
    let store = ctx.open_store().await?;
    let (source, key) = ctx.source(&profile, &store).await?;
    let manager = ctx.manager(source, key, store).await?;
    let token = manager
        .token()
        .await
        .map_err(|e| outcome_hint(e.into(), &profile))?;
    Ok((profile, token))
}

/// `kunci token PROFILE`: from a running agent when one answers, else alone.
pub(crate) async fn token(ctx: &Context, profile: &str) -> Result<(), Failure> {
    let name = ctx.config.profile(profile)?.name;
    if let Some(reply) = crate::agent::client::ask(&name, ctx.timeout).await? {
        return out_line(reply.token.expose_secret());
    }
    let (_, token) = fetch(ctx, profile).await?;
    out_line(token.secret().expose_secret())
}

/// `kunci header PROFILE`: from a running agent when one answers, else alone.
pub(crate) async fn header(ctx: &Context, profile: &str) -> Result<(), Failure> {
    let name = ctx.config.profile(profile)?.name;
    if let Some(reply) = crate::agent::client::ask(&name, ctx.timeout).await? {
        return out_line(&format!(
            "Authorization: {} {}",
            reply.scheme,
            reply.token.expose_secret()
        ));
    }
    let (_, token) = fetch(ctx, profile).await?;
    out_line(&format!(
        "Authorization: {} {}",
        token.scheme(),
        token.secret().expose_secret()
    ))
}

/// `kunci verify PROFILE`: Stamps' verify-token on the current token.
pub(crate) async fn verify(ctx: &Context, profile_name: &str) -> Result<(), Failure> {
    let profile = ctx.config.profile(profile_name)?;
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

/// `kunci logout PROFILE`: removes the token entry and the saved login.
pub(crate) async fn logout(ctx: &Context, profile_name: &str) -> Result<(), Failure> {
    let profile = ctx.config.profile(profile_name)?;
    let store = ctx.open_store().await?;
    let login_key = profile.login_key()?;
    let had_login = store
        .load(&login_key)
        .await
        .map_err(kunci::Error::from)?
        .is_some();
    let token_key = match ctx.source(&profile, &store).await {
        Ok((_, key)) => Some(key),
        Err(e) if e.code == code::CONFIGURATION => None,
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    if let Some(key) = &token_key {
        let had_token = store.load(key).await.map_err(kunci::Error::from)?.is_some();
        store.delete(key).await.map_err(kunci::Error::from)?;
        if had_token {
            removed.push(format!("the token entry `{key}`"));
        }
    }
    if had_login {
        store.delete(&login_key).await.map_err(kunci::Error::from)?;
        removed.push("the saved login".to_owned());
    }
    if token_key.is_none() && !had_login {
        return Err(Failure::configuration(format!(
            "cannot tell which account profile `{}` is: its variables are not set and there is no saved login",
            profile.name
        ))
        .hint("set the same variables as for `kunci token`"));
    }
    let what = if removed.is_empty() {
        "nothing was stored".to_owned()
    } else {
        format!("removed {}", removed.join(" and "))
    };
    crate::failure::err_line(&format!("{}: {what} ({})", profile.name, store.describe()));
    Ok(())
}

/// `kunci status [PROFILE]`.
pub(crate) async fn status(
    ctx: &Context,
    profile: Option<&str>,
    offset: Option<UtcOffset>,
) -> Result<(), Failure> {
    let store = ctx.open_store().await?;
    let clock = SystemClock::new();
    // In a listing an unconfigured profile is a row; asked for by name, it is an error.
    let listing = profile.is_none();
    let profiles = match profile {
        Some(name) => vec![ctx.config.profile(name)?],
        None => {
            let mut profiles: Vec<Profile> = ctx.config.profiles.values().cloned().collect();
            for kind in ProviderKind::all() {
                if ctx.config.profiles.contains_key(kind.name()) {
                    continue;
                }
                let profile = ctx.config.profile(kind.name())?;
                let any_env = kind
                    .variables()
                    .iter()
                    .any(|v| std::env::var_os(v.name).is_some());
                let has_login = store
                    .load(&profile.login_key()?)
                    .await
                    .map_err(kunci::Error::from)?
                    .is_some();
                if any_env || has_login {
                    profiles.push(profile);
                }
            }
            profiles
        }
    };
    let mut rows = Vec::new();
    for profile in &profiles {
        let row = match ctx.source(profile, &store).await {
            Ok((source, key)) => {
                let entry = store.load(&key).await.map_err(kunci::Error::from)?;
                status::Row::from_entry(profile, &key, entry.as_ref(), &clock, offset)
                    .with_credential_expiry(source.credential_expires_at())
            }
            Err(e) if e.code == code::CONFIGURATION && listing => {
                status::Row::not_configured(profile)
            }
            Err(e) => return Err(e),
        };
        rows.push(row);
    }
    if rows.is_empty() {
        crate::failure::err_line(&format!(
            "no profile is configured: set a provider's variables, run `kunci login PROVIDER`, or add profiles to the config file (store: {})",
            ctx.spec.describe()
        ));
        return Ok(());
    }
    let table = status::render(&rows, &store.describe(), offset, &clock);
    out_line(table.trim_end())
}

/// Saves the login of `profile` and drops the token entry of the account it names. Answers
/// that account's store key and the source the login configures.
pub(crate) async fn save_login(
    ctx: &Context,
    profile: &Profile,
    store: &SharedTokenStore,
    secrets: HashMap<String, String>,
) -> Result<(StoreKey, SharedTokenSource), Failure> {
    let vars = profile.variables(&secrets, &|name| std::env::var(name).ok())?;
    // For a bare provider name the environment wins over a saved login; here the values just
    // typed must be the ones checked, so they are laid over the environment's.
    let vars: HashMap<String, String> = vars.into_iter().chain(secrets.clone()).collect();
    let source = profile
        .kind
        .source_from_lookup(&|name| vars.get(name).cloned(), ctx.http.clone())
        .map_err(|e| Failure::from(e).hint("nothing was saved"))?;
    let key = store_key(&source)?;
    let login_key = profile.login_key()?;
    let json = serde_json::to_string(&secrets)
        .map_err(|e| Failure::new(code::OTHER, format!("cannot encode the login: {e}")))?;
    let mut entry = StoredEntry::default();
    entry.refresh = Some(SecretString::from(json));
    for _ in 0..3 {
        let version = store
            .load(&login_key)
            .await
            .map_err(kunci::Error::from)?
            .map_or(0, |e| e.version);
        match store.save(&login_key, &entry, version).await {
            Ok(_) => {
                // A token or rotated refresh token of the old login must not outlive it.
                store.delete(&key).await.map_err(kunci::Error::from)?;
                return Ok((key, source));
            }
            Err(auth_core::StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(kunci::Error::from(e).into()),
        }
    }
    Err(Failure::new(
        code::UNAVAILABLE,
        "the saved login kept being changed by another process; try again",
    ))
}
