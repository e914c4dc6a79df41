//! Import change notifications for watch streams. Writers `pg_notify` in the
//! transaction that changes an import; each server process holds one LISTEN
//! connection and fans the import ids out to its watchers. Watchers also
//! re-read on a timer, so a notification lost while the LISTEN connection
//! reconnects delays an event but never loses it.

use std::time::Duration;

use passare_imports_store::{Db, EVENTS_CHANNEL};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What a watcher hears: an import that changed, or `None` when notifications
/// may have been missed (every watcher should re-read).
pub type ImportChanged = Option<Uuid>;

#[derive(Clone)]
pub struct EventHub {
    tx: broadcast::Sender<ImportChanged>,
}

impl EventHub {
    /// Starts listening; the task ends with `shutdown`.
    pub fn start(db: Db, shutdown: CancellationToken) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let hub = Self { tx: tx.clone() };
        tokio::spawn(async move {
            loop {
                if shutdown.is_cancelled() {
                    return;
                }
                let mut listener =
                    match passare_imports_store::sqlx::postgres::PgListener::connect_with(db.pool())
                        .await
                    {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::warn!(error = %e, "listen connection failed; retrying");
                            tokio::select! {
                                _ = shutdown.cancelled() => return,
                                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                            }
                        }
                    };
                if let Err(e) = listener.listen(EVENTS_CHANNEL).await {
                    tracing::warn!(error = %e, "listen failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
                // Anything may have changed while we were not listening.
                let _ = tx.send(None);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        n = listener.try_recv() => match n {
                            Ok(Some(n)) => {
                                let _ = tx.send(Uuid::parse_str(n.payload()).ok());
                            }
                            Ok(None) => {
                                // The connection dropped and will be re-established.
                                let _ = tx.send(None);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "listen connection lost; reconnecting");
                                let _ = tx.send(None);
                                break;
                            }
                        }
                    }
                }
            }
        });
        hub
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ImportChanged> {
        self.tx.subscribe()
    }
}
