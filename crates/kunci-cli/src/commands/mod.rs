//! One module per command. Each takes the [`Context`] (or, for `demo` and `completions`,
//! nothing of it) and its own arguments, and prints its result on stdout.

pub(crate) mod completions;
#[cfg(feature = "demo")]
pub(crate) mod demo;
pub(crate) mod exec;
pub(crate) mod header;
pub(crate) mod login;
pub(crate) mod logout;
pub(crate) mod status;
pub(crate) mod token;
pub(crate) mod verify;
