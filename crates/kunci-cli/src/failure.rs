//! Failures as the user sees them: one `error: …` line (plus a hint where useful) and an exit
//! code.

use std::{error::Error as StdError, io};

use kunci::ErrorKind;

use crate::output::err_line;

/// The exit codes, a contract for scripts (see `docs/cli.md`).
pub(crate) mod code {
    /// Usage or configuration.
    pub(crate) const CONFIGURATION: u8 = 2;
    /// Credentials rejected or re-authentication required.
    pub(crate) const REAUTHENTICATE: u8 = 3;
    /// Rate limited: a local cool-down or the server.
    pub(crate) const RATE_LIMITED: u8 = 4;
    /// The provider or the token store is unavailable.
    pub(crate) const UNAVAILABLE: u8 = 5;
    /// The provider answered something malformed, unexpected or oversized.
    pub(crate) const PROTOCOL: u8 = 6;
    /// Anything else (an error kind this build does not know).
    pub(crate) const OTHER: u8 = 1;
}

/// The exit code of an error kind. Store failures count as "unavailable" (5): the store, like
/// the provider, is something the command depends on that failed, and "retry later, check the
/// store" is what a script should do; a misconfigured store is a configuration error (2).
pub(crate) fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Configuration => code::CONFIGURATION,
        ErrorKind::ReauthenticationRequired => code::REAUTHENTICATE,
        ErrorKind::RateLimited { .. } => code::RATE_LIMITED,
        ErrorKind::Transient | ErrorKind::Store => code::UNAVAILABLE,
        ErrorKind::Protocol => code::PROTOCOL,
        _ => code::OTHER,
    }
}

/// A failed command.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    message: String,
    hint: Option<String>,
}

impl Failure {
    /// A usage or configuration failure (exit code 2). The message must not hold a secret.
    pub(crate) fn configuration(message: impl Into<String>) -> Self {
        Self {
            code: code::CONFIGURATION,
            message: message.into(),
            hint: None,
        }
    }

    /// A failure with its own exit code.
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// Ends the program with `code` and prints nothing (`kunci exec` passing on its command's
    /// exit status).
    pub(crate) fn exit(code: u8) -> Self {
        Self::new(code, String::new())
    }

    /// Adds a `hint:` line.
    #[must_use]
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a hint unless there is one already.
    #[must_use]
    pub(crate) fn or_hint(self, hint: impl Into<String>) -> Self {
        if self.hint.is_some() {
            self
        } else {
            self.hint(hint)
        }
    }

    /// The message (tests, the demo).
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// Writes the `error:` line and the hint to stderr.
    pub(crate) fn report(&self) {
        if self.message.is_empty() {
            return;
        }
        err_line(&format!("error: {}", self.message));
        if let Some(hint) = &self.hint {
            err_line(&format!("hint: {hint}"));
        }
    }
}

impl From<kunci::Error> for Failure {
    fn from(e: kunci::Error) -> Self {
        let mut message = e.to_string();
        // A network failure's root cause ("Connection refused") says more than "could not
        // connect". Only an `io::Error` is appended: it never carries a URL or a body.
        if let Some(io) = root_io_error(&e) {
            let io = io.to_string();
            if !message.contains(&io) {
                message.push_str(": ");
                message.push_str(&io);
            }
        }
        Self::new(exit_code(e.kind()), message)
    }
}

fn root_io_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    let mut found = None;
    let mut next = e.source();
    while let Some(cause) = next {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            found = Some(io);
        }
        next = cause.source();
    }
    found
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn kinds_map_to_the_documented_codes() {
        assert_eq!(exit_code(ErrorKind::Configuration), 2);
        assert_eq!(exit_code(ErrorKind::ReauthenticationRequired), 3);
        assert_eq!(
            exit_code(ErrorKind::RateLimited {
                until: datetime!(2026-01-01 00:00 UTC)
            }),
            4
        );
        assert_eq!(exit_code(ErrorKind::Transient), 5);
        assert_eq!(exit_code(ErrorKind::Store), 5);
        assert_eq!(exit_code(ErrorKind::Protocol), 6);
    }

    #[test]
    fn io_root_cause_is_appended() {
        let io = io::Error::new(io::ErrorKind::ConnectionRefused, "Connection refused");
        let failure =
            Failure::from(kunci::Error::transient("could not connect to x").with_source(io));
        assert_eq!(failure.code, 5);
        assert!(
            failure.message().ends_with(": Connection refused"),
            "{}",
            failure.message()
        );
    }
}
