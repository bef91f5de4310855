//! `cargo xtask new-provider <name>`: a provider crate that compiles and passes its own tests
//! at once, then `cargo codegen` to wire it into the facade, the docs and CODEOWNERS.

use std::{fs, path::Path};

use anyhow::{Result, bail};

use crate::codegen;

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let Some(name) = args.first() else {
        bail!("usage: cargo xtask new-provider <name>   (lowercase letters and digits)");
    };
    scaffold(root, name)?;
    codegen::run(root, codegen::Mode::Write)?;
    eprintln!(
        "new provider crate: crates/auth-{name}\n  next: DECLARATION in src/lib.rs (the variables), src/source.rs (request, parsing, error mapping), src/testing.rs (the simulator and the fault table), docs/providers/{name}.md; then `cargo test -p auth-{name} --all-features`"
    );
    Ok(())
}

/// Writes `crates/auth-<name>` and `docs/providers/<name>.md`.
pub(crate) fn scaffold(root: &Path, name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        || !name.as_bytes()[0].is_ascii_lowercase()
    {
        bail!(
            "`{name}`: a provider name is lowercase ASCII letters and digits, starting with a letter"
        );
    }
    let dir = root.join("crates").join(format!("auth-{name}"));
    if dir.exists() {
        bail!("{} exists already", dir.display());
    }
    let upper = name.to_ascii_uppercase();
    let title = {
        let mut c = name.chars();
        c.next().map_or_else(String::new, |f| {
            f.to_ascii_uppercase().to_string() + c.as_str()
        })
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{NAME}}", &upper)
            .replace("{{Title}}", &title)
    };
    // Written to a temporary folder and renamed into place, so the workspace never sees a
    // half-written crate.
    let tmp = root.join("crates").join(format!(".auth-{name}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    for (path, template) in FILES {
        let path = tmp.join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(path, fill(template))?;
    }
    // The licence texts every published crate packages (`cargo xtask package` checks them).
    #[cfg(unix)]
    for licence in ["LICENSE-APACHE", "LICENSE-MIT"] {
        std::os::unix::fs::symlink(format!("../../{licence}"), tmp.join(licence))?;
    }
    fs::rename(&tmp, &dir)?;
    // The templates are laid out for reading here; the crate is formatted as the workspace is.
    let sources: Vec<String> = FILES
        .iter()
        .filter(|(path, _)| path.ends_with(".rs"))
        .map(|(path, _)| dir.join(path).to_string_lossy().into_owned())
        .collect();
    let status = std::process::Command::new("rustfmt")
        .args(["--edition", "2024"])
        .args(&sources)
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("rustfmt failed on the scaffolded crate");
    }
    let doc = root.join("docs/providers").join(format!("{name}.md"));
    if !doc.exists() {
        fs::create_dir_all(doc.parent().unwrap_or(root))?;
        fs::write(doc, fill(DOC))?;
    }
    Ok(())
}

const FILES: &[(&str, &str)] = &[
    ("Cargo.toml", CARGO_TOML),
    ("CHANGELOG.md", CHANGELOG),
    ("README.md", README),
    ("src/lib.rs", LIB_RS),
    ("src/source.rs", SOURCE_RS),
    ("src/testing.rs", TESTING_RS),
    ("tests/all/main.rs", TEST_MAIN),
    ("tests/all/conformance.rs", TEST_CONFORMANCE),
];

const CHANGELOG: &str = r#"# Changelog

All notable changes to `auth-{{name}}` are recorded here. The format follows
[Keep a Changelog](https://keepachangelog.com/en/1.1.0/), and this crate adheres to
[Semantic Versioning](https://semver.org/spec/v2.0.0.html). It is released on its own, with its
own changelog (release-plz, `release-plz.toml` at the repository root).

## [Unreleased]

### Added

- `{{Title}}Source` and its configuration, declared once in `DECLARATION`.
"#;

const CARGO_TOML: &str = r#"[package]
name = "auth-{{name}}"
description = "{{Title}} tokens for kunci"
# Its own version: each crate is released on its own (release-plz.toml).
version = "0.1.0"
edition.workspace = true
rust-version.workspace = true
license.workspace = true
repository.workspace = true
publish.workspace = true
readme = "README.md"
documentation = "https://docs.rs/auth-{{name}}"
keywords = ["{{name}}", "token", "authentication", "indonesia", "kunci"]
categories = ["authentication", "api-bindings"]

[package.metadata.docs.rs]
all-features = true
rustdoc-args = ["--cfg", "docsrs"]

[features]
default = ["ring"]
## The TLS crypto of the HTTP exchange: *ring* (default) or AWS-LC; see auth-core's features.
ring = ["auth-core/ring"]
aws-lc-rs = ["auth-core/aws-lc-rs"]
## This provider's simulator behind `auth_testkit::Simulated` (module `testing`), for the
## provider-agnostic suites: the demo, the reliability suite, benchmarks, the conformance kit.
testing = ["dep:auth-testkit"]

[dependencies]
auth-testkit = { workspace = true, optional = true }
async-trait.workspace = true
auth-core = { workspace = true, features = ["http"] }
secrecy.workspace = true
serde.workspace = true
serde_json.workspace = true
time.workspace = true

[dev-dependencies]
auth-testkit.workspace = true
serde_json.workspace = true
tokio = { workspace = true, features = ["rt-multi-thread", "macros"] }

[[test]]
name = "all"
path = "tests/all/main.rs"

[lints]
workspace = true

# Read by `cargo codegen` (xtask): wires this provider into the facade, docs/providers.md and
# CODEOWNERS. What the provider is (its variables, names, schemes) is its `DECLARATION` in Rust.
[package.metadata.kunci]
id = "{{name}}"
source = "auth_{{name}}::{{Title}}Source"
team = "@kunci-rs/{{name}}-team"
"#;

const README: &str = r#"# auth-{{name}}

{{Title}} tokens for [kunci](../../README.md). Generated by `cargo xtask new-provider {{name}}`:
replace the request, the response parsing and the error mapping with what {{Title}}'s document
says, and record the decisions in `docs/providers/{{name}}.md`.

The variables are declared once, in `DECLARATION` (`src/lib.rs`): the facade, the CLI and the
documentation read them from there. `cargo test -p auth-{{name}} --all-features` runs the
provider contract kit against the simulator in `src/testing.rs`.
"#;

const LIB_RS: &str = r#"//! {{Title}} tokens for kunci (scaffolded by `cargo xtask new-provider {{name}}`).
//!
//! The skeleton exchanges an API key for a bearer token: `POST {base}/oauth/token` with JSON
//! `{"api_key": …}` answered by `{"access_token": …, "expires_in": seconds}`. Replace it with
//! what the provider documents.
//!
//! ```no_run
//! use auth_core::{TokenManager, http::HttpConfig, provider::EnvProvider};
//! use auth_{{name}}::{{Title}}Source;
//!
//! # async fn run() -> Result<(), auth_core::Error> {
//! let source = {{Title}}Source::from_env(HttpConfig::default())?; // {{NAME}}_API_KEY, …
//! let manager = TokenManager::builder(source).build()?;
//! let token = manager.token().await?;
//! # let _ = token; Ok(()) }
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod source;
#[cfg(feature = "testing")]
pub mod testing;

pub use source::{{Title}}Source;

/// The provider's name in logs, errors and store keys.
pub const NAME: &str = "{{name}}";
/// The variable holding the API key.
pub const ENV_API_KEY: &str = "{{NAME}}_API_KEY";
/// The variable holding the base URL.
pub const ENV_BASE_URL: &str = "{{NAME}}_BASE_URL";
/// The default base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.example.invalid";

/// What this provider declares about itself: the one list of its variables, read by
/// [`EnvProvider::from_env`](auth_core::provider::EnvProvider::from_env), the facade, the CLI
/// and the generated documentation.
pub const DECLARATION: auth_core::provider::Declaration = {
    use auth_core::provider::{Declaration, Variable};
    Declaration {
        name: NAME,
        display_name: "{{Title}}",
        docs_url: "https://example.invalid/{{name}}/docs",
        schemes: &["Bearer"],
        variables: &[
            Variable::secret(ENV_API_KEY, "the API key issued to you"),
            Variable::optional(ENV_BASE_URL, "another base URL (a simulator)"),
        ],
    }
};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
"#;

const SOURCE_RS: &str = r#"//! The token source: one request per fetch.

use std::fmt;

use async_trait::async_trait;
use auth_core::{
    Credential, Error, FetchRequest, Fetched, StoreKey, Token, TokenSource,
    http::{HttpClient, Method, Url, endpoint, header},
    provider::{Declaration, EnvProvider, Vars},
};
use secrecy::{ExposeSecret, SecretString};

use crate::{DEFAULT_BASE_URL, ENV_API_KEY, ENV_BASE_URL, NAME};

/// Fetches {{Title}} tokens.
pub struct {{Title}}Source {
    api_key: SecretString,
    token_url: Url,
    http: HttpClient,
}

impl fmt::Debug for {{Title}}Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("{{Title}}Source")
            .field("api_key", &"[redacted]")
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

impl {{Title}}Source {
    /// A source for `api_key` at `base_url`, its requests sent by `http`: an `HttpConfig` (a
    /// client of its own, built on the first request) or a shared `HttpClient`.
    ///
    /// # Errors
    /// A configuration error when the base URL is not acceptable.
    pub fn new(
        api_key: SecretString,
        base_url: &str,
        http: impl Into<HttpClient>,
    ) -> Result<Self, Error> {
        let base = auth_core::http::parse_base_url(base_url)?;
        // The key is kept out of every server text the exchange hands back.
        let http = http.into().with_secrets([&api_key]);
        Ok(Self {
            api_key,
            token_url: endpoint(&base, "oauth/token"),
            http,
        })
    }
}

#[derive(serde::Serialize)]
struct Request<'a> {
    api_key: &'a str,
}

#[derive(serde::Deserialize)]
struct Grant {
    access_token: String,
    expires_in: i64,
}

#[async_trait]
impl TokenSource for {{Title}}Source {
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        let body = serde_json::to_vec(&Request {
            api_key: self.api_key.expose_secret(),
        })
        .map_err(|_| Error::configuration("the request body could not be encoded"))?;
        let req = self
            .http
            .request(Method::POST, self.token_url.clone())?
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        let resp = self.http.send(NAME, req).await?;
        match resp.status.as_u16() {
            200 => {
                let grant: Grant = resp.json(NAME)?;
                let expires = auth_core::expiry::after_secs(request.sent_at, grant.expires_in)
                    .ok_or_else(|| Error::protocol(format!("{NAME} answered an unusable expires_in")))?;
                Ok(Fetched::new(Token::bearer(
                    SecretString::from(grant.access_token),
                    request.sent_at,
                    Some(expires),
                )?))
            }
            401 | 403 => Err(Error::reauthentication_required(format!(
                "{NAME} rejected the API key: issue a new one"
            ))),
            _ => Err(resp.unexpected_status(NAME, request.sent_at)),
        }
    }

    fn name(&self) -> &str {
        NAME
    }

    fn credential(&self) -> Option<Credential> {
        Some(Credential::new(NAME).secret("api_key", &self.api_key))
    }

    fn store_key(&self) -> Option<StoreKey> {
        // A fixed account name: never derive a store key from a secret.
        StoreKey::for_account(NAME, "default").ok()
    }
}

impl EnvProvider for {{Title}}Source {
    const DECLARATION: Declaration = crate::DECLARATION;

    fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        http: impl Into<HttpClient>,
    ) -> Result<Self, Error> {
        let vars = Vars::new(lookup);
        let api_key = vars.secret(ENV_API_KEY, "use the API key issued to you")?;
        let base = vars.base_url(ENV_BASE_URL, DEFAULT_BASE_URL)?;
        Self::new(api_key, base.as_str(), http)
    }
}
"#;

const TESTING_RS: &str = r#"//! {{Title}}'s simulator (feature `testing`): a stub of its token endpoint on the testkit
//! framework, behind `auth_testkit::Simulated`, so the demo, the reliability suite and the
//! conformance kit run {{Title}} too. Make it faithful to the provider's document.

use auth_testkit::{
    Fault, Handler, SimBuilder, SimContext, SimRequest, SimResponse, SimServer, Simulated,
    conformance::{FaultCase, Yields, transport_faults},
};
use serde_json::json;

use crate::{ENV_API_KEY, ENV_BASE_URL, {{Title}}Source};

/// The API key the simulator accepts.
pub const API_KEY: &str = "test-api-key";

/// The simulated token endpoint.
#[derive(Debug, Clone, Copy)]
pub struct {{Title}}Handler;

impl Handler for {{Title}}Handler {
    fn handle(&self, req: &SimRequest, ctx: &SimContext) -> SimResponse {
        if req.method != "POST" || req.path != "/oauth/token" {
            return SimResponse::not_found();
        }
        match req
            .json()
            .and_then(|v| v["api_key"].as_str().map(str::to_owned))
        {
            Some(key) if key == API_KEY => {
                let token = ctx.unique("tok");
                ctx.record_issued(&token);
                SimResponse::json(
                    200,
                    &json!({ "access_token": token, "expires_in": ctx.token_lifetime().as_secs() }),
                )
            }
            _ => SimResponse::json(401, &json!({ "error": "invalid api key" })),
        }
    }
}

impl Simulated for {{Title}}Source {
    type Sim = SimServer;

    const CREDENTIAL: &'static str = ENV_API_KEY;

    async fn start(builder: SimBuilder) -> std::io::Result<SimServer> {
        builder.start({{Title}}Handler).await
    }

    fn variables(sim: &SimServer) -> Vec<(&'static str, String)> {
        vec![
            (ENV_BASE_URL, sim.base_url()),
            (ENV_API_KEY, API_KEY.to_owned()),
        ]
    }

    fn other_credential(_: &SimServer) -> String {
        "another-api-key".to_owned()
    }

    /// Every answer this provider's document gives beyond the transport faults every
    /// provider shares, and what it yields: the conformance kit and the reliability suite
    /// inject each one.
    fn faults() -> Vec<FaultCase> {
        let mut faults = transport_faults();
        faults.extend([
            (
                "401",
                Fault::json(401, &json!({"error": "invalid api key"})),
                Yields::Reauthentication,
            ),
            (
                "no expiry",
                Fault::json(200, &json!({"access_token": "abc"})),
                Yields::Protocol,
            ),
        ]);
        faults
    }

    fn refusal(text: &str) -> Fault {
        Fault::json(401, &json!({ "error": text }))
    }
}
"#;

const TEST_MAIN: &str = r#"//! auth-{{name}}'s tests: the provider contract kit against its simulator (feature
//! `testing`: `cargo test -p auth-{{name}} --all-features`), and what only {{Title}} does.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

#[cfg(feature = "testing")]
mod conformance;

use auth_core::{ErrorKind, http::HttpConfig, provider::EnvProvider};
use auth_{{name}}::{{Title}}Source;

#[test]
fn missing_variables_name_the_variable() {
    let err = {{Title}}Source::from_lookup(&|_| None, HttpConfig::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);
    assert!(err.message().contains("{{NAME}}_API_KEY"));
}
"#;

const TEST_CONFORMANCE: &str = r#"//! {{Title}}Source meets the provider contract (`auth_testkit::conformance`): its table of
//! expectations is `Simulated::faults` in `src/testing.rs`; the kit checks it and the rest.

use auth_testkit::conformance::{assert_conforms, subject};
use auth_{{name}}::{{Title}}Source;

#[tokio::test(flavor = "current_thread")]
async fn {{name}}_meets_the_provider_contract() {
    assert_conforms(&subject::<{{Title}}Source>()).await;
}
"#;

const DOC: &str = r#"# {{Title}}

Scaffolded by `cargo xtask new-provider {{name}}`. Record here: setup (environment variables),
an example, the endpoint decisions, and a table of server answers → error kinds → what the user
should do.
"#;

/// `cargo xtask new-provider-check`: in a copy of the workspace, `new-provider acme`, then
/// everything `cargo xtask ci` runs but the real upstreams, the other providers' feature
/// builds and packaging (rustfmt, clippy with warnings denied, tidy, generated files fresh,
/// the whole test suite, the facade with `acme` alone, rustdoc, the examples), and `acme` must
/// be in the facade, the demo's table, the `providers` example, the reliability suite's
/// provider list, the facade's benches and the docs — with no hand edit. Builds in `$CARGO_TARGET_DIR` when set (reuse a warm one), else
/// `target/new-provider-check`. A shared target directory is left holding the copy's
/// binaries (`debug/kunci`, `debug/xtask`, the examples, with `acme` compiled in) where cargo
/// still counts the checkout's own as fresh: touch a source of each (or build once with
/// another profile) before running them again from there. xtask roots itself at run time, so
/// `cargo xtask` keeps working either way.
pub(crate) fn check(root: &Path) -> Result<()> {
    let copy = tempfile::tempdir()?;
    let dir = copy.path();
    copy_workspace(root, dir)?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || root.join("target/new-provider-check"),
        std::path::PathBuf::from,
    );
    let cargo = |args: &[&str]| -> Result<std::process::Output> {
        eprintln!("$ cargo {} (in the copy)", args.join(" "));
        let out =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(args)
                .current_dir(dir)
                .env("CARGO_TARGET_DIR", &target)
                .stderr(std::process::Stdio::inherit())
                .output()?;
        if !out.status.success() {
            // What the command printed (a failing test's name and panic), not swallowed.
            eprintln!("{}", String::from_utf8_lossy(&out.stdout));
            bail!(
                "`cargo {}` failed in the copy with the new provider",
                args.join(" ")
            );
        }
        Ok(out)
    };
    cargo(&["run", "-q", "-p", "xtask", "--", "new-provider", "acme"])?;
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["run", "-q", "-p", "xtask", "--", "tidy"])?;
    cargo(&["run", "-q", "-p", "xtask", "--", "codegen", "--check"])?;
    cargo(&["test", "--workspace", "--all-features", "--all-targets"])?;
    cargo(&["test", "--workspace", "--all-features", "--doc"])?;
    // The facade with the new provider alone (as `ci` builds each provider feature), rustdoc
    // with warnings denied, and the facade's examples.
    cargo(&[
        "check",
        "-p",
        "kunci",
        "--no-default-features",
        "--features",
        "acme",
    ])?;
    eprintln!(
        "$ RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --all-features (in the copy)"
    );
    let doc = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTDOCFLAGS", "-D warnings")
        .status()?;
    if !doc.success() {
        bail!("cargo doc reported warnings in the copy with the new provider");
    }
    cargo(&["run", "-q", "-p", "xtask", "--", "examples"])?;
    let example = cargo(&[
        "run",
        "-q",
        "-p",
        "kunci",
        "--features",
        "testing",
        "--example",
        "providers",
    ])?;
    if !String::from_utf8_lossy(&example.stdout).contains("Acme (acme):") {
        bail!("acme is not in the `providers` example");
    }
    let demo = cargo(&["run", "-q", "-p", "kunci-cli", "--", "demo"])?;
    let demo = String::from_utf8_lossy(&demo.stdout);
    if !demo
        .lines()
        .any(|l| l.starts_with("Acme") && l.ends_with("ok"))
    {
        bail!("acme is not in the demo's table:\n{demo}");
    }
    // The facade's benches loop over `ProviderKind::ALL` too: one stampede per provider, each
    // run once (criterion's test mode, debug build), prints acme's report line.
    let bench = cargo(&[
        "bench",
        "-p",
        "kunci",
        "--bench",
        "stampede",
        "--features",
        "testing",
        "--profile",
        "dev",
        "--",
        "--test",
    ])?;
    if !String::from_utf8_lossy(&bench.stdout).contains("stampede through the facade, Acme:") {
        bail!("acme is not in the facade's stampede bench");
    }
    let read = |rel: &str| fs::read_to_string(dir.join(rel)).unwrap_or_default();
    for (rel, needle) in [
        (
            "crates/kunci/src/providers/list.rs",
            "auth_acme::AcmeSource",
        ),
        ("docs/providers.md", "`ACME_API_KEY`"),
        ("docs/providers.md", "auth-acme"),
        (".github/CODEOWNERS", "@kunci-rs/acme-team"),
    ] {
        if !read(rel).contains(needle) {
            bail!("{rel} lacks {needle}");
        }
    }
    // The reliability suite loops over `ProviderKind::ALL`, which the list above feeds, and
    // asserts it holds every provider of the workspace: acme ran in it (the fault table, the
    // leak flows, the conformance kit) as part of the suite above.
    eprintln!("new-provider-check: acme scaffolded, wired in and the whole suite passed");
    Ok(())
}

/// Copies the workspace's files (tracked and untracked-but-not-ignored) into `dest`. Outside a
/// git checkout (in `new-provider-check`'s own copy, where this runs again in the suite) every
/// file but `target/` and `.git/`.
fn copy_workspace(root: &Path, dest: &Path) -> Result<()> {
    let out = std::process::Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()?;
    let files: Vec<String> = if out.status.success() {
        out.stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    } else {
        files_below(root, Path::new(""))?
    };
    for rel in &files {
        let from = root.join(rel);
        if !from.is_file() {
            continue;
        }
        let to = dest.join(rel);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(&from, &to)?;
    }
    Ok(())
}

/// The files below `root/rel`, relative to `root`, but `target/` and `.git/`.
fn files_below(root: &Path, rel: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let name = entry.file_name();
        let path = rel.join(&name);
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if name != "target" && name != ".git" {
                files.extend(files_below(root, &path)?);
            }
        } else {
            files.push(path.to_string_lossy().into_owned());
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scaffolded_provider_is_wired_in_by_codegen_alone() {
        let root = crate::workspace_root();
        let copy = tempfile::tempdir().unwrap();
        copy_workspace(&root, copy.path()).unwrap();
        // `acme`, unless the checkout has one already (as in `new-provider-check`'s copy).
        let name = ["acme", "acmetwo"]
            .into_iter()
            .find(|n| !root.join(format!("crates/auth-{n}")).exists())
            .unwrap();
        let title = format!("{}{}", name[..1].to_ascii_uppercase(), &name[1..]);

        scaffold(copy.path(), name).unwrap();
        // The variable tables are rendered by the facade's test (a build); the rest is text.
        codegen::run_with(copy.path(), codegen::Mode::Write, false).unwrap();

        let list =
            fs::read_to_string(copy.path().join("crates/kunci/src/providers/list.rs")).unwrap();
        assert!(
            list.contains(&format!(
                "{name} \"{name}\" {title} => auth_{name}::{title}Source"
            )),
            "the facade's list gained the new provider:\n{list}"
        );
        let facade = fs::read_to_string(copy.path().join("crates/kunci/Cargo.toml")).unwrap();
        assert!(
            facade.contains(&format!("{name} = [\"dep:auth-{name}\"]"))
                && facade.contains(&format!("auth-{name}?/testing"))
        );
        assert!(
            fs::read_to_string(copy.path().join("docs/providers.md"))
                .unwrap()
                .contains(&format!("auth-{name}"))
        );
        assert!(
            fs::read_to_string(copy.path().join(".github/CODEOWNERS"))
                .unwrap()
                .contains(&format!("@kunci-rs/{name}-team"))
        );
        for file in [
            "src/lib.rs",
            "src/source.rs",
            "src/testing.rs",
            "tests/all/conformance.rs",
        ] {
            assert!(
                copy.path()
                    .join(format!("crates/auth-{name}"))
                    .join(file)
                    .is_file(),
                "{file}"
            );
        }
        codegen::run_with(copy.path(), codegen::Mode::Check, false).unwrap();
        let crate_dir = copy.path().join(format!("crates/auth-{name}"));
        let formatted = std::process::Command::new("rustfmt")
            .args(["--edition", "2024", "--check"])
            .args(
                FILES
                    .iter()
                    .filter(|(p, _)| p.ends_with(".rs"))
                    .map(|(p, _)| crate_dir.join(p)),
            )
            .status()
            .unwrap();
        assert!(formatted.success(), "the scaffolded crate is formatted");
    }

    #[test]
    fn names_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "Acme", "1acme", "ac-me", "ac me"] {
            assert!(scaffold(dir.path(), bad).is_err(), "{bad:?}");
        }
    }
}
