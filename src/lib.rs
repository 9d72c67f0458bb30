//! The `tether` binary's library: configuration, command line, token
//! verification, the publish API key check, the HTTP proxy to the
//! application's backend and logging, kept out of
//! `main.rs` so that each piece is tested on its own.

pub mod api_key;
pub mod app;
pub mod auth;
pub mod cli;
pub mod connect;
pub mod logging;
pub mod proxy;
pub mod secret;
pub mod serve;
pub mod settings;
pub mod units;
