//! Reading the records imports wrote into the twelve target tables: where a
//! record came from, and the records a file is the last writer of. These
//! tables are shaped by the catalog, so their SQL is built from it (table and
//! column names from the compiled catalog, values bound).

use futures::stream::BoxStream;
use passare_imports_domain::catalog::ImportTypeDef;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

use crate::{Db, StoreError, Timestamp, load};

/// The import, file and row that last wrote a record, and when.
#[derive(Debug, Clone)]
pub struct RecordSource {
    pub import_id: Uuid,
    pub file_id: Uuid,
    pub row: i64,
    pub updated_at: Timestamp,
}

/// Where a record of `def` with this key came from; `None` when the
/// organization has no such record (or it was not written by an import).
pub async fn source(
    conn: &mut PgConnection,
    def: &ImportTypeDef,
    organization_id: i64,
    key: &[String],
) -> Result<Option<RecordSource>, StoreError> {
    let matched: Vec<String> = def
        .key_columns
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} = ${}::{}", i + 2, load::sql_type(def, k)))
        .collect();
    let sql = format!(
        "SELECT source_import_id, source_file_id, source_row, updated_at FROM {} WHERE organization_id = $1 AND {}",
        def.target_table,
        matched.join(" AND ")
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(organization_id);
    for k in key {
        query = query.bind(k);
    }
    let Some(r) = query.fetch_optional(conn).await? else {
        return Ok(None);
    };
    let (Some(import_id), Some(file_id)) = (
        r.try_get::<Option<Uuid>, _>("source_import_id")?,
        r.try_get::<Option<Uuid>, _>("source_file_id")?,
    ) else {
        return Ok(None);
    };
    Ok(Some(RecordSource {
        import_id,
        file_id,
        row: r
            .try_get::<Option<i64>, _>("source_row")?
            .unwrap_or_default(),
        updated_at: r.try_get("updated_at")?,
    }))
}

/// Rows of a WRITTEN_ROWS download read per statement.
const WRITTEN_ROWS_PAGE: u64 = 1_000;

fn written_row(row: &sqlx::postgres::PgRow) -> Result<WrittenRow, StoreError> {
    Ok(WrittenRow {
        row: row
            .try_get::<Option<i64>, _>("source_row")?
            .unwrap_or_default(),
        created: row.try_get("created")?,
        key: row.try_get("key")?,
        values: row.try_get("vals")?,
    })
}

/// One row a file wrote, as the record stands.
#[derive(Debug, Clone)]
pub struct WrittenRow {
    pub row: i64,
    /// Created by this file (else updated).
    pub created: bool,
    /// The record's key, as text.
    pub key: Vec<String>,
    /// The written columns, as text (`None` for NULL).
    pub values: Vec<Option<String>>,
}

/// The records a file is the last writer of, in row order, as a stream (a
/// file may have written millions).
pub fn written_rows(
    db: &Db,
    def: &'static ImportTypeDef,
    organization_id: i64,
    file_id: Uuid,
) -> BoxStream<'static, Result<WrittenRow, StoreError>> {
    let columns = load::written_columns(def);
    let text = |names: &[&str]| {
        names
            .iter()
            .map(|c| format!("{c}::text"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!(
        "SELECT source_row, created_at = updated_at AS created, ARRAY[{keys}] AS key, ARRAY[{values}] AS vals
           FROM {table} WHERE organization_id = $1 AND source_file_id = $2 AND source_row > $3
          ORDER BY source_row LIMIT {WRITTEN_ROWS_PAGE}",
        keys = text(def.key_columns),
        values = text(&columns),
        table = def.target_table,
    );
    let pool = db.reads().clone();
    // Pages of rows are read in a task of their own, each on a connection
    // taken and given back before its rows are handed over a bounded
    // channel: memory stays flat whatever the file wrote, and a client that
    // stops reading holds no connection of the pool.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<WrittenRow, StoreError>>(256);
    tokio::spawn(async move {
        let mut after = i64::MIN;
        loop {
            let page = sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(organization_id)
                .bind(file_id)
                .bind(after)
                .fetch_all(&pool)
                .await;
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            let full = page.len() as u64 == WRITTEN_ROWS_PAGE;
            for row in page {
                let item = written_row(&row);
                if let Ok(r) = &item {
                    after = r.row;
                }
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
            if !full {
                return;
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}
