//! The test's queues on the real RabbitMQ, through the queue crate: waking
//! workers with a ready notice as the server does, counting and purging
//! messages, taking a dead-lettered chunk. Only this test's queue prefix is
//! ever touched.

use anyhow::Context;
use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueuePurgeOptions};
use passare_imports_domain::messages::DeadChunk;
use passare_imports_queue::{self as queue, QueueConfig, WorkChannel};

use crate::test_env::TestEnv;

/// A connection to the broker of one test's service.
pub struct Broker {
    config: QueueConfig,
    conn: lapin::Connection,
    work: WorkChannel,
}

impl Broker {
    pub async fn connect(env: &TestEnv) -> anyhow::Result<Self> {
        let config = env.config.queue();
        let conn = queue::connect(&config, "integration test").await?;
        let work = WorkChannel::open(config.clone(), &conn).await?;
        Ok(Self { config, conn, work })
    }

    /// Publishes a ready notice for `org` (confirmed), exactly as the server
    /// does when an import starts or a pause is lifted: a worker that takes
    /// it drains the organization, unless something keeps it from doing so.
    pub async fn announce(&self, org: i64) -> anyhow::Result<()> {
        Ok(self.work.notify_ready(org).await?)
    }

    /// Messages ready in a queue (not counting those delivered and not yet
    /// acknowledged); a passive declare, on a channel of its own, never
    /// creates the queue.
    async fn ready_in(&self, name: &str) -> anyhow::Result<u32> {
        let channel = self.conn.create_channel().await?;
        let q = channel
            .queue_declare(
                name.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                Default::default(),
            )
            .await
            .with_context(|| format!("queue {name}"))?;
        let _ = channel.close(200, "done".into()).await;
        Ok(q.message_count())
    }

    /// Ready notices no worker has taken yet.
    pub async fn ready_notices(&self) -> anyhow::Result<u32> {
        self.ready_in(&self.config.ready_queue()).await
    }

    /// Chunk messages waiting in an organization's queue.
    pub async fn chunk_messages(&self, org: i64) -> anyhow::Result<u32> {
        self.ready_in(&self.config.org_queue(org)).await
    }

    /// Waits until every ready notice has been taken by a worker (at most
    /// `within`).
    pub async fn wait_notices_taken(&self, within: std::time::Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = self.ready_notices().await?;
            if left == 0 {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{left} ready notices still untaken after {within:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Loses every message of an organization: its chunk messages and every
    /// ready notice.
    pub async fn purge_organization(&self, org: i64) -> anyhow::Result<()> {
        let channel = self.conn.create_channel().await?;
        for name in [self.config.org_queue(org), self.config.ready_queue()] {
            channel
                .queue_purge(name.as_str().into(), QueuePurgeOptions::default())
                .await?;
        }
        let _ = channel.close(200, "done".into()).await;
        Ok(())
    }

    /// Takes the oldest message of the dead-letter queue.
    pub async fn take_dead_letter(&self) -> anyhow::Result<DeadChunk> {
        let channel = self.conn.create_channel().await?;
        let got = channel
            .basic_get(
                self.config.dead_queue().as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await?
            .context("no dead-lettered message")?;
        let _ = channel.close(200, "done".into()).await;
        Ok(serde_json::from_slice(&got.delivery.data)?)
    }

    pub async fn close(self) -> anyhow::Result<()> {
        self.work.close().await;
        self.conn.close(200, "done".into()).await?;
        Ok(())
    }
}
