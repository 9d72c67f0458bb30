//! The fuzz targets' checked-in inputs on the stable toolchain: every seed
//! and crash reproducer replayed through its target's check, and the
//! hand-written seeds of the operation targets kept equal to their files.
//! Here rather than in `tether-core`, which does no I/O, tests included.

mod replay;
mod seeds;
