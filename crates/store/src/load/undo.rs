//! Undoing what an all-or-nothing import wrote: every record it updated gets
//! its before-image back (kept in `import_undo` by the update that changed
//! it), and every record still carrying the import as its last writer —
//! those it created — is deleted.

use passare_imports_domain::catalog::{self, ImportTypeDef};
// Dynamic SQL below is assembled from the compiled catalog's table and
// column names, never from a request or a file.
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use super::written_columns;
use crate::StoreError;
use crate::states::ChunkState;

/// Puts back what an all-or-nothing import wrote. The files' counts then say
/// that nothing of the import remains (`rows_rolled_back` holds how many
/// records were put back). Returns that number, or `None` when no chunk of
/// the import was written (there is nothing to put back).
pub(super) async fn roll_back(
    conn: &mut PgConnection,
    import_id: Uuid,
    organization_id: i64,
) -> Result<Option<i64>, StoreError> {
    let wrote_any: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM chunks WHERE import_id = $1 AND state = $2)",
    )
    .bind(import_id)
    .bind(ChunkState::Done)
    .fetch_one(&mut *conn)
    .await?;
    if !wrote_any {
        forget(conn, import_id).await?;
        return Ok(None);
    }
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT import_type FROM import_files WHERE import_id = $1 AND chunks_done > 0",
    )
    .bind(import_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut undone = 0;
    for key in types {
        let def = catalog::find(&key).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "import {import_id} has a file of unknown type {key}"
            ))
        })?;
        undone += restore(conn, def, import_id).await?;
        undone += sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {} WHERE organization_id = $1 AND source_import_id = $2",
            def.target_table
        )))
        .bind(organization_id)
        .bind(import_id)
        .execute(&mut *conn)
        .await?
        .rows_affected() as i64;
    }
    record_rollback(conn, import_id, undone).await?;
    forget(conn, import_id).await?;
    Ok(Some(undone))
}

/// The files' counts and the import say the import's records were put back.
async fn record_rollback(
    conn: &mut PgConnection,
    import_id: Uuid,
    undone: i64,
) -> Result<(), StoreError> {
    let wrote: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(rows_created + rows_updated), 0)::bigint FROM import_files WHERE import_id = $1",
    )
    .bind(import_id)
    .fetch_one(&mut *conn)
    .await?;
    if wrote != undone {
        // Every record the import wrote was put back (restore and delete go
        // by what is stored, not by the counts); the counts disagreeing
        // means they were wrong, which developers should hear about.
        tracing::warn!(
            import_id = %import_id, wrote, undone,
            "rollback put back another number of records than the import counted"
        );
    }
    sqlx::query(
        "UPDATE import_files SET rows_rolled_back = rows_created + rows_updated,
                rows_created = 0, rows_updated = 0, rows_unchanged = 0, updated_at = clock_timestamp()
          WHERE import_id = $1",
    )
    .bind(import_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE imports SET rolled_back_at = clock_timestamp() WHERE id = $1")
        .bind(import_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Writes the before-images of one type's records back over the records.
async fn restore(
    conn: &mut PgConnection,
    def: &ImportTypeDef,
    import_id: Uuid,
) -> Result<i64, StoreError> {
    let keys = def.key_columns;
    let restored: Vec<&str> = written_columns(def)
        .into_iter()
        .filter(|c| !keys.contains(c))
        .chain([
            "source_row",
            "source_import_id",
            "source_file_id",
            "updated_at",
        ])
        .collect();
    let matched = keys
        .iter()
        .map(|k| format!("t.{k} = r.{k}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!(
        "UPDATE {table} t SET ({cols}) = ({values})
           FROM (SELECT (jsonb_populate_record(NULL::{table}, u.before)).*
                   FROM import_undo u WHERE u.import_id = $1 AND u.target_table = $2) r
          WHERE t.organization_id = r.organization_id AND {matched}",
        table = def.target_table,
        cols = restored.join(", "),
        values = restored
            .iter()
            .map(|c| format!("r.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    Ok(sqlx::query(AssertSqlSafe(sql))
        .bind(import_id)
        .bind(def.target_table)
        .execute(conn)
        .await?
        .rows_affected() as i64)
}

/// Drops the before-images of an import that no longer needs them.
pub(super) async fn forget(conn: &mut PgConnection, import_id: Uuid) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM import_undo WHERE import_id = $1")
        .bind(import_id)
        .execute(conn)
        .await?;
    Ok(())
}
