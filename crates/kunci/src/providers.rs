//! The providers compiled into this build, one cargo feature each.
//!
//! Everything here is hand-written code over one generated list, `providers/list.rs` (written
//! by `cargo codegen` from the `[package.metadata.kunci]` table of each provider crate): a
//! single invocation of `providers!`, one line per provider. What a provider *is* — its name,
//! its variables, which of them are secret — comes from the provider crate's own
//! [`Declaration`](auth_core::provider::Declaration), never from this crate.

use auth_core::provider::Variable;

/// Defines [`ProviderKind`] and the provider re-exports from the generated list: one
/// `module "feature" Variant => crate::SourceType` line per provider.
macro_rules! providers {
    ($( $module:ident $feature:literal $variant:ident => $krate:ident :: $source:ident ),* $(,)?) => {
        $(
            #[cfg(feature = $feature)]
            #[doc(inline)]
            pub use $krate as $module;
        )*

        /// A provider compiled into this build.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ProviderKind {
            $(
                #[doc = concat!("`", stringify!($krate), "` (cargo feature `", $feature, "`).")]
                #[cfg(feature = $feature)]
                $variant,
            )*
        }

        impl ProviderKind {
            /// The names of every provider of the workspace, compiled in or not (one per cargo
            /// feature).
            pub const WORKSPACE: &'static [&'static str] = &[$($feature),*];

            /// Every provider compiled into this build, ordered by name.
            pub const ALL: &'static [ProviderKind] = &[
                $(
                    #[cfg(feature = $feature)]
                    ProviderKind::$variant,
                )*
            ];

            /// What the provider declares about itself (see [`Declaration`](auth_core::provider::Declaration)).
            pub fn declaration(self) -> &'static auth_core::provider::Declaration {
                match self {
                    $(
                        #[cfg(feature = $feature)]
                        ProviderKind::$variant => {
                            &<$krate::$source as auth_core::provider::EnvProvider>::DECLARATION
                        }
                    )*
                }
            }

            /// Builds the provider's source from variables (`lookup` maps a variable name to
            /// its value). Cheap: the source's HTTP client is built on its first request. The
            /// store key of its account is [`TokenSource::store_key`](auth_core::TokenSource::store_key).
            ///
            /// # Errors
            /// A configuration error naming the missing or invalid variable, never its value.
            #[allow(unused_variables, reason = "unused when no provider feature is on")]
            pub fn source_from_lookup(
                self,
                lookup: &dyn Fn(&str) -> Option<String>,
                http: impl Into<auth_core::http::HttpClient>,
            ) -> Result<auth_core::SharedTokenSource, auth_core::Error> {
                match self {
                    $(
                        #[cfg(feature = $feature)]
                        ProviderKind::$variant => Ok(auth_core::SharedTokenSource::new(
                            <$krate::$source as auth_core::provider::EnvProvider>::from_lookup(
                                lookup, http,
                            )?,
                        )),
                    )*
                }
            }

            /// Starts the provider's simulator on 127.0.0.1 (feature `testing`): what the demo,
            /// the reliability suite, the benchmarks and the conformance kit loop over.
            #[cfg(feature = "testing")]
            #[allow(unused_variables, reason = "unused when no provider feature is on")]
            pub fn start_simulator(
                self,
                builder: auth_testkit::SimBuilder,
            ) -> auth_testkit::Started {
                match self {
                    $(
                        #[cfg(feature = $feature)]
                        ProviderKind::$variant => {
                            <$krate::$source as auth_testkit::Simulated>::start_simulator(builder)
                        }
                    )*
                }
            }
        }
    };
}

mod list;

pub use list::*;

impl ProviderKind {
    /// Every provider compiled into this build, ordered by name.
    pub fn all() -> Vec<ProviderKind> {
        Self::ALL.to_vec()
    }

    /// Finds a provider by its name (`"kalsel"`).
    pub fn from_name(name: &str) -> Option<ProviderKind> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// The short name used in store keys, logs and the CLI.
    pub fn name(self) -> &'static str {
        self.declaration().name
    }

    /// The provider's display name.
    pub fn display_name(self) -> &'static str {
        self.declaration().display_name
    }

    /// Where its token endpoint is documented.
    pub fn docs_url(self) -> &'static str {
        self.declaration().docs_url
    }

    /// The variables that configure it, required ones first.
    pub fn variables(self) -> &'static [Variable] {
        self.declaration().variables
    }

    /// The names of the variables that configure it, required ones first.
    pub fn env_vars(self) -> Vec<&'static str> {
        self.declaration().names().collect()
    }

    /// The authorization schemes its tokens use.
    pub fn schemes(self) -> &'static [&'static str] {
        self.declaration().schemes
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
