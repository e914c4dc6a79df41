//! The scratch tables of one analysis: the keys it has seen and the records
//! of earlier files it remembers, beyond its memory budget. Temporary tables
//! of the analysis's own connection — never written to the WAL, invisible to
//! other sessions, and gone with the connection if the process dies —
//! dropped when the analysis ends.

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

/// Creates the connection's (empty) table of remembered records, replacing
/// one an earlier analysis on the same connection left behind.
pub async fn create_records(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("DROP TABLE IF EXISTS pg_temp.analysis_records")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "CREATE TEMP TABLE analysis_records (
            type_key text NOT NULL,
            key      text NOT NULL,
            vals     text NOT NULL,
            PRIMARY KEY (type_key, key))",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Remembers records of `type_key` (key, values of the columns other types
/// read), keeping the values first remembered for a key, in one statement.
pub async fn insert_records(
    conn: &mut PgConnection,
    type_key: &str,
    records: &[(String, Vec<Option<String>>)],
) -> Result<(), StoreError> {
    let keys: Vec<&str> = records.iter().map(|(k, _)| k.as_str()).collect();
    let vals = records
        .iter()
        .map(|(_, v)| serde_json::to_string(v))
        .collect::<Result<Vec<String>, _>>()
        .map_err(|e| StoreError::Corrupt(format!("remembered record values: {e}")))?;
    sqlx::query(
        "INSERT INTO pg_temp.analysis_records (type_key, key, vals)
         SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS r(k, v)
         ON CONFLICT (type_key, key) DO NOTHING",
    )
    .bind(type_key)
    .bind(&keys)
    .bind(&vals)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The remembered records of `type_key` among `keys`, with their values.
pub async fn find_records(
    conn: &mut PgConnection,
    type_key: &str,
    keys: &[String],
) -> Result<Vec<(String, Vec<Option<String>>)>, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT key, vals FROM pg_temp.analysis_records WHERE type_key = $1 AND key = ANY($2)",
    )
    .bind(type_key)
    .bind(keys)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(key, vals)| {
            let vals = serde_json::from_str(&vals)
                .map_err(|e| StoreError::Corrupt(format!("remembered record {key}: {e}")))?;
            Ok((key, vals))
        })
        .collect()
}

/// Drops the connection's table of remembered records, if it has one.
pub async fn drop_records(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("DROP TABLE IF EXISTS pg_temp.analysis_records")
        .execute(&mut *conn)
        .await?;
    Ok(())
}
