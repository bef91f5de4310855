//! The HTTP exchange (`auth_core::http`) against real servers on loopback: a plain responder,
//! a TLS responder with a certificate made in the test, and a proxy that records whether it
//! was used; clients on the user's reqwest builder; one client shared by a pool.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod exchange;
mod own_client;
mod servers;
mod shared_client;
