//! Lost database connections: every session of the test's database is cut
//! several times mid-import; the service retries and the import completes
//! with exactly the source rows, each once.

use std::time::Duration;

use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_database_connections_are_retried_and_lose_nothing() -> anyhow::Result<()> {
    let mut env = TestEnv::start(Options {
        chunk_rows: 500,
        worker_concurrency: 1,
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    env.spawn_worker_process()?;
    let mut client = env.client().await?;
    let id = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::StopOnFirstError,
            30_000,
            21,
        )
        .await?;
    start(&mut client, &id).await?;

    // Only this test's database: other tests run beside this one.
    let admin =
        passare_imports_store::Db::connect(&format!("{}/postgres", postgres_server()), 2).await?;
    let database = env
        .config
        .database_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut cut = 0;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let n: i64 = passare_imports_store::sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&database)
        .fetch_one(admin.pool())
        .await?;
        cut += n;
    }
    admin.close().await;
    assert!(cut > 0, "no connection was cut");

    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(
        done.state,
        pb::ImportState::Completed as i32,
        "{:?}",
        done.error
    );
    let p = done.progress.unwrap_or_default();
    assert_eq!(
        (p.rows_created, p.rows_failed, p.chunks_done),
        (30_000, 0, 60)
    );
    assert_eq!(count(&env.db, "SELECT count(*) FROM cases").await?, 30_000);
    assert_eq!(
        count(&env.db, "SELECT count(DISTINCT case_number) FROM cases").await?,
        30_000
    );
    assert_serial_per_org(&chunk_intervals(&env.db).await?)?;
    env.finish().await
}
