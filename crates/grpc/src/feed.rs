//! Server streams fed by a task of their own (WatchImport, DownloadResults),
//! bounded against clients that stop reading: a message that waits longer
//! than the stall bound for room ends the stream with DEADLINE_EXCEEDED
//! (`STREAM_STALLED`) and the feeding task stops, freeing what it holds.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use passare_imports_app::ApiError;
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::status::status;

/// A server stream's messages.
pub type Messages<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The sending end of a stream made by [`feed`].
pub struct Feed<T> {
    tx: mpsc::Sender<Result<T, Status>>,
    stall: Duration,
    cut: Option<oneshot::Sender<Status>>,
}

/// A stream of messages, at most `buffer` waiting, and the [`Feed`] that
/// fills it. The stream ends when the feed is dropped.
pub fn feed<T: Send + 'static>(buffer: usize, stall: Duration) -> (Feed<T>, Messages<T>) {
    let (tx, rx) = mpsc::channel(buffer);
    let (cut, cut_rx) = oneshot::channel::<Status>();
    // After the last message: the stall status, if the feed was cut.
    let tail = futures::stream::once(cut_rx).filter_map(|cut| async move { cut.ok().map(Err) });
    let stream = ReceiverStream::new(rx).chain(tail);
    (
        Feed {
            tx,
            stall,
            cut: Some(cut),
        },
        Box::pin(stream),
    )
}

impl<T> Feed<T> {
    /// Sends a message; `false` when the stream is over (the client left,
    /// or it read nothing for the stall bound and the stream was cut).
    pub async fn send(&mut self, message: Result<T, Status>) -> bool {
        match self.tx.send_timeout(message, self.stall).await {
            Ok(()) => true,
            Err(SendTimeoutError::Closed(_)) => false,
            Err(SendTimeoutError::Timeout(_)) => {
                tracing::info!(
                    stall_secs = self.stall.as_secs(),
                    "a stream's client stopped reading; the stream is cut"
                );
                if let Some(cut) = self.cut.take() {
                    let _ = cut.send(status(ApiError::DeadlineExceeded {
                        reason: "STREAM_STALLED",
                        message: format!(
                            "the client read nothing for {}s (IMPORTS_STREAM_STALL_SECS); the stream was cut, start it again",
                            self.stall.as_secs()
                        ),
                    }));
                }
                false
            }
        }
    }

    /// Resolves when the client has gone.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}
