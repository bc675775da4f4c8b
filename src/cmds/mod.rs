//! The `speedcamd` subcommands that are more than a call into the daemon's parts: `replay`,
//! `bench` and `snapshot`.

pub mod bench;
pub mod replay;
pub mod snapshot;
