//! One sender per queue per database. Holding the lock proves that no other
//! live process owns a claimed row, so rows left 'sending' by a killed
//! process can be taken back at once instead of after their lease.

use std::fs::{File, OpenOptions};
use std::path::Path;

use anyhow::Context;

pub struct QueueLock {
    _file: File,
}

impl QueueLock {
    /// `Ok(None)` when another process holds it.
    pub fn try_acquire(database: &Path, queue: &str) -> anyhow::Result<Option<QueueLock>> {
        let path = database.with_extension(format!("{queue}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(QueueLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}
