//! Re-imports tell unchanged rows by a hash of their values stored with each
//! record (docs/re-imports.md). The hash is a shortcut, never the authority:
//! a record changed outside the import path, or stored without a hash, is
//! compared column by column, and analysis and load agree on it.

use passare_imports_cli::client::Client;
use passare_imports_integration_tests::files::{self, NewFile};
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use passare_imports_store::sqlx;

const HEADER: &str = "case_number,deceased_first_name,deceased_last_name,date_of_birth,date_of_death,source_updated_at\n";
const ROWS: &str = "C1,Ann,Lee,1950-01-01,2020-01-01,2024-01-01T00:00:00Z
C2,Bob,Ray,1951-02-02,2021-02-02,2024-01-01T00:00:00Z
C3,Cy,Do,1952-03-03,2022-03-03,2024-01-01T00:00:00Z
C4,Di,Fu,1953-04-04,2023-04-04,2024-01-01T00:00:00Z
";

/// Analyses and imports `rows` into organization 1042; returns the import
/// and its analysis' and its load's (created, updated, unchanged, stale).
async fn import(client: &mut Client, rows: &str) -> anyhow::Result<(String, [i64; 4], [i64; 4])> {
    let (id, _) = files::draft_with_files(
        client,
        1042,
        pb::FailurePolicy::ImportValidRows,
        &[NewFile::new(
            "cases.csv",
            "cases",
            format!("{HEADER}{rows}"),
        )],
    )
    .await?;
    let report = files::analyze(client, &id).await?;
    let f = files::file_analysis(&report, "cases.csv")?;
    let predicted = [
        f.would_create,
        f.would_update,
        f.would_leave_unchanged,
        f.would_skip_stale,
    ];
    start(client, &id).await?;
    let done = wait_terminal(client, &id).await?;
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:?}");
    let p = done.progress.unwrap_or_default();
    let loaded = [
        p.rows_created,
        p.rows_updated,
        p.rows_unchanged,
        p.rows_stale,
    ];
    Ok((id, predicted, loaded))
}

async fn execute(env: &TestEnv, sql: &str) -> anyhow::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(env.db.pool())
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_changed_outside_an_import_or_without_a_hash_are_compared_by_value()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    let (first, predicted, loaded) = import(&mut client, ROWS).await?;
    assert_eq!((predicted, loaded), ([4, 0, 0, 0], [4, 0, 0, 0]));
    let unhashed = "SELECT count(*) FROM cases WHERE row_hash IS NULL";
    assert_eq!(
        count(&env.db, unhashed).await?,
        0,
        "every record has its hash"
    );

    // C2 edited outside the import path: the hash it kept would say
    // "unchanged" to the same file, so the update forgets it.
    execute(
        &env,
        "UPDATE cases SET deceased_last_name = 'Edited' WHERE case_number = 'C2'",
    )
    .await?;
    // C3 as stored before hashes existed.
    execute(
        &env,
        "UPDATE cases SET row_hash = NULL WHERE case_number = 'C3'",
    )
    .await?;
    assert_eq!(count(&env.db, unhashed).await?, 2);

    // The same file again: C2 is put back, C3 is equal by value (and gets its
    // hash back), C1 and C4 are unchanged by their hash; C4 has an older
    // source_updated_at than stored and is stale.
    let older = ROWS.replace(
        "C4,Di,Fu,1953-04-04,2023-04-04,2024-01-01T00:00:00Z",
        "C4,Di,Fuller,1953-04-04,2023-04-04,2023-06-01T00:00:00Z",
    );
    let (second, predicted, loaded) = import(&mut client, &older).await?;
    assert_eq!(predicted, [0, 1, 2, 1], "analysis");
    assert_eq!(loaded, [0, 1, 2, 1], "load");
    let last_name = |key: &str| {
        let pool = env.db.pool().clone();
        let sql = format!("SELECT deceased_last_name FROM cases WHERE case_number = '{key}'");
        async move {
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
                .fetch_one(&pool)
                .await
        }
    };
    assert_eq!(last_name("C2").await?, "Ray");
    assert_eq!(last_name("C4").await?, "Fu", "a stale row is not written");
    assert_eq!(count(&env.db, unhashed).await?, 0, "hashes restored");
    let written_by =
        |import: &str| format!("SELECT count(*) FROM cases WHERE source_import_id = '{import}'");
    assert_eq!(
        count(&env.db, &written_by(&second)).await?,
        1,
        "only C2 rewritten"
    );
    assert_eq!(count(&env.db, &written_by(&first)).await?, 3);

    // A third time: nothing to do, by hash alone.
    let (_, predicted, loaded) = import(&mut client, ROWS).await?;
    assert_eq!((predicted, loaded), ([0, 0, 4, 0], [0, 0, 4, 0]));
    env.finish().await
}

/// An all-or-nothing import that fails puts back the records it updated,
/// hashes included: the next re-import of the original file finds them
/// unchanged by hash alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_update_puts_the_records_hashes_back() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 50,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let original = cases_csv(200, 1)?;
    let (first, _) = env
        .draft_with_file(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            "a.csv",
            &original,
        )
        .await?;
    start(&mut client, &first).await?;
    assert_eq!(
        state(&wait_terminal(&mut client, &first).await?),
        pb::ImportState::Completed
    );
    let before = hashes_by_case(&env).await?;
    assert_eq!(before.len(), 200);
    assert!(before.iter().all(|(_, hash)| hash.is_some()), "{before:?}");

    // Every case changed, and a row of the last chunk fails when it loads:
    // the import stops after updating the first 150 records and rolls back.
    let (second, _) = env
        .started_with_a_late_failure(
            &mut client,
            1042,
            pb::FailurePolicy::StopOnFirstError,
            &cases_csv(200, 2)?,
            180,
        )
        .await?;
    let failed = wait_terminal(&mut client, &second).await?;
    assert_eq!(state(&failed), pb::ImportState::Failed, "{failed:?}");
    // Every record's hash as it was, record by record (none missing).
    assert_eq!(hashes_by_case(&env).await?, before, "hashes put back");

    let (third, _) = env
        .draft_with_file(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            "a.csv",
            &original,
        )
        .await?;
    let report = files::analyze(&mut client, &third).await?;
    let f = files::file_analysis(&report, "a.csv")?;
    assert_eq!(
        (f.would_create, f.would_update, f.would_leave_unchanged),
        (0, 0, 200)
    );
    start(&mut client, &third).await?;
    let done = wait_terminal(&mut client, &third).await?;
    let p = done.progress.unwrap_or_default();
    assert_eq!(
        (p.rows_created, p.rows_updated, p.rows_unchanged),
        (0, 0, 200)
    );
    env.finish().await
}

/// The target tables keep room on their pages for updates (migration 0024):
/// a re-import that changes every record writes each new version on the
/// page of the old one (a HOT update, no new primary-key entry), and the
/// table does not grow. With pages filled to the brim every version would
/// move to a new page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_import_changing_every_record_rewrites_each_on_its_own_page() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    let rows = |last: &str| -> String {
        (0..300)
            .map(|i| format!("K{i:04},Ann,{last}{i},1950-01-01,2020-01-01,2024-01-01T00:00:00Z\n"))
            .collect()
    };
    let (_, _, loaded) = import(&mut client, &rows("Lee")).await?;
    assert_eq!(loaded, [300, 0, 0, 0]);
    let before = pages_by_case(&env).await?;
    let pages = count(&env.db, "SELECT pg_relation_size('cases') / 8192").await?;
    assert!(pages > 2, "the records span several pages: {pages}");

    let (_, _, loaded) = import(&mut client, &rows("Ray")).await?;
    assert_eq!(loaded, [0, 300, 0, 0]);
    assert_eq!(
        pages_by_case(&env).await?,
        before,
        "every record kept its page"
    );
    assert_eq!(
        count(&env.db, "SELECT pg_relation_size('cases') / 8192").await?,
        pages,
        "the table did not grow"
    );
    env.finish().await
}

/// Each case's number with the heap page its current version is on.
async fn pages_by_case(env: &TestEnv) -> anyhow::Result<Vec<(String, f64)>> {
    Ok(
        sqlx::query_as(
            "SELECT case_number, (ctid::text::point)[0] FROM cases ORDER BY case_number",
        )
        .fetch_all(env.db.pool())
        .await?,
    )
}

/// Each case's number with its stored row hash, in case order.
async fn hashes_by_case(env: &TestEnv) -> anyhow::Result<Vec<(String, Option<i64>)>> {
    Ok(
        sqlx::query_as("SELECT case_number, row_hash FROM cases ORDER BY case_number")
            .fetch_all(env.db.pool())
            .await?,
    )
}
