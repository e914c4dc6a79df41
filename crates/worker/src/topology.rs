//! Moving the broker from a queue per organization (releases before the
//! shared notice queue) to the topology of this release, once per queue
//! prefix. See docs/per-organization-concurrency.md, "Migration".

use std::time::Duration;

use passare_imports_queue::{self as queue, QueueError, WorkChannel};
use passare_imports_store::{StoreError, chunks, topology, turns};

use crate::Worker;

#[derive(Debug, thiserror::Error)]
pub(crate) enum MoveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl Worker {
    /// Announces every organization with work waiting on the notice queue,
    /// then deletes the old queues (the old notice queue and each
    /// organization's) with the messages they hold — wake-ups only: the
    /// chunks are rows in PostgreSQL — and records the move so later starts
    /// skip it. Safe from several workers at once: a second announcement is
    /// dropped by the drain lease, deleting a deleted queue is no error.
    pub(crate) async fn move_topology(&self, conn: &queue::Connection) -> Result<(), MoveError> {
        let mut db = self.db.conn().await?;
        if topology::is_current(&mut db, &self.queue.prefix).await? {
            return Ok(());
        }
        let channel = WorkChannel::open(self.queue.clone(), conn).await?;
        let waiting = chunks::waiting_organizations(&mut db, Duration::ZERO, None).await?;
        for notice in turns::notices(&mut db, &waiting).await? {
            channel.notify_ready(&notice).await?;
        }
        let orgs = topology::organizations_ever_queued(&mut db).await?;
        let messages = channel.delete_legacy_queues(&orgs).await?;
        topology::record_current(&mut db, &self.queue.prefix, orgs.len(), messages).await?;
        channel.close().await;
        tracing::info!(
            organizations = orgs.len(),
            announced = waiting.len(),
            legacy_messages = messages,
            "broker moved to the shared notice queue; the queues per organization are gone"
        );
        Ok(())
    }
}
