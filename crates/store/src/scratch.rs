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

/// Adds keys of `type_key` seen for the first time, in one statement, in
/// the index's order (a chunk's hashes are random: inserted as they come,
/// each would land on another page of a table of millions).
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
         SELECT $1, h, f, r FROM unnest($2::bigint[], $3::int[], $4::bigint[]) AS k(h, f, r)
          ORDER BY h",
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

/// The tables of values an analysis remembers by key beyond its budget
/// (the first values remembered for a key stay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remembered {
    /// Records of earlier files that later files refer to: their key and
    /// the values of the columns other types read.
    Records,
    /// Groups with a flagged row (one next of kin per case): the group and
    /// where its flag was first seen.
    FlaggedGroups,
}

impl Remembered {
    fn table(self) -> &'static str {
        match self {
            Remembered::Records => "pg_temp.analysis_records",
            Remembered::FlaggedGroups => "pg_temp.analysis_flagged",
        }
    }
}

/// Creates the connection's (empty) table of `what`, replacing one an
/// earlier analysis on the same connection left behind.
pub async fn create_remembered(
    conn: &mut PgConnection,
    what: Remembered,
) -> Result<(), StoreError> {
    drop_remembered(conn, what).await?;
    let name = what.table().trim_start_matches("pg_temp.");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TEMP TABLE {name} (
            type_key text NOT NULL,
            key      text NOT NULL,
            vals     text NOT NULL,
            PRIMARY KEY (type_key, key))"
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Remembers values of `type_key` by key, keeping the values first
/// remembered for a key, in one statement, in the index's order.
pub async fn insert_remembered<V: serde::Serialize>(
    conn: &mut PgConnection,
    what: Remembered,
    type_key: &str,
    rows: &[(String, V)],
) -> Result<(), StoreError> {
    let keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    let vals = rows
        .iter()
        .map(|(_, v)| serde_json::to_string(v))
        .collect::<Result<Vec<String>, _>>()
        .map_err(|e| StoreError::Corrupt(format!("remembered values: {e}")))?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {} (type_key, key, vals)
         SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS r(k, v) ORDER BY k
         ON CONFLICT (type_key, key) DO NOTHING",
        what.table()
    )))
    .bind(type_key)
    .bind(&keys)
    .bind(&vals)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The remembered values of `type_key` among `keys`.
pub async fn find_remembered<V: serde::de::DeserializeOwned>(
    conn: &mut PgConnection,
    what: Remembered,
    type_key: &str,
    keys: &[String],
) -> Result<Vec<(String, V)>, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT key, vals FROM {} WHERE type_key = $1 AND key = ANY($2)",
        what.table()
    )))
    .bind(type_key)
    .bind(keys)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(key, vals)| {
            let vals = serde_json::from_str(&vals)
                .map_err(|e| StoreError::Corrupt(format!("remembered values of {key}: {e}")))?;
            Ok((key, vals))
        })
        .collect()
}

/// Drops the connection's table of `what`, if it has one.
pub async fn drop_remembered(conn: &mut PgConnection, what: Remembered) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS {}",
        what.table()
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A row that adds to a referenced record's running total (a payment of a
/// contract), kept beyond the analysis's memory budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummedRow {
    pub reference: String,
    pub cents: i128,
    pub file_index: usize,
    pub row: u64,
    /// The row's own key, so stored rows it replaces are not counted twice.
    pub key: String,
}

/// A referenced record's total over the summed rows in the scratch table:
/// the sum of their amounts and the last row (by file, then row) that added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSum {
    pub reference: String,
    pub cents: i128,
    pub file_index: usize,
    pub row: u64,
}

/// Creates the connection's (empty) table of summed rows, replacing one an
/// earlier analysis on the same connection left behind.
pub async fn create_sums(conn: &mut PgConnection) -> Result<(), StoreError> {
    drop_sums(conn).await?;
    sqlx::query(
        "CREATE TEMP TABLE analysis_sums (
            type_key   text    NOT NULL,
            reference  text    NOT NULL,
            cents      numeric NOT NULL,
            file_index int     NOT NULL,
            row_number bigint  NOT NULL,
            key        text    NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("CREATE INDEX ON pg_temp.analysis_sums (type_key, reference)")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Adds summed rows of `type_key`, in one statement.
pub async fn insert_sums(
    conn: &mut PgConnection,
    type_key: &str,
    rows: &[SummedRow],
) -> Result<(), StoreError> {
    let refs: Vec<&str> = rows.iter().map(|r| r.reference.as_str()).collect();
    let cents: Vec<String> = rows.iter().map(|r| r.cents.to_string()).collect();
    let files: Vec<i32> = rows
        .iter()
        .map(|r| i32::try_from(r.file_index).unwrap_or(i32::MAX))
        .collect();
    let numbers: Vec<i64> = rows
        .iter()
        .map(|r| i64::try_from(r.row).unwrap_or(i64::MAX))
        .collect();
    let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    sqlx::query(
        "INSERT INTO pg_temp.analysis_sums (type_key, reference, cents, file_index, row_number, key)
         SELECT $1, r, c::numeric, f, n, k
           FROM unnest($2::text[], $3::text[], $4::int[], $5::bigint[], $6::text[]) AS s(r, c, f, n, k)",
    )
    .bind(type_key)
    .bind(&refs)
    .bind(&cents)
    .bind(&files)
    .bind(&numbers)
    .bind(&keys)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Up to `limit` references of `type_key` in the table after `after`, in
/// order: a page of the records the summed rows add to.
pub async fn sum_references_after(
    conn: &mut PgConnection,
    type_key: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT reference FROM pg_temp.analysis_sums
          WHERE type_key = $1 AND reference > $2 ORDER BY reference LIMIT $3",
    )
    .bind(type_key)
    .bind(after)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await?)
}

/// The totals of the summed rows of `type_key` for `references`, and the
/// (reference, key) of each of those rows.
pub async fn sums_of(
    conn: &mut PgConnection,
    type_key: &str,
    references: &[String],
) -> Result<(Vec<RecordSum>, Vec<(String, String)>), StoreError> {
    let totals: Vec<(String, String, i32, i64)> = sqlx::query_as(
        "SELECT DISTINCT ON (reference) reference,
                (sum(cents) OVER (PARTITION BY reference))::text, file_index, row_number
           FROM pg_temp.analysis_sums WHERE type_key = $1 AND reference = ANY($2)
          ORDER BY reference, file_index DESC, row_number DESC",
    )
    .bind(type_key)
    .bind(references)
    .fetch_all(&mut *conn)
    .await?;
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT reference, key FROM pg_temp.analysis_sums
          WHERE type_key = $1 AND reference = ANY($2)",
    )
    .bind(type_key)
    .bind(references)
    .fetch_all(&mut *conn)
    .await?;
    let totals = totals
        .into_iter()
        .map(|(reference, cents, file_index, row)| {
            let cents = cents
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("sum of {reference}: {e}")))?;
            Ok(RecordSum {
                reference,
                cents,
                file_index: usize::try_from(file_index).unwrap_or_default(),
                row: u64::try_from(row).unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((totals, keys))
}

/// Drops the connection's table of summed rows, if it has one.
pub async fn drop_sums(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("DROP TABLE IF EXISTS pg_temp.analysis_sums")
        .execute(&mut *conn)
        .await?;
    Ok(())
}
