//! The rustls crypto provider of a reqwest client you build yourself (feature
//! `reqwest-middleware`).

use auth_core::Error;

/// Installs this build's rustls crypto provider as the process default, unless the program
/// installed one already (that one wins): AWS-LC with the `aws-lc-rs` feature, else *ring*.
///
/// kunci's reqwest is built without a default provider (so only the chosen stack is
/// compiled), and reqwest panics when a client is built with none installed. kunci's own
/// clients install it; call this before `reqwest::Client::new()` / `builder().build()` of a
/// client of yours. [`AuthMiddleware::new`](crate::AuthMiddleware::new) calls it too, so a
/// client built after the middleware needs nothing more.
///
/// # Errors
/// A configuration error when the build has neither `ring` nor `aws-lc-rs` and the program
/// installed no provider.
pub fn ensure_crypto_provider() -> Result<(), Error> {
    if rustls::crypto::CryptoProvider::get_default().is_some() {
        return Ok(());
    }
    #[cfg(feature = "aws-lc-rs")]
    let provider = Some(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let provider = Some(rustls::crypto::ring::default_provider());
    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    let provider: Option<rustls::crypto::CryptoProvider> = None;
    let Some(provider) = provider else {
        return Err(Error::configuration(
            "no TLS crypto provider: enable kunci's `ring` or `aws-lc-rs` feature, or install a rustls CryptoProvider before building a client",
        ));
    };
    // Another thread may have installed one meanwhile; either is fine.
    let _ = provider.install_default();
    Ok(())
}
