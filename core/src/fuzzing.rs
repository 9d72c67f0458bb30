//! The fuzz targets' contracts, as plain functions.
//!
//! Each target under `fuzz/` is a one-line wrapper around a `check`
//! function here, which takes the fuzzer's bytes, drives a piece of the
//! core with them and panics when the core breaks its contract: not only
//! on a crash, but on a wrong error code, a frame that should not have been
//! sent, an offset out of order or a request answered twice. The same
//! functions replay the checked-in corpora and crash reproducers in plain
//! `cargo test` (the `tether` package's `tests/fuzz_corpus`, which reads
//! the files, so this crate never does), and the operation targets run under proptest too, so the
//! contracts are guarded on the stable toolchain without a fuzzer.
//!
//! - [`envelope`]: arbitrary text as a client or server message.
//! - [`http_upgrade`]: arbitrary first bytes of a connection.
//! - [`server_bytes`]: arbitrary bytes after the handshake and auth.
//! - [`deflate_bytes`]: the same after a handshake that agreed on
//!   permessage-deflate: compressed frames, bombs, bad RSV1.
//! - [`server_ops`]: operations on a node with several connections.
//! - [`client_ops`]: operations on a client session talking to a node.
//!
//! Built for tests, and for the fuzz crate with the `fuzzing` feature,
//! which also derives `arbitrary::Arbitrary` for the operation types.

pub mod client_ops;
pub mod deflate_bytes;
pub mod envelope;
pub mod http_upgrade;
pub(crate) mod peer;
pub mod server_bytes;
pub mod server_ops;
