//! Integration tests of auth-stamps against the Stamps simulator, through a real
//! `TokenManager` (one binary, several modules).

mod faults;
mod flows;
mod logs;
mod props;
mod support;
