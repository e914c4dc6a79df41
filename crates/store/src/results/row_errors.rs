//! Reading row errors: a page of an import's errors with their files, the
//! first open ones of a file, and the still-failed rows a retry needs.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::entities::row_errors;
use crate::{StoreError, exec};

/// A row error with its file.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RowErrorRow {
    pub id: i64,
    pub file_id: Uuid,
    pub file_name: String,
    pub position: i32,
    pub row: i64,
    pub column: String,
    pub value: String,
    pub reason: String,
    pub kind: String,
    pub attempt: i32,
    pub open: bool,
}

/// Where a page of row errors starts: after (file position, row, id).
pub type RowErrorCursor = (i32, i64, i64);

/// A page of an import's row errors, by file position, row and id.
pub async fn list_row_errors(
    conn: &mut PgConnection,
    import_id: Uuid,
    file_id: Option<Uuid>,
    include_retried: bool,
    after: Option<RowErrorCursor>,
    limit: i64,
) -> Result<Vec<RowErrorRow>, StoreError> {
    let (p, r, i) = after.unwrap_or((-1, -1, -1));
    Ok(sqlx::query_as(
        "SELECT e.id, e.file_id, f.file_name, f.position, e.row_number AS row, e.column_name AS column, e.value,
                e.reason, e.kind, e.attempt, e.superseded_at IS NULL AS open
           FROM row_errors e JOIN import_files f ON f.id = e.file_id
          WHERE e.import_id = $1 AND ($2::uuid IS NULL OR e.file_id = $2)
            AND ($3 OR e.superseded_at IS NULL)
            AND (f.position, e.row_number, e.id) > ($4, $5, $6)
          ORDER BY f.position, e.row_number, e.id
          LIMIT $7",
    )
    .bind(import_id)
    .bind(file_id)
    .bind(include_retried)
    .bind(p)
    .bind(r)
    .bind(i)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// The first `limit` open row errors of each of `file_ids` (files with none
/// are absent), in row order, in one statement.
pub async fn first_row_errors_of_files(
    conn: &mut PgConnection,
    file_ids: &[Uuid],
    limit: u64,
) -> Result<std::collections::HashMap<Uuid, Vec<row_errors::Model>>, StoreError> {
    let rows: Vec<row_errors::Model> = exec::all_raw(
        conn,
        sqlx::query(
            "SELECT e.* FROM unnest($1::uuid[]) AS f(id)
               CROSS JOIN LATERAL (
                 SELECT * FROM row_errors
                  WHERE file_id = f.id AND superseded_at IS NULL
                  ORDER BY row_number, id LIMIT $2) e
              ORDER BY e.row_number, e.id",
        )
        .bind(file_ids)
        .bind(limit as i64),
    )
    .await?;
    let mut by_file: std::collections::HashMap<Uuid, Vec<row_errors::Model>> =
        std::collections::HashMap::new();
    for e in rows {
        by_file.entry(e.file_id).or_default().push(e);
    }
    Ok(by_file)
}

/// The chunks of a file whose rows hold open (not superseded) errors, in
/// row order: the chunks of the latest attempt that failed rows.
pub async fn chunks_with_open_errors(
    conn: &mut PgConnection,
    file_id: Uuid,
) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT chunk_id FROM row_errors
          WHERE file_id = $1 AND superseded_at IS NULL AND chunk_id IS NOT NULL
          GROUP BY chunk_id ORDER BY min(row_number)",
    )
    .bind(file_id)
    .fetch_all(conn)
    .await?)
}

/// The still-failed rows a chunk found, in row order, each with its reasons
/// in one line.
pub async fn open_failed_rows(
    conn: &mut PgConnection,
    chunk_id: i64,
) -> Result<Vec<(i64, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT row_number,
                string_agg(CASE WHEN column_name = '' THEN reason ELSE column_name || ': ' || reason END,
                           '; ' ORDER BY id)
           FROM row_errors WHERE chunk_id = $1 AND superseded_at IS NULL
          GROUP BY row_number ORDER BY row_number",
    )
    .bind(chunk_id)
    .fetch_all(conn)
    .await?)
}

/// The files of an import with still-failed rows, in position order.
pub async fn files_with_open_errors(
    conn: &mut PgConnection,
    import_id: Uuid,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT f.id FROM import_files f
          WHERE f.import_id = $1
            AND EXISTS (SELECT 1 FROM row_errors e WHERE e.file_id = f.id AND e.superseded_at IS NULL)
          ORDER BY f.position",
    )
    .bind(import_id)
    .fetch_all(conn)
    .await?)
}
