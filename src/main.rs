//! The `tether` command.

fn main() {}
