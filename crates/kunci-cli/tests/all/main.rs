//! Integration tests of the `kunci` binary: every command, every exit code and the promised
//! behaviour, against the simulators over loopback. Each test gets its own HOME, XDG
//! directories and store, and a child environment cleared of the caller's variables.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failure there is the test's failure"
)]

mod support;

mod agent;
mod behaviour;
mod commands;
mod config;
mod exit_codes;
mod providers;
mod security;
mod shell;
