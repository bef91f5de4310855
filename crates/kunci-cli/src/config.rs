//! The config file (TOML profiles), profile resolution, and the variables a provider is built
//! from: the profile's settings, the process environment and the secrets `kunci login` saved.
//!
//! ```toml
//! store = "/var/lib/kunci"                    # optional; --store and KUNCI_STORE win
//! default_profile = "klinik"                  # optional; PROFILE and KUNCI_PROFILE win
//!
//! [profiles.klinik]
//! provider = "sehatmu"
//! base_url = "https://istanbul.muhammadiyah.or.id"
//! client_id = "3310fd56-….sehatmu.client"    # a plain value (not for secrets)
//! client_secret = "env:KLINIK_SEHATMU_SECRET" # or "file:/run/secrets/x", or "login"
//!
//! [profiles.merchants]                        # accounts a service's TokenPool stored
//! provider = "stamps"
//! accounts = "stamps:"                        # `kunci status` lists every key under it
//! ```

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

use kunci::{ProviderKind, StoreKey};

use crate::failure::Failure;

/// The loaded config file (empty when there is none).
#[derive(Debug, Default)]
pub(crate) struct Config {
    /// Where it was read from.
    pub(crate) path: Option<PathBuf>,
    /// Its `store`, if any.
    pub(crate) store: Option<String>,
    /// Its `default_profile`: the profile a command uses when none is named and
    /// `KUNCI_PROFILE` is unset.
    pub(crate) default_profile: Option<String>,
    pub(crate) profiles: BTreeMap<String, Profile>,
    /// The `[agent]` table, read by `kunci agent` (`agent::settings`).
    pub(crate) agent: Option<toml::Table>,
}

/// Where one variable's value comes from, as a profile says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Setting {
    /// The value itself (never a secret: those must come from elsewhere).
    Value(String),
    /// `env:NAME`: another environment variable.
    Env(String),
    /// `file:PATH`: a file's content, without the final line break.
    File(PathBuf),
    /// `login`: only what `kunci login PROFILE` saved.
    Login,
}

/// A profile: a name, a provider, and the settings of its variables.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    pub(crate) name: String,
    pub(crate) kind: ProviderKind,
    /// Variable name (`SEHATMU_CLIENT_ID`) → where its value comes from.
    pub(crate) settings: BTreeMap<&'static str, Setting>,
    /// From the config file (`true`) or a bare provider name (`false`).
    pub(crate) from_config: bool,
    /// `accounts = "PREFIX"`: the profile stands for every account stored under keys that start
    /// with `PREFIX` (a service's [`kunci::TokenPool`] wrote them); `kunci status` lists them.
    pub(crate) accounts: Option<String>,
}

fn provider_names() -> String {
    ProviderKind::all()
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A profile's `accounts`: a store-key prefix (itself a valid store key).
fn accounts_prefix(value: toml::Value) -> Result<String, String> {
    let toml::Value::String(prefix) = value else {
        return Err("`accounts` must be a store-key prefix such as \"stamps:\"".to_owned());
    };
    // A prefix is the start of a key, so it is a key itself (the store's one rule for them).
    match auth_core::StoreKey::new(&prefix) {
        Ok(_) => Ok(prefix),
        Err(_) => Err(format!(
            "`accounts = \"{}\"` is not a store-key prefix: use ASCII letters, digits and `._:@-`, not starting with `.`",
            prefix.escape_debug()
        )),
    }
}

/// Profile names become part of a store key (`login:<profile>`).
fn check_profile_name(name: &str) -> Result<(), Failure> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Failure::configuration(format!(
            "`{}` is not a valid profile name: use ASCII letters, digits and `._-@`",
            name.escape_debug()
        )))
    }
}

impl Config {
    /// Reads `explicit` (which must exist), or the default file when it exists.
    pub(crate) fn load(explicit: Option<&Path>) -> Result<Self, Failure> {
        let (path, required) = match explicit {
            Some(path) => (path.to_owned(), true),
            None => match default_path() {
                Some(path) => (path, false),
                None => return Ok(Self::default()),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(e) => {
                return Err(Failure::configuration(format!(
                    "cannot read the config file {}: {e}",
                    path.display()
                ))
                .hint("pass an existing file with --config or KUNCI_CONFIG"));
            }
        };
        let mut config = Self::parse(&text).map_err(|e| {
            Failure::configuration(format!(
                "the config file {}: {}",
                path.display(),
                e.message()
            ))
        })?;
        config.path = Some(path);
        Ok(config)
    }

    /// Parses a config file's text.
    pub(crate) fn parse(text: &str) -> Result<Self, Failure> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            // toml's message quotes the offending line, which could be a secret: keep the
            // position only.
            let at = e
                .span()
                .map(|span| line_of(text, span.start))
                .map_or_else(String::new, |line| format!(" on line {line}"));
            Failure::configuration(format!("it is not valid TOML{at}"))
        })?;
        let mut config = Self::default();
        for (key, value) in table {
            match (key.as_str(), value) {
                ("store", toml::Value::String(store)) => config.store = Some(store),
                ("default_profile", toml::Value::String(name)) => {
                    check_profile_name(&name)?;
                    config.default_profile = Some(name);
                }
                ("agent", toml::Value::Table(agent)) => config.agent = Some(agent),
                ("profiles", toml::Value::Table(profiles)) => {
                    for (name, profile) in profiles {
                        let toml::Value::Table(profile) = profile else {
                            return Err(Failure::configuration(format!(
                                "`profiles.{name}` must be a table"
                            )));
                        };
                        let profile = Profile::parse(&name, profile)?;
                        config.profiles.insert(name, profile);
                    }
                }
                (other, _) => {
                    return Err(Failure::configuration(format!(
                        "unknown or mistyped top-level key `{other}` (known: store, default_profile, profiles, agent)"
                    )));
                }
            }
        }
        Ok(config)
    }

    /// The profile `name`: a config profile, else a provider configured from variables.
    pub(crate) fn profile(&self, name: &str) -> Result<Profile, Failure> {
        if let Some(profile) = self.profiles.get(name) {
            return Ok(profile.clone());
        }
        if let Some(kind) = ProviderKind::from_name(name) {
            return Ok(Profile {
                name: name.to_owned(),
                kind,
                settings: BTreeMap::new(),
                from_config: false,
                accounts: None,
            });
        }
        let known = if self.profiles.is_empty() {
            String::new()
        } else {
            format!(
                "; profiles: {}",
                self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        let file = self.path.as_ref().map_or_else(
            || "no config file is loaded".to_owned(),
            |p| format!("not in {}", p.display()),
        );
        Err(Failure::configuration(format!(
            "unknown profile `{}` ({file}); providers: {}{known}",
            name.escape_debug(),
            provider_names()
        )))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

/// `kunci/config.toml` in the platform config directory (`~/.config/kunci/config.toml`).
fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "kunci").map(|d| d.config_dir().join("config.toml"))
}

impl Profile {
    fn parse(name: &str, table: toml::Table) -> Result<Self, Failure> {
        check_profile_name(name)?;
        let at = |msg: String| Failure::configuration(format!("profile `{name}`: {msg}"));
        let kind = match table.get("provider") {
            Some(toml::Value::String(provider)) => {
                ProviderKind::from_name(provider).ok_or_else(|| {
                    at(format!(
                        "unknown provider `{}` (known: {})",
                        provider.escape_debug(),
                        provider_names()
                    ))
                })?
            }
            _ => {
                return Err(at(format!(
                    "`provider` is missing (one of: {})",
                    provider_names()
                )));
            }
        };
        let prefix = format!("{}_", kind.name().to_ascii_uppercase());
        let mut settings = BTreeMap::new();
        let mut accounts = None;
        for (key, value) in table {
            if key == "provider" {
                continue;
            }
            if key == "accounts" {
                accounts = Some(accounts_prefix(value).map_err(at)?);
                continue;
            }
            let wanted = if key.starts_with(&prefix) {
                key.clone()
            } else {
                format!("{prefix}{}", key.to_ascii_uppercase())
            };
            let Some(variable) = kind.declaration().variable(&wanted) else {
                let known: Vec<String> = kind
                    .variables()
                    .iter()
                    .map(|v| v.name.trim_start_matches(&prefix).to_ascii_lowercase())
                    .collect();
                return Err(at(format!(
                    "unknown setting `{key}` for {} (known: provider, accounts, {})",
                    kind.name(),
                    known.join(", ")
                )));
            };
            let raw = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                _ => return Err(at(format!("`{key}` must be a string or an integer"))),
            };
            let setting = if let Some(env) = raw.strip_prefix("env:") {
                Setting::Env(env.to_owned())
            } else if let Some(path) = raw.strip_prefix("file:") {
                Setting::File(PathBuf::from(path))
            } else if raw == "login" {
                Setting::Login
            } else if variable.secret {
                // The provider declares it secret: never a plain value in a file.
                return Err(at(format!(
                    "`{key}` is a secret: write \"env:VARIABLE\", \"file:PATH\" or \"login\" (and run `kunci login {name}`), never the value itself"
                )));
            } else {
                Setting::Value(raw)
            };
            settings.insert(variable.name, setting);
        }
        Ok(Self {
            name: name.to_owned(),
            kind,
            settings,
            from_config: true,
            accounts,
        })
    }

    /// The store key of this profile's saved login.
    pub(crate) fn login_key(&self) -> Result<StoreKey, Failure> {
        check_profile_name(&self.name)?;
        StoreKey::new(format!("login:{}", self.name)).map_err(Failure::from)
    }

    /// The variables the provider is built from.
    ///
    /// For a config profile: its setting, else the saved login, else the environment. For a
    /// bare provider name: the environment, else the saved login. `env` reads the process
    /// environment (a parameter so tests need not change it).
    pub(crate) fn variables(
        &self,
        login: &HashMap<String, String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<HashMap<String, String>, Failure> {
        let mut vars = HashMap::new();
        for var in self.kind.declaration().names() {
            if let Some(value) = self.variable(var, login, env)? {
                vars.insert(var.to_owned(), value);
            }
        }
        Ok(vars)
    }

    /// The variables that can be read, leaving out those whose setting cannot (an unset
    /// `env:` variable, an unreadable file, a `login` without one): what is known of the
    /// account when its credentials are not at hand (`kunci logout`).
    pub(crate) fn available_variables(
        &self,
        login: &HashMap<String, String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> HashMap<String, String> {
        self.kind
            .declaration()
            .names()
            .filter_map(|var| Some((var.to_owned(), self.variable(var, login, env).ok()??)))
            .collect()
    }

    /// One variable's value, by the precedence of [`variables`](Self::variables).
    fn variable(
        &self,
        var: &str,
        login: &HashMap<String, String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<String>, Failure> {
        let at = |msg: String| Failure::configuration(format!("profile `{}`: {msg}", self.name));
        let from_env = || env(var).filter(|v| !v.is_empty());
        let from_login = || login.get(var).cloned();
        Ok(match self.settings.get(var) {
            Some(Setting::Value(v)) => Some(v.clone()),
            Some(Setting::Env(name)) => Some(
                env(name)
                    .ok_or_else(|| at(format!("{var} comes from env:{name}, which is not set")))?,
            ),
            Some(Setting::File(path)) => Some(read_secret_file(path).map_err(|e| {
                at(format!(
                    "{var} comes from file:{}, which cannot be read: {e}",
                    path.display()
                ))
            })?),
            Some(Setting::Login) => Some(from_login().ok_or_else(|| {
                at(format!(
                    "{var} comes from the saved login, and there is none"
                ))
                .hint(format!("run `kunci login {}`", self.name))
            })?),
            None if self.from_config => from_login().or_else(from_env),
            None => from_env().or_else(from_login),
        })
    }
}

fn read_secret_file(path: &Path) -> std::io::Result<String> {
    let mut text = std::fs::read_to_string(path)?;
    let trimmed = text.trim_end_matches(['\r', '\n']).len();
    text.truncate(trimmed);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
store = "memory:"
default_profile = "klinik"

[profiles.klinik]
provider = "sehatmu"
base_url = "http://127.0.0.1:9"
client_id = "abc.sehatmu.client"
client_secret = "env:KLINIK_SECRET"

[profiles.toko]
provider = "stamps"
STAMPS_MERCHANT_ID = 42
token = "login"
"#;

    #[test]
    fn parses_profiles() {
        let config = Config::parse(FILE).unwrap();
        assert_eq!(config.store.as_deref(), Some("memory:"));
        assert_eq!(config.default_profile.as_deref(), Some("klinik"));
        let klinik = config.profile("klinik").unwrap();
        assert_eq!(klinik.kind, ProviderKind::SehatMu);
        assert_eq!(
            klinik.settings.get("SEHATMU_CLIENT_SECRET"),
            Some(&Setting::Env("KLINIK_SECRET".into()))
        );
        let toko = config.profile("toko").unwrap();
        assert_eq!(
            toko.settings.get("STAMPS_MERCHANT_ID"),
            Some(&Setting::Value("42".into()))
        );
        assert_eq!(toko.settings.get("STAMPS_TOKEN"), Some(&Setting::Login));
        assert!(!config.profile("kalsel").unwrap().from_config);
        assert!(config.profile("nope").is_err());
    }

    #[test]
    fn literal_secrets_and_unknown_settings_are_refused() {
        let err =
            Config::parse("[profiles.a]\nprovider = \"sehatmu\"\nclient_secret = \"hunter2\"\n")
                .unwrap_err();
        assert!(err.message().contains("is a secret"), "{}", err.message());
        assert!(!err.message().contains("hunter2"));
        let err =
            Config::parse("[profiles.a]\nprovider = \"sehatmu\"\ncolour = \"red\"\n").unwrap_err();
        assert!(
            err.message().contains("unknown setting `colour`"),
            "{}",
            err.message()
        );
        assert!(Config::parse("[profiles.a]\nbase_url = \"x\"\n").is_err());
        assert!(Config::parse("[profiles.\"a/b\"]\nprovider = \"stamps\"\n").is_err());
    }

    #[test]
    fn toml_errors_do_not_quote_the_file() {
        let err =
            Config::parse("[profiles.a]\nprovider = \"stamps\"\ntoken = hunter2\n").unwrap_err();
        assert!(!err.message().contains("hunter2"), "{}", err.message());
        assert!(err.message().contains("line 3"), "{}", err.message());
    }

    #[test]
    fn variables_follow_the_precedence() {
        let config = Config::parse(FILE).unwrap();
        let env = |name: &str| match name {
            "KLINIK_SECRET" => Some("from-env-var".to_owned()),
            "SEHATMU_CLIENT_ID" => Some("ambient".to_owned()),
            "SEHATMU_CLIENT_SECRET" => Some("ambient-secret".to_owned()),
            _ => None,
        };
        let login = HashMap::from([("SEHATMU_CLIENT_SECRET".to_owned(), "saved".to_owned())]);
        let vars = config
            .profile("klinik")
            .unwrap()
            .variables(&login, &env)
            .unwrap();
        assert_eq!(vars["SEHATMU_CLIENT_ID"], "abc.sehatmu.client");
        assert_eq!(vars["SEHATMU_CLIENT_SECRET"], "from-env-var");
        // a bare provider name: the environment first, then the login
        let bare = config.profile("sehatmu").unwrap();
        let vars = bare.variables(&login, &env).unwrap();
        assert_eq!(vars["SEHATMU_CLIENT_SECRET"], "ambient-secret");
        let vars = bare.variables(&login, &|_| None).unwrap();
        assert_eq!(vars["SEHATMU_CLIENT_SECRET"], "saved");
        // `login` without a login
        let err = config
            .profile("toko")
            .unwrap()
            .variables(&HashMap::new(), &|_| None)
            .unwrap_err();
        assert!(err.message().contains("saved login"), "{}", err.message());
    }

    #[test]
    fn the_config_file_refuses_a_plain_value_exactly_for_the_variables_a_provider_declares_secret()
    {
        for kind in ProviderKind::all() {
            let prefix = format!("{}_", kind.name().to_ascii_uppercase());
            for variable in kind.variables() {
                let key = variable
                    .name
                    .trim_start_matches(&prefix)
                    .to_ascii_lowercase();
                let text = format!("[profiles.p]\nprovider = \"{kind}\"\n{key} = \"plain\"\n");
                let parsed = Config::parse(&text);
                assert_eq!(
                    parsed.is_err(),
                    variable.secret,
                    "{}: {:?}",
                    variable.name,
                    parsed.err().map(|e| e.message().to_owned())
                );
            }
        }
    }
}
