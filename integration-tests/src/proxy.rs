//! A TCP proxy the test controls, between the service and the S3 test
//! server, to make a storage outage: [`TcpProxy::cut`] breaks every open
//! connection and turns new ones away (accepted and closed at once: the
//! client sees a reset or an early end, as from a store that is down), and
//! [`TcpProxy::restore`] lets connections through again.
//!
//! The outage is made here rather than by stopping the test server because
//! moto keeps its buckets in memory: stopped and started again, it would
//! have lost every stored file, which no real object store does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// A running proxy; it stops when dropped.
pub struct TcpProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Cancelled by a cut: every connection piped before it ends.
    session: Arc<Mutex<CancellationToken>>,
    turned_away: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl TcpProxy {
    /// Listens on a free local port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = Self {
            addr: listener.local_addr()?,
            up: Arc::new(AtomicBool::new(true)),
            session: Arc::new(Mutex::new(CancellationToken::new())),
            turned_away: Arc::new(AtomicU64::new(0)),
            stop: CancellationToken::new(),
        };
        tokio::spawn(accept_loop(
            listener,
            target,
            proxy.up.clone(),
            proxy.session.clone(),
            proxy.turned_away.clone(),
            proxy.stop.clone(),
        ));
        Ok(proxy)
    }

    /// `http://{addr}`: the endpoint to give the service.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Breaks every open connection and turns new ones away.
    pub async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut session = self.session.lock().await;
        session.cancel();
        *session = CancellationToken::new();
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Connections turned away while cut.
    pub fn turned_away(&self) -> u64 {
        self.turned_away.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    up: Arc<AtomicBool>,
    session: Arc<Mutex<CancellationToken>>,
    turned_away: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _)) = accepted else { continue };
        if !up.load(Ordering::SeqCst) {
            turned_away.fetch_add(1, Ordering::SeqCst);
            // Closed with a reset rather than a clean end.
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        let cut = session.lock().await.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(target).await else {
                return;
            };
            let mut client = client;
            tokio::select! {
                () = cut.cancelled() => {
                    let _ = client.set_zero_linger();
                }
                () = stop.cancelled() => {}
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
            }
        });
    }
}
