//! What the test's database holds, read the way tests compare it: counts,
//! the recorded time of every chunk, the cases of an organization with their
//! values and provenance. Read-only; checks over these are in `assertions`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use passare_imports_store::Db;
use passare_imports_store::sqlx::{self, Row};
use uuid::Uuid;

use crate::fixtures::CaseValues;
use crate::test_env::TestEnv;

/// The one number `sql` selects.
pub async fn count(db: &Db, sql: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(db.pool())
        .await?)
}

/// How many before-images the database keeps, of every import and type.
pub async fn before_images(db: &Db) -> anyhow::Result<i64> {
    let mut total = 0;
    for def in passare_imports_domain::catalog::CATALOG {
        let table = passare_imports_store::load::undo_table(def);
        total += count(db, &format!("SELECT count(*) FROM {table}")).await?;
    }
    Ok(total)
}

/// A chunk's recorded time interval.
#[derive(Debug, Clone)]
pub struct Interval {
    pub import_id: Uuid,
    pub organization_id: i64,
    pub queue_seq: i64,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub worker: String,
}

/// Every done chunk's (start, finish) in the test database, by start time.
pub async fn chunk_intervals(db: &Db) -> anyhow::Result<Vec<Interval>> {
    let rows = sqlx::query(
        "SELECT c.import_id, c.organization_id, i.queue_seq, c.started_at, c.finished_at, c.worker
           FROM chunks c JOIN imports i ON i.id = c.import_id
          WHERE c.state = 'done' ORDER BY c.started_at",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Interval {
                import_id: r.try_get("import_id")?,
                organization_id: r.try_get("organization_id")?,
                queue_seq: r.try_get("queue_seq")?,
                started: r.try_get("started_at")?,
                finished: r.try_get("finished_at")?,
                worker: r
                    .try_get::<Option<String>, _>("worker")?
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// One chunk of an import as recorded: its place, state, and when and by
/// whom its last attempt ran (unset while it waits).
#[derive(Debug, Clone)]
pub struct ChunkRecord {
    pub seq: i32,
    pub file_position: i32,
    pub state: String,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    pub worker: Option<String>,
}

/// Every chunk of an import, in loading order (files by position, chunks by
/// sequence).
pub async fn chunks_of(db: &Db, import_id: &str) -> anyhow::Result<Vec<ChunkRecord>> {
    let rows = sqlx::query(
        "SELECT c.seq, f.position, c.state, c.started_at, c.finished_at, c.worker
           FROM chunks c JOIN import_files f ON f.id = c.file_id
          WHERE c.import_id = $1::uuid ORDER BY f.position, c.seq",
    )
    .bind(import_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ChunkRecord {
                seq: r.try_get("seq")?,
                file_position: r.try_get("position")?,
                state: r.try_get("state")?,
                started: r.try_get("started_at")?,
                finished: r.try_get("finished_at")?,
                worker: r.try_get("worker")?,
            })
        })
        .collect()
}

/// (state, count) of an import's chunks, by state.
pub async fn chunk_states(db: &Db, import_id: &str) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT state, count(*) FROM chunks WHERE import_id = $1::uuid GROUP BY state ORDER BY state",
    )
    .bind(import_id)
    .fetch_all(db.pool())
    .await?)
}

/// Cases an import wrote last (their `source_import_id`).
pub async fn rows_of(db: &Db, import_id: &str) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM cases WHERE source_import_id = $1::uuid")
            .bind(import_id)
            .fetch_one(db.pool())
            .await?,
    )
}

/// A stored case: its values and the import that last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCase {
    pub values: CaseValues,
    pub source_import_id: Option<Uuid>,
}

/// Every case of an organization, by case number, with the location and
/// director it refers to by name and e-mail.
pub async fn stored_cases(
    db: &Db,
    organization_id: i64,
) -> anyhow::Result<BTreeMap<String, StoredCase>> {
    let rows = sqlx::query(
        "SELECT c.case_number, c.deceased_first_name, COALESCE(c.deceased_middle_name, '') AS middle,
                c.deceased_last_name, COALESCE(c.suffix, '') AS suffix,
                COALESCE(to_char(c.date_of_birth, 'YYYY-MM-DD'), '') AS dob,
                COALESCE(to_char(c.date_of_death, 'YYYY-MM-DD'), '') AS dod,
                COALESCE(c.case_type, '') AS case_type, COALESCE(c.case_status, '') AS case_status,
                COALESCE(c.disposition, '') AS disposition, COALESCE(l.name, '') AS location,
                COALESCE(s.email, '') AS director, COALESCE(to_char(c.opened_on, 'YYYY-MM-DD'), '') AS opened,
                c.source_import_id
           FROM cases c
           LEFT JOIN locations l ON l.id = c.location_id
           LEFT JOIN staff_users s ON s.id = c.director_user_id
          WHERE c.organization_id = $1",
    )
    .bind(organization_id)
    .fetch_all(db.pool())
    .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let mut values: CaseValues = Default::default();
        for (i, v) in values.iter_mut().enumerate() {
            *v = r.try_get::<String, _>(i)?;
        }
        let key = values[0].clone();
        let stored = StoredCase {
            values,
            source_import_id: r.try_get("source_import_id")?,
        };
        anyhow::ensure!(
            out.insert(key.clone(), stored).is_none(),
            "case {key} is stored twice"
        );
    }
    Ok(out)
}

/// A fingerprint of an organization's cases, every column included
/// (provenance and timestamps too): equal fingerprints, equal records.
pub async fn cases_fingerprint(env: &TestEnv, org: i64) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(md5(string_agg(t::text, '|' ORDER BY case_number)), 'none')
           FROM cases t WHERE organization_id = $1",
    )
    .bind(org)
    .fetch_one(env.db.pool())
    .await?)
}
