//! Making a chunk fail on purpose: a lock on a target table that the
//! chunk's write waits behind until its time limit, and waiting until a
//! chunk's failure shows.

use std::time::Duration;

use passare_imports_cli::client::Client;
use passare_imports_proto::v1 as pb;
use passare_imports_store::sqlx;

use crate::calls::chunk_failures;
use crate::test_env::TestEnv;

/// Holds `EXCLUSIVE` on the cases table (reads go on, writes wait) until
/// released, from a connection of its own.
pub struct TableLock {
    conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
}

impl TableLock {
    pub async fn take(env: &TestEnv) -> anyhow::Result<Self> {
        let mut conn = env.db.pool().acquire().await?;
        sqlx::query("BEGIN").execute(&mut *conn).await?;
        sqlx::query("LOCK TABLE cases IN EXCLUSIVE MODE")
            .execute(&mut *conn)
            .await?;
        Ok(Self { conn })
    }

    pub async fn release(mut self) -> anyhow::Result<()> {
        sqlx::query("COMMIT").execute(&mut *self.conn).await?;
        Ok(())
    }
}

/// Waits until the chunk `seq` of the import has a failure with `outcome`.
pub async fn wait_for_failure(
    client: &mut Client,
    import_id: &str,
    seq: i32,
    outcome: pb::ChunkFailureOutcome,
) -> anyhow::Result<Vec<pb::ChunkFailure>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let all = chunk_failures(client, import_id).await?;
        if all
            .iter()
            .any(|f| f.chunk_seq == seq && f.outcome == outcome as i32)
        {
            return Ok(all);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "chunk {seq} of {import_id} never got a {outcome:?} failure: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
