//! The scratch table of one analysis: the keys it has seen beyond its memory
//! budget. A temporary table of the analysis's own connection — never written
//! to the WAL, invisible to other sessions, and gone with the connection if
//! the process dies — dropped when the analysis ends.

use sqlx::PgConnection;

use crate::StoreError;

/// A key an analysis saw first: its hash, the index of its file among the
/// import's files, and its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenKey {
    pub hash: u64,
    pub file_index: usize,
    pub row: u64,
}

/// Hashes are stored as the bigint with the same 64 bits.
fn stored(hash: u64) -> i64 {
    i64::from_ne_bytes(hash.to_ne_bytes())
}

fn read(hash: i64) -> u64 {
    u64::from_ne_bytes(hash.to_ne_bytes())
}

/// Creates the connection's (empty) scratch table, replacing one an earlier
/// analysis on the same connection left behind after an error.
pub async fn create_keys(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("DROP TABLE IF EXISTS pg_temp.analysis_keys")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "CREATE TEMP TABLE analysis_keys (
            type_key   text   NOT NULL,
            hash       bigint NOT NULL,
            file_index int    NOT NULL,
            row_number bigint NOT NULL,
            PRIMARY KEY (type_key, hash))",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Which of `hashes` of `type_key` the scratch table holds, with where each
/// was first seen.
pub async fn find_keys(
    conn: &mut PgConnection,
    type_key: &str,
    hashes: &[u64],
) -> Result<Vec<SeenKey>, StoreError> {
    let wanted: Vec<i64> = hashes.iter().map(|h| stored(*h)).collect();
    let rows: Vec<(i64, i32, i64)> = sqlx::query_as(
        "SELECT hash, file_index, row_number FROM pg_temp.analysis_keys
          WHERE type_key = $1 AND hash = ANY($2)",
    )
    .bind(type_key)
    .bind(&wanted)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(hash, file_index, row)| SeenKey {
            hash: read(hash),
            file_index: usize::try_from(file_index).unwrap_or_default(),
            row: u64::try_from(row).unwrap_or_default(),
        })
        .collect())
}

/// Adds keys of `type_key` seen for the first time, in one statement.
pub async fn insert_keys(
    conn: &mut PgConnection,
    type_key: &str,
    keys: &[SeenKey],
) -> Result<(), StoreError> {
    let hashes: Vec<i64> = keys.iter().map(|k| stored(k.hash)).collect();
    let files: Vec<i32> = keys
        .iter()
        .map(|k| i32::try_from(k.file_index).unwrap_or(i32::MAX))
        .collect();
    let rows: Vec<i64> = keys
        .iter()
        .map(|k| i64::try_from(k.row).unwrap_or(i64::MAX))
        .collect();
    sqlx::query(
        "INSERT INTO pg_temp.analysis_keys (type_key, hash, file_index, row_number)
         SELECT $1, h, f, r FROM unnest($2::bigint[], $3::int[], $4::bigint[]) AS k(h, f, r)",
    )
    .bind(type_key)
    .bind(&hashes)
    .bind(&files)
    .bind(&rows)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Drops the connection's scratch table, if it has one.
pub async fn drop_keys(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("DROP TABLE IF EXISTS pg_temp.analysis_keys")
        .execute(&mut *conn)
        .await?;
    Ok(())
}
