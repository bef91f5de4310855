//! The provider contract: what a provider crate declares about itself ([`Declaration`], its
//! [`Variable`]s) and how a source is built from named variables ([`EnvProvider`], [`Vars`]).
//!
//! A provider declares its variables **once**, as a `const` [`Declaration`]. Everything else
//! reads that declaration: [`EnvProvider::from_env`] (which variables to read), the facade's
//! `ProviderKind`, the CLI (which variables `kunci login` asks for and reads without echo,
//! which ones the config file refuses as plain values, what `kunci status` shows) and the
//! generated documentation tables. Nothing is guessed from a variable's name.
//!
//! ```
//! use auth_core::provider::{Declaration, Variable};
//!
//! const DECLARATION: Declaration = Declaration {
//!     name: "acme",
//!     display_name: "Acme",
//!     docs_url: "https://acme.example/docs",
//!     schemes: &["Bearer"],
//!     variables: &[
//!         Variable::secret("ACME_PASSWORD", "the API password issued to you"),
//!         Variable::optional("ACME_BASE_URL", "another base URL (a simulator)"),
//!     ],
//! };
//! assert!(DECLARATION.is_secret("ACME_PASSWORD"));
//! assert_eq!(DECLARATION.names().collect::<Vec<_>>(), ["ACME_PASSWORD", "ACME_BASE_URL"]);
//! ```

use std::fmt;

use crate::{
    error::Error,
    http::{HttpClient, Url, parse_base_url},
};

/// One configuration variable of a provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variable {
    /// Its name (`"SEHATMU_CLIENT_SECRET"`), upper case, prefixed with the provider's name.
    pub name: &'static str,
    /// Whether the source cannot be built without it.
    pub required: bool,
    /// Whether it holds a secret: never accepted as a plain value in the CLI's config file,
    /// read without echo by `kunci login`, never printed.
    pub secret: bool,
    /// Whether it is part of the credential a person provides (`kunci login` asks for it), as
    /// opposed to an endpoint or a tuning knob.
    pub credential: bool,
    /// One line of help: what the value is and where to get it.
    pub help: &'static str,
}

impl Variable {
    /// A required secret credential (a client secret, a refresh token).
    pub const fn secret(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            required: true,
            secret: true,
            credential: true,
            help,
        }
    }

    /// A required credential that is not secret (a client ID, a merchant ID).
    pub const fn identifier(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            required: true,
            secret: false,
            credential: true,
            help,
        }
    }

    /// An optional setting that is neither secret nor a credential (a base URL, an account
    /// label, a lifetime).
    pub const fn optional(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            required: false,
            secret: false,
            credential: false,
            help,
        }
    }

    /// This variable, but optional.
    #[must_use]
    pub const fn not_required(mut self) -> Self {
        self.required = false;
        self
    }
}

/// What a provider crate declares about itself: its name, where it is documented, the schemes
/// of its tokens and its variables (required ones first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Declaration {
    /// The short name (`"kalsel"`): store keys, logs, metrics, the CLI, the cargo feature.
    pub name: &'static str,
    /// The name people know it by (`"Kalsel.dev"`).
    pub display_name: &'static str,
    /// Where its token endpoint is documented.
    pub docs_url: &'static str,
    /// The authorization schemes its tokens use (`"Bearer"`).
    pub schemes: &'static [&'static str],
    /// Its variables, required ones first.
    pub variables: &'static [Variable],
}

impl Declaration {
    /// The variable called `name`, if the provider has one.
    pub fn variable(&self, name: &str) -> Option<&'static Variable> {
        self.variables.iter().find(|v| v.name == name)
    }

    /// The names of its variables, in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + use<> {
        self.variables.iter().map(|v| v.name)
    }

    /// Whether `name` is one of its variables and holds a secret.
    pub fn is_secret(&self, name: &str) -> bool {
        self.variable(name).is_some_and(|v| v.secret)
    }

    /// Reads its variables from the process environment (see [`Vars::read_env`]).
    ///
    /// # Errors
    /// A configuration error naming a variable that is set but not valid UTF-8.
    pub fn read_env(&self) -> Result<std::collections::HashMap<String, String>, Error> {
        let names: Vec<&str> = self.names().collect();
        Vars::read_env(&names)
    }

    /// The mistakes a declaration can hold, as sentences (empty when there are none): a name
    /// that is not lower-case letters and digits, a variable not prefixed with the upper-cased
    /// name, a duplicate, a required variable after an optional one, a secret that is not a
    /// credential, an empty help text or scheme list. The conformance kit asserts it is empty.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            problems.push(format!(
                "the name `{}` is not lower-case letters and digits",
                self.name
            ));
        }
        if self.schemes.is_empty() {
            problems.push("no authorization scheme is declared".to_owned());
        }
        let prefix = format!("{}_", self.name.to_ascii_uppercase());
        let mut seen_optional = false;
        for (i, v) in self.variables.iter().enumerate() {
            if !v.name.starts_with(&prefix) {
                problems.push(format!("{} does not start with {prefix}", v.name));
            }
            if self.variables[..i].iter().any(|w| w.name == v.name) {
                problems.push(format!("{} is declared twice", v.name));
            }
            if v.required && seen_optional {
                problems.push(format!(
                    "{} is required but follows an optional variable",
                    v.name
                ));
            }
            seen_optional |= !v.required;
            if v.secret && !v.credential {
                problems.push(format!(
                    "{} is secret but not part of the credential",
                    v.name
                ));
            }
            if v.help.trim().is_empty() {
                problems.push(format!("{} has no help text", v.name));
            }
        }
        problems
    }
}

/// A provider's configuration variables read through a lookup, with errors that name the
/// variable and never its value. Blank values count as unset.
#[derive(Clone, Copy)]
pub struct Vars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl fmt::Debug for Vars<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vars { .. }")
    }
}

impl<'a> Vars<'a> {
    /// Reads through `lookup` (a variable name → its value).
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    /// The value, or `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// A required value; unset is a configuration error `"{name} is not set; {hint}"`.
    pub fn required(&self, name: &str, hint: &str) -> Result<String, Error> {
        self.get(name).ok_or_else(|| {
            let sep = if hint.is_empty() { "" } else { "; " };
            Error::configuration(format!("the variable {name} is not set{sep}{hint}"))
        })
    }

    /// A required secret (kept as read: secrets are not trimmed).
    pub fn secret(&self, name: &str, hint: &str) -> Result<secrecy::SecretString, Error> {
        self.required(name, hint).map(secrecy::SecretString::from)
    }

    /// The base URL in `name`, or `default` when unset; checked by [`parse_base_url`]. The
    /// error names the variable, not its value.
    pub fn base_url(&self, name: &str, default: &str) -> Result<Url, Error> {
        match self.get(name) {
            Some(raw) => parse_base_url(&raw).map_err(|_| {
                Error::configuration(format!(
                    "{name} is not an acceptable base URL: use https (http only for loopback addresses), without credentials, query or fragment"
                ))
            }),
            None => parse_base_url(default),
        }
    }

    /// Reads `names` from the process environment into a map to look up with [`Vars::new`]. A
    /// value that is not valid UTF-8 is a configuration error naming the variable (a plain
    /// `std::env::var(..).ok()` would silently treat it as unset).
    pub fn read_env(names: &[&str]) -> Result<std::collections::HashMap<String, String>, Error> {
        let mut values = std::collections::HashMap::new();
        for name in names {
            match std::env::var(name) {
                Ok(v) => {
                    values.insert((*name).to_owned(), v);
                }
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(Error::configuration(format!(
                        "the environment variable {name} is not valid UTF-8"
                    )));
                }
            }
        }
        Ok(values)
    }

    /// Prefixes a configuration error with the variable it came from.
    pub fn named(name: &str, error: Error) -> Error {
        Error::configuration(format!("{name}: {}", error.message()))
    }
}

/// A provider whose source can be configured from named variables: the process environment,
/// or a CLI profile that maps the same names to values from files or prompts.
///
/// Every provider crate implements it on its source type; the facade's `ProviderKind` calls
/// it, so adding a provider needs no hand edit in the facade or the CLI. Building a source is
/// cheap: its HTTP client is built on the first request.
pub trait EnvProvider: crate::TokenSource + Sized + 'static {
    /// What the provider declares about itself, its variables included.
    const DECLARATION: Declaration;

    /// Builds the source from `lookup` (a variable name → its value), its requests sent by
    /// `http`: an [`HttpConfig`](crate::http::HttpConfig) (a client of its own) or an [`HttpClient`] (shared with other
    /// sources, or built on the user's reqwest builder). A missing or invalid variable is a
    /// configuration error that names the variable, never its value.
    fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        http: impl Into<HttpClient>,
    ) -> Result<Self, Error>;

    /// [`from_lookup`](Self::from_lookup) over the process environment (the declared variables).
    fn from_env(http: impl Into<HttpClient>) -> Result<Self, Error> {
        let env = Self::DECLARATION.read_env()?;
        Self::from_lookup(&|name| env.get(name).cloned(), http)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_name_the_variable_never_the_value() {
        let lookup = |name: &str| match name {
            "X_SECRET" => Some("hunter2".to_owned()),
            "X_BLANK" => Some("   ".to_owned()),
            "X_URL" => Some("http://hunter2.example".to_owned()),
            _ => None,
        };
        let vars = Vars::new(&lookup);
        assert_eq!(vars.get("X_BLANK"), None, "blank counts as unset");
        let err = vars.required("X_MISSING", "ask the admin").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Configuration);
        assert!(err.message().contains("X_MISSING") && err.message().contains("ask the admin"));
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&vars.secret("X_SECRET", "").unwrap()),
            "hunter2"
        );
        let err = vars
            .base_url("X_URL", "https://default.example")
            .unwrap_err();
        assert!(
            err.message().contains("X_URL") && !err.to_string().contains("hunter2"),
            "{err}"
        );
        assert_eq!(
            vars.base_url("X_NONE", "https://default.example")
                .unwrap()
                .as_str(),
            "https://default.example/"
        );
        let named = Vars::named("X_SECRET", Error::configuration("too short"));
        assert_eq!(named.message(), "X_SECRET: too short");
    }

    const ACME: Declaration = Declaration {
        name: "acme",
        display_name: "Acme",
        docs_url: "https://acme.example",
        schemes: &["Bearer"],
        variables: &[
            Variable::secret("ACME_PASSWORD", "the password"),
            Variable::identifier("ACME_USER", "the user"),
            Variable::optional("ACME_BASE_URL", "another base URL"),
        ],
    };

    #[test]
    fn a_declaration_says_which_variables_are_secret_whatever_their_names() {
        assert!(ACME.is_secret("ACME_PASSWORD"));
        assert!(!ACME.is_secret("ACME_USER"));
        assert!(!ACME.is_secret("ACME_UNKNOWN"));
        assert!(
            ACME.variable("ACME_USER")
                .is_some_and(|v| v.credential && v.required)
        );
        assert!(ACME.problems().is_empty(), "{:?}", ACME.problems());
    }

    #[test]
    fn a_malformed_declaration_lists_its_problems() {
        const BAD: Declaration = Declaration {
            name: "Acme",
            schemes: &[],
            variables: &[
                Variable::optional("ACME_BASE_URL", ""),
                Variable::secret("OTHER_SECRET", "x"),
                Variable {
                    name: "ACME_BASE_URL",
                    required: true,
                    secret: true,
                    credential: false,
                    help: "x",
                },
            ],
            ..ACME
        };
        let bad = BAD;
        let problems = bad.problems();
        for expected in [
            "not lower-case",
            "no authorization scheme",
            "does not start with",
            "declared twice",
            "follows an optional",
            "not part of the credential",
            "no help text",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{expected}: {problems:?}"
            );
        }
    }
}
