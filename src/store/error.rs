//! Errors of the sled store; each message says what went wrong and what to do about it.

use std::path::PathBuf;

/// Failure of a [`Store`](super::Store) operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created or opened.
    #[error(
        "cannot open the event store in {dir}: {cause}; check that the directory exists and is \
         writable by this user (systemd: StateDirectory=speedcam) and that no other speedcamd \
         process uses it"
    )]
    Open {
        /// Data directory.
        dir: PathBuf,
        /// Underlying error (printed in the message, so not chained as `source()`).
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store was written by a newer speedcam with an incompatible layout.
    #[error(
        "the event store in {dir} has schema version {found}, this speedcamd supports up to \
         {supported}; upgrade speedcamd or point data_dir at a fresh directory"
    )]
    NewerSchema {
        /// Data directory.
        dir: PathBuf,
        /// Version found in the `meta` tree.
        found: u32,
        /// Highest version this build understands.
        supported: u32,
    },
    /// An event id is not a ULID, so it has no time-ordered key.
    #[error("event id {0:?} is not a ULID; event ids must be generated with ulid::Ulid::new()")]
    BadEventId(String),
    /// A stored record could not be decoded.
    #[error(
        "corrupt record in tree {tree}: {cause}; the store may have been written by an \
         incompatible version, move the data directory aside to start fresh"
    )]
    Corrupt {
        /// Tree name.
        tree: &'static str,
        /// Decoding error (printed in the message).
        cause: serde_json::Error,
    },
    /// A record could not be encoded (should not happen for well-formed records).
    #[error("cannot encode a record as JSON: {0}; this is a bug, please report it")]
    Encode(serde_json::Error),
    /// sled failed (I/O error, disk full, corruption).
    #[error("event store I/O failed: {0}; check free disk space and the health of the storage")]
    Sled(sled::Error),
}

// By hand, not `#[from]`: that would also chain the error as `source()`, and the message
// already prints it.
impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(e)
    }
}
