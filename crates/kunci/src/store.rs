//! Choosing a token store by a short description, as `KUNCI_STORE` and the CLI's `--store` do.

use std::path::{Path, PathBuf};

use auth_core::{Error, MemoryStore, SharedTokenStore};
use auth_store::{Cipher, FileStore, redact_url};

/// Where tokens are kept. `Debug` hides any password in a Redis or PostgreSQL URL.
#[derive(Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StoreSpec {
    /// The file store in the platform data directory (`~/.local/share/kunci` on Linux).
    #[default]
    DefaultFile,
    /// The file store in this directory.
    File(PathBuf),
    /// Memory of this process only.
    Memory,
    /// A Redis server (`redis://…` or `rediss://…`; feature `redis`).
    Redis(String),
    /// A PostgreSQL database (`postgres://…` or `postgresql://…`; feature `postgres`).
    Postgres(String),
}

impl StoreSpec {
    /// Parses `memory:`, `redis://…`, `rediss://…`, `postgres://…`, `postgresql://…`,
    /// `file://DIR` or a directory path.
    pub fn parse(spec: &str) -> Result<Self, Error> {
        let spec = spec.trim();
        if spec.is_empty() {
            Ok(Self::DefaultFile)
        } else if spec == "memory:" || spec == "memory" {
            Ok(Self::Memory)
        } else if spec.starts_with("redis://") || spec.starts_with("rediss://") {
            Ok(Self::Redis(spec.to_owned()))
        } else if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            Ok(Self::Postgres(spec.to_owned()))
        } else if let Some(path) = spec.strip_prefix("file://") {
            Ok(Self::File(PathBuf::from(path)))
        } else if spec.contains("://") || Self::misspelt_scheme(spec) {
            Err(Error::configuration(format!(
                "the store `{}` is not understood: use a directory, file://DIR, redis://HOST, rediss://HOST, postgres://HOST/DB or memory:",
                redact_url(spec)
            )))
        } else {
            Ok(Self::File(PathBuf::from(spec)))
        }
    }

    /// `memory:x`, `redis:host`, `file:dir`: a known scheme written wrong, which would
    /// otherwise be taken as a directory of that name.
    fn misspelt_scheme(spec: &str) -> bool {
        spec.split_once(':').is_some_and(|(scheme, _)| {
            [
                "memory",
                "file",
                "redis",
                "rediss",
                "postgres",
                "postgresql",
            ]
            .contains(&scheme.to_ascii_lowercase().as_str())
        })
    }

    /// Opens the store; with `cipher`, entries are encrypted at rest.
    pub async fn open(&self, cipher: Option<Cipher>) -> Result<SharedTokenStore, Error> {
        self.open_with(cipher, None).await
    }

    /// [`open`](Self::open), trusting the certificate authorities in the PEM file `ca_file`
    /// for a `rediss://` store (a private CA; `KUNCI_STORE_CA`). A CA file for a store that is
    /// not `rediss://` is a configuration error.
    pub async fn open_with(
        &self,
        cipher: Option<Cipher>,
        ca_file: Option<&Path>,
    ) -> Result<SharedTokenStore, Error> {
        if let (Some(path), false) = (ca_file, matches!(self, Self::Redis(_))) {
            return Err(Error::configuration(format!(
                "a store CA file ({}) is only used by a `rediss://` store, and the store is {}",
                path.display(),
                self.describe()
            )));
        }
        let file = |store: FileStore| -> SharedTokenStore {
            match cipher.clone() {
                Some(c) => SharedTokenStore::new(store.with_cipher(c)),
                None => SharedTokenStore::new(store),
            }
        };
        match self {
            Self::DefaultFile => Ok(file(FileStore::open_default()?)),
            Self::File(dir) => Ok(file(FileStore::new(dir.clone())?)),
            Self::Memory => Ok(SharedTokenStore::new(MemoryStore::new())),
            #[cfg(feature = "redis")]
            Self::Redis(url) => {
                let mut options = auth_store::RedisOptions::default();
                if let Some(c) = cipher {
                    options = options.cipher(c);
                }
                if let Some(path) = ca_file {
                    options = options.tls_ca_file(path);
                }
                Ok(SharedTokenStore::new(
                    auth_store::RedisStore::connect(url, options).await?,
                ))
            }
            #[cfg(not(feature = "redis"))]
            Self::Redis(url) => Err(Error::configuration(format!(
                "the store `{}` needs kunci's `redis` feature",
                redact_url(url)
            ))),
            #[cfg(feature = "postgres")]
            Self::Postgres(url) => {
                let mut options = auth_store::PostgresOptions::default();
                if let Some(c) = cipher {
                    options = options.cipher(c);
                }
                Ok(SharedTokenStore::new(
                    auth_store::PostgresStore::connect(url, options).await?,
                ))
            }
            #[cfg(not(feature = "postgres"))]
            Self::Postgres(url) => Err(Error::configuration(format!(
                "the store `{}` needs kunci's `postgres` feature",
                redact_url(url)
            ))),
        }
    }

    /// A description for status output, without any password.
    pub fn describe(&self) -> String {
        match self {
            Self::DefaultFile => FileStore::default_location().map_or_else(
                |_| "file:(platform data directory)".to_owned(),
                |p| format!("file:{}", p.display()),
            ),
            Self::File(dir) => format!("file:{}", dir.display()),
            Self::Memory => "memory:".to_owned(),
            Self::Redis(url) | Self::Postgres(url) => redact_url(url),
        }
    }
}

impl std::fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreSpec({})", self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(StoreSpec::parse("memory:").unwrap(), StoreSpec::Memory);
        assert_eq!(
            StoreSpec::parse("/var/lib/kunci").unwrap(),
            StoreSpec::File("/var/lib/kunci".into())
        );
        assert_eq!(
            StoreSpec::parse("file:///tmp/k").unwrap(),
            StoreSpec::File("/tmp/k".into())
        );
        assert_eq!(
            StoreSpec::parse("redis://h:6379").unwrap(),
            StoreSpec::Redis("redis://h:6379".into())
        );
        assert_eq!(
            StoreSpec::parse("postgres://db/kunci").unwrap(),
            StoreSpec::Postgres("postgres://db/kunci".into())
        );
        assert_eq!(
            StoreSpec::parse("postgresql://db/kunci?sslmode=require").unwrap(),
            StoreSpec::Postgres("postgresql://db/kunci?sslmode=require".into())
        );
        assert_eq!(StoreSpec::parse("").unwrap(), StoreSpec::DefaultFile);
        assert!(StoreSpec::parse("ftp://x").is_err());
        for misspelt in ["memory:x", "redis:localhost", "file:tokens", "Postgres:db"] {
            assert!(
                StoreSpec::parse(misspelt).is_err(),
                "{misspelt} was taken as a directory"
            );
        }
        assert_eq!(
            StoreSpec::parse("tokens:2026").unwrap(),
            StoreSpec::File("tokens:2026".into())
        );
    }

    #[test]
    fn passwords_are_redacted() {
        let spec = StoreSpec::parse("redis://app:hunter2@10.0.0.1:6379/0").unwrap();
        assert_eq!(spec.describe(), "redis://[redacted]@10.0.0.1:6379/0");
        // A password may ride in the query too (libpq's `password=`).
        let spec = StoreSpec::parse("postgres://app@db/kunci?password=hunter2").unwrap();
        assert_eq!(spec.describe(), "postgres://[redacted]@db/kunci");
        assert!(!format!("{spec:?}").contains("hunter2"));
        // An Azure-style base64 key pasted without percent-encoding: no part of it is shown.
        let spec = StoreSpec::parse("rediss://:abc/def=@host:6380").unwrap();
        for shown in [spec.describe(), format!("{spec:?}")] {
            assert!(!shown.contains("abc") && !shown.contains("def"), "{shown}");
        }
        assert!(
            !format!("{:?}", StoreSpec::parse("ftp://u:hunter2@h").unwrap_err())
                .contains("hunter2")
        );
    }
}
