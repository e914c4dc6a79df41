//! The retention job's purge: an old import keeps its summary, timeline and
//! audit trail, and loses its uploaded files and row-level results.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use crate::entities::{import_files, imports};
use crate::states::{FileState, ImportState};
use crate::{Db, StoreError, exec, timeline};

/// Imports finished before `cutoff` (and drafts created before it) whose
/// uploaded files and row-level results are still stored, oldest first.
pub async fn due_for_purge(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM imports
          WHERE results_purged_at IS NULL
            AND (finished_at < $1 OR (state = $3 AND created_at < $1))
          ORDER BY COALESCE(finished_at, created_at)
          LIMIT $2",
    )
    .bind(cutoff)
    .bind(limit)
    .bind(ImportState::Draft)
    .fetch_all(conn)
    .await?)
}

/// An import being purged: its row is locked (no start, upload, edit or
/// retry can slip in), it was checked to be still due, and its row-level
/// results are deleted in the open transaction. Delete `keys` from storage,
/// then [`Purge::finish`]; dropping it instead rolls everything back.
pub struct Purge {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    pub import_id: Uuid,
    pub keys: Vec<String>,
    was_draft: bool,
}

/// Starts purging an import if it is still due: finished before `cutoff`,
/// or a draft created before it, and not purged yet.
pub async fn begin_purge(
    db: &Db,
    import_id: Uuid,
    cutoff: DateTime<Utc>,
) -> Result<Option<Purge>, StoreError> {
    let mut tx = db.begin().await?;
    let Some(import) = crate::imports::lock(&mut tx, import_id).await? else {
        return Ok(None);
    };
    let ended_before = import.finished_at.is_some_and(|t| t < cutoff);
    let draft_before = import.state == ImportState::Draft && import.created_at < cutoff;
    if import.results_purged_at.is_some() || !(ended_before || draft_before) {
        return Ok(None);
    }
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT k FROM (
             SELECT storage_key AS k FROM import_files WHERE import_id = $1
             UNION SELECT data_key FROM import_files WHERE import_id = $1 AND data_key IS NOT NULL
             UNION SELECT data_key FROM chunks WHERE import_id = $1 AND data_key IS NOT NULL) keys
          ORDER BY k",
    )
    .bind(import_id)
    .fetch_all(&mut *tx)
    .await?;
    crate::load::forget_before_images(&mut tx, import_id).await?;
    for table in ["row_errors", "row_edits", "chunk_failures"] {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE import_id = $1"
        )))
        .bind(import_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(Some(Purge {
        tx,
        import_id,
        keys,
        was_draft: import.state == ImportState::Draft,
    }))
}

impl Purge {
    /// Records the purge once the files are deleted: the import keeps its
    /// summary and says when its results went; a draft is ended `stopped`
    /// (its files are gone).
    pub async fn finish(mut self, retention_days: u64) -> Result<(), StoreError> {
        let reason = format!("abandoned draft: its files were deleted after {retention_days} days");
        let mut update = imports::Entity::update_many()
            .col_expr(
                imports::Column::ResultsPurgedAt,
                Expr::cust("clock_timestamp()"),
            )
            .col_expr(imports::Column::UpdatedAt, Expr::cust("clock_timestamp()"))
            .col_expr(
                imports::Column::FinishedAt,
                Expr::cust("COALESCE(finished_at, clock_timestamp())"),
            );
        if self.was_draft {
            update = update
                .col_expr(imports::Column::State, Expr::value(ImportState::Stopped))
                .col_expr(imports::Column::StopReason, Expr::value(reason.clone()))
                .col_expr(imports::Column::StoppedAt, Expr::cust("clock_timestamp()"));
        }
        exec::run(
            &mut self.tx,
            update.filter(imports::Column::Id.eq(self.import_id)),
        )
        .await?;
        if self.was_draft {
            exec::run(
                &mut self.tx,
                import_files::Entity::update_many()
                    .col_expr(import_files::Column::State, Expr::value(FileState::Stopped))
                    .col_expr(
                        import_files::Column::UpdatedAt,
                        Expr::cust("clock_timestamp()"),
                    )
                    .filter(import_files::Column::ImportId.eq(self.import_id))
                    .filter(
                        import_files::Column::State.is_in([FileState::Ready, FileState::Invalid]),
                    ),
            )
            .await?;
            timeline::record(&mut self.tx, self.import_id, "stopped", None, &reason).await?;
        }
        let detail =
            format!("uploaded files and row-level results deleted after {retention_days} days");
        timeline::record(
            &mut self.tx,
            self.import_id,
            "results_purged",
            None,
            &detail,
        )
        .await?;
        timeline::notify(&mut self.tx, self.import_id).await?;
        self.tx.commit().await?;
        Ok(())
    }
}
