//! Edits of failed rows: cells people set (one by one or from a corrected
//! file) before a retry. The uploaded original is never rewritten.

use std::collections::HashMap;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::states::ImportState;
use crate::{Requester, StoreError, imports, timeline};

/// The database's clock (edits are stamped with it).
pub async fn now(conn: &mut PgConnection) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    Ok(sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(conn)
        .await?)
}

/// Edits of a file's rows: row → (column, value), in the order they were set.
pub async fn edits_of(
    conn: &mut PgConnection,
    file_id: Uuid,
) -> Result<HashMap<i64, Vec<(String, String)>>, StoreError> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT row_number, column_name, value FROM row_edits WHERE file_id = $1
          ORDER BY row_number, edited_at, column_name",
    )
    .bind(file_id)
    .fetch_all(conn)
    .await?;
    let mut out: HashMap<i64, Vec<(String, String)>> = HashMap::new();
    for (row, column, value) in rows {
        out.entry(row).or_default().push((column, value));
    }
    Ok(out)
}

/// What an edit request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edited {
    /// The cells are set; the number of rows.
    Rows(usize),
    /// The import is in another state than completed_with_errors (`None`: gone).
    NotRetryable(Option<ImportState>),
    /// These rows of the file are not failed (or no longer).
    NotFailed(Vec<i64>),
    /// The retention job deleted the import's results.
    Purged,
}

/// Sets cells of failed rows of a file (row, column, value), replacing
/// earlier edits of the same cells, and adds the step to the import's
/// timeline.
pub async fn set_edits(
    conn: &mut PgConnection,
    import_id: Uuid,
    file_id: Uuid,
    edits: &[(i64, String, String)],
    by: &Requester,
    what: &str,
) -> Result<Edited, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    match imports::lock(&mut tx, import_id).await? {
        Some(i) if i.results_purged_at.is_some() => return Ok(Edited::Purged),
        Some(i) if i.state == ImportState::CompletedWithErrors => {}
        other => return Ok(Edited::NotRetryable(other.map(|i| i.state))),
    }
    let mut rows: Vec<i64> = edits.iter().map(|(r, _, _)| *r).collect();
    rows.sort_unstable();
    rows.dedup();
    let failed: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT row_number FROM row_errors
          WHERE file_id = $1 AND superseded_at IS NULL AND row_number = ANY($2)",
    )
    .bind(file_id)
    .bind(&rows)
    .fetch_all(&mut *tx)
    .await?;
    let not_failed: Vec<i64> = rows
        .iter()
        .copied()
        .filter(|r| !failed.contains(r))
        .collect();
    if !not_failed.is_empty() {
        return Ok(Edited::NotFailed(not_failed));
    }
    let row_numbers: Vec<i64> = edits.iter().map(|(r, _, _)| *r).collect();
    let columns: Vec<&str> = edits.iter().map(|(_, c, _)| c.as_str()).collect();
    let values: Vec<&str> = edits.iter().map(|(_, _, v)| v.as_str()).collect();
    // One statement for every cell of the request.
    sqlx::query(
        "INSERT INTO row_edits (file_id, import_id, row_number, column_name, value, edited_by_id)
         SELECT $1, $2, r, c, v, $6 FROM UNNEST($3::bigint[], $4::text[], $5::text[]) AS e(r, c, v)
         ON CONFLICT (file_id, row_number, column_name) DO UPDATE
            SET value = EXCLUDED.value, edited_by_id = EXCLUDED.edited_by_id, edited_at = clock_timestamp()",
    )
    .bind(file_id)
    .bind(import_id)
    .bind(&row_numbers)
    .bind(&columns)
    .bind(&values)
    .bind(&by.id)
    .execute(&mut *tx)
    .await?;
    timeline::record(&mut tx, import_id, "rows_edited", Some(by), what).await?;
    timeline::notify(&mut tx, import_id).await?;
    tx.commit().await?;
    Ok(Edited::Rows(rows.len()))
}
