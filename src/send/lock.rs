//! Whether a run sends its queue alone or beside other workers.
//!
//! On SQLite one process sends a queue: it holds the store's lock for it,
//! which proves no live process owns a row left 'sending', so a killed
//! run's rows are taken back at once. On PostgreSQL any number of workers,
//! on any machine, send the same queue; their claims are leases, and a dead
//! worker's rows return to the queue when its lease lapses.

use crate::store::deliveries::{self, Queue};
use crate::store::{Backend, Store, StoreLock};

pub enum Membership {
    Sole(StoreLock),
    Shared,
}

/// Joins the senders of the queue called `name`: `Ok(None)` when it can
/// only have one and another process has it.
pub async fn join(store: &Store, name: &str) -> anyhow::Result<Option<Membership>> {
    match store.backend() {
        Backend::Sqlite => Ok(store.try_lock(name).await?.map(Membership::Sole)),
        Backend::Postgres => Ok(Some(Membership::Shared)),
    }
}

impl Membership {
    /// Gives back the rows a killed run left claimed, when that is safe
    /// now; shared queues wait for the lease instead.
    pub async fn release_orphans(&self, store: &Store, queue: Queue) -> anyhow::Result<u64> {
        match self {
            Membership::Sole(_) => {
                let mut tx = store.begin().await?;
                let released = deliveries::release_orphaned_claims(&mut tx, queue).await?;
                tx.commit().await?;
                Ok(released)
            }
            Membership::Shared => Ok(0),
        }
    }
}
