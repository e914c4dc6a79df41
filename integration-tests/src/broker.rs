//! The test's queues on the real RabbitMQ, through the queue crate: waking
//! workers with a ready notice as the server does, counting and purging
//! notices, taking a dead-lettered chunk, building the queues of an older
//! release. Only this test's queue prefix is ever touched.

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

    /// Publishes a ready notice for `org` (confirmed), as the server does
    /// when an import starts or a pause is lifted but without a turn (as an
    /// earlier release did), so no worker drops it as redundant: a worker
    /// that takes it drains the organization, unless something keeps it from
    /// doing so.
    pub async fn announce(&self, org: i64) -> anyhow::Result<()> {
        Ok(self
            .work
            .notify_ready(&queue::OrgReady::new(org, None))
            .await?)
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

    /// Messages waiting in the dead-letter queue.
    pub async fn dead_messages(&self) -> anyhow::Result<u32> {
        self.ready_in(&self.config.dead_queue()).await
    }

    /// Ready notices no worker has taken yet.
    pub async fn ready_notices(&self) -> anyhow::Result<u32> {
        self.ready_in(&self.config.notice_queue()).await
    }

    /// Whether a queue of this test's prefix exists (a passive declare on a
    /// channel of its own: a missing queue closes that channel only).
    pub async fn queue_exists(&self, name: &str) -> anyhow::Result<bool> {
        match self.ready_in(name).await {
            Ok(_) => Ok(true),
            Err(e) if format!("{e:#}").contains("NOT_FOUND") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Builds the topology of releases before the shared notice queue: a
    /// queue per organization holding `messages` chunk messages, and the old
    /// notice queue with a notice for each organization, as a deployment
    /// upgrading to this release has them.
    pub async fn legacy_topology(&self, orgs: &[i64], messages: u32) -> anyhow::Result<()> {
        let channel = self.conn.create_channel().await?;
        let quorum = || {
            let mut args = lapin::types::FieldTable::default();
            args.insert(
                "x-queue-type".into(),
                lapin::types::AMQPValue::LongString("quorum".into()),
            );
            args
        };
        let declare = |name: String| {
            let channel = channel.clone();
            async move {
                channel
                    .queue_declare(
                        name.as_str().into(),
                        QueueDeclareOptions {
                            durable: true,
                            ..QueueDeclareOptions::default()
                        },
                        quorum(),
                    )
                    .await
            }
        };
        let publish = |name: String, body: String| {
            let channel = channel.clone();
            async move {
                channel
                    .basic_publish(
                        "".into(),
                        name.as_str().into(),
                        Default::default(),
                        body.as_bytes(),
                        Default::default(),
                    )
                    .await?
                    .await
            }
        };
        declare(self.config.legacy_ready_queue()).await?;
        for &org in orgs {
            declare(self.config.legacy_org_queue(org)).await?;
            for seq in 0..messages {
                let chunk = format!(
                    r#"{{"version":"1","chunk_id":{seq},"import_id":"{}","file_id":"{}","organization_id":{org},"seq":{seq}}}"#,
                    uuid::Uuid::nil(),
                    uuid::Uuid::nil()
                );
                publish(self.config.legacy_org_queue(org), chunk).await?;
            }
            let notice = format!(r#"{{"version":"1","organization_id":{org}}}"#);
            publish(self.config.legacy_ready_queue(), notice).await?;
        }
        let _ = channel.close(200, "done".into()).await;
        Ok(())
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

    /// Loses every notice: what the broker would lose with its queues.
    pub async fn purge_notices(&self) -> anyhow::Result<()> {
        let channel = self.conn.create_channel().await?;
        channel
            .queue_purge(
                self.config.notice_queue().as_str().into(),
                QueuePurgeOptions::default(),
            )
            .await?;
        let _ = channel.close(200, "done".into()).await;
        Ok(())
    }

    /// Takes the oldest message of the dead-letter queue.
    pub async fn take_dead_letter(&self) -> anyhow::Result<DeadChunk> {
        Ok(self.take_dead_letter_traced().await?.0)
    }

    /// The next dead letter, with the trace context its headers carry.
    pub async fn take_dead_letter_traced(
        &self,
    ) -> anyhow::Result<(DeadChunk, passare_imports_queue::TraceHeaders)> {
        let channel = self.conn.create_channel().await?;
        let got = channel
            .basic_get(
                self.config.dead_queue().as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await?
            .context("no dead-lettered message")?;
        let _ = channel.close(200, "done".into()).await;
        let trace = passare_imports_queue::trace_headers(&got.delivery);
        Ok((serde_json::from_slice(&got.delivery.data)?, trace))
    }

    pub async fn close(self) -> anyhow::Result<()> {
        self.work.close().await;
        self.conn.close(200, "done".into()).await?;
        Ok(())
    }
}
