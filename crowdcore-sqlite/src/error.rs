//! Why a database could not be opened, and how SQLite's errors map to [`StoreError`].

use std::path::{Path, PathBuf};

use crowdcore::store::StoreError;
use rusqlite::ErrorCode;

/// A database could not be opened. Nothing was written to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The file exists and is not an SQLite database.
    #[error("{} is not an SQLite database", path.display())]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The database was written by a newer version of crowdcore-sqlite, whose schema this
    /// version cannot read.
    #[error(
        "{} has schema version {found}, newer than this crowdcore-sqlite reads ({supported}); \
         upgrade crowdcore-sqlite",
        path.display()
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Its schema version (`PRAGMA user_version`).
        found: i64,
        /// The newest version this build reads.
        supported: i64,
    },
    /// Another connection holds a lock on the database past the busy timeout.
    #[error("{} is locked by another connection: {reason}", path.display())]
    Locked {
        /// The file.
        path: PathBuf,
        /// SQLite's message.
        reason: String,
    },
    /// The disk (or the configured size cap) is full.
    #[error("the disk is full: {reason}")]
    Full {
        /// SQLite's message.
        reason: String,
    },
    /// The file is an SQLite database, but damaged.
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// SQLite's message.
        reason: String,
    },
    /// Any other failure: the file cannot be read or created, a migration failed, …
    #[error("cannot open {}: {reason}", path.display())]
    Other {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl OpenError {
    pub(crate) fn from_sqlite(path: &Path, e: rusqlite::Error) -> Self {
        let path = path.to_owned();
        let reason = e.to_string();
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => OpenError::NotADatabase { path },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                OpenError::Locked { path, reason }
            }
            Some(ErrorCode::DiskFull) => OpenError::Full { reason },
            Some(ErrorCode::DatabaseCorrupt) => OpenError::Corrupt { path, reason },
            _ => OpenError::Other { path, reason },
        }
    }
}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Locked { .. } => StoreError::Locked(e.to_string()),
            OpenError::Full { .. } => StoreError::Full(e.to_string()),
            OpenError::NotADatabase { .. }
            | OpenError::NewerSchema { .. }
            | OpenError::Corrupt { .. } => StoreError::Corrupt(e.to_string()),
            OpenError::Other { .. } => StoreError::Other(e.to_string()),
        }
    }
}

/// The [`StoreError`] for a failed SQLite call.
pub(crate) fn store_error(e: rusqlite::Error) -> StoreError {
    let message = e.to_string();
    match &e {
        rusqlite::Error::SqliteFailure(..) => match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::Locked(message)
            }
            Some(ErrorCode::DiskFull) => StoreError::Full(message),
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                StoreError::Corrupt(message)
            }
            _ => StoreError::Other(message),
        },
        // A value in the database that does not read back as what was written.
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt(message),
        _ => StoreError::Other(message),
    }
}
