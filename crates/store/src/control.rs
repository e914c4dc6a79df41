//! Controlling imports that run: ending one (failed or stopped) with the
//! rollback an all-or-nothing import promises, stopping one on request, and
//! the pause switch. Everything that changes what is written happens behind
//! the organization's write fence, between two chunk writes.

use chrono::{DateTime, Utc};
use passare_imports_domain::FailurePolicy;
use passare_imports_domain::catalog::{self, ImportTypeDef};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
// Dynamic SQL below is assembled from the compiled catalog's table and
// column names, never from a request or a file.
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

use crate::entities::import_pauses;
use crate::loader::{notify, take_write_fence, written_columns};
use crate::repo::Requester;
use crate::{Db, EVENTS_CHANNEL, StoreError, history};

/// How an import ends before all its chunks were written.
pub enum How {
    /// A row or a chunk failed; the JSON is the import's `error`.
    Failed(serde_json::Value),
    /// A user stopped it.
    Stopped { by: Requester, reason: String },
}

/// An import to end, with what the ending needs to know.
pub struct Ending {
    pub import_id: Uuid,
    pub organization_id: i64,
    pub policy: FailurePolicy,
    pub how: How,
    /// When the chunk that ends it began, if a chunk does: the import's
    /// start time, unless an earlier chunk set it. A stop leaves it unset:
    /// an import stopped while queued never started.
    pub first_start: Option<DateTime<Utc>>,
}

/// Ends an import: records the final state, skips its chunks still queued,
/// ends its unfinished files, and — for an all-or-nothing import — rolls
/// back every record it wrote. Call behind the organization's write fence,
/// in the transaction that decided the ending.
pub async fn end_import(conn: &mut PgConnection, e: Ending) -> Result<(), StoreError> {
    let (state, file_state) = match &e.how {
        How::Failed(_) => ("failed", "failed"),
        How::Stopped { .. } => ("stopped", "stopped"),
    };
    let (error, by, reason) = match e.how {
        How::Failed(error) => (Some(error), None, None),
        How::Stopped { by, reason } => (None, Some(by), Some(reason)),
    };
    sqlx::query(
        "UPDATE imports SET state = $2, error = COALESCE($3, error),
                stopped_by_id = $4, stopped_by_name = $5, stopped_by_email = $6,
                stopped_at = CASE WHEN $4 IS NULL THEN NULL ELSE clock_timestamp() END,
                stop_reason = $7,
                started_at = COALESCE(started_at, $8),
                finished_at = clock_timestamp(), updated_at = clock_timestamp()
          WHERE id = $1",
    )
    .bind(e.import_id)
    .bind(state)
    .bind(error.clone())
    .bind(by.as_ref().map(|b| b.id.clone()))
    .bind(by.as_ref().map(|b| b.name.clone()))
    .bind(by.as_ref().map(|b| b.email.clone()))
    .bind(reason.clone())
    .bind(e.first_start)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE chunks SET state = 'skipped', finished_at = clock_timestamp()
          WHERE import_id = $1 AND state = 'queued'",
    )
    .bind(e.import_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE import_files SET state = $2, updated_at = clock_timestamp()
          WHERE import_id = $1 AND state IN ('ready', 'invalid', 'queued', 'running')",
    )
    .bind(e.import_id)
    .bind(file_state)
    .execute(&mut *conn)
    .await?;
    match (&by, &error) {
        (Some(by), _) => {
            history::event(
                conn,
                e.import_id,
                "stopped",
                Some(by),
                reason.as_deref().unwrap_or(""),
            )
            .await?
        }
        (None, Some(error)) => {
            let why = error["message"].as_str().unwrap_or_default();
            history::event(conn, e.import_id, "failed", None, why).await?
        }
        (None, None) => {}
    }
    if e.policy == FailurePolicy::StopOnFirstError
        && let Some(undone) = roll_back(conn, e.import_id, e.organization_id).await?
    {
        history::event(
            conn,
            e.import_id,
            "rolled_back",
            None,
            &format!("{undone} records put back"),
        )
        .await?;
    }
    Ok(())
}

/// Puts back what an all-or-nothing import wrote: every record it updated
/// gets its before-image back, then every record still carrying the import
/// as its last writer — those it created — is deleted. The files' counts
/// then say that nothing of the import remains (`rows_rolled_back` holds
/// how many records were put back). Returns that number, or `None` when no
/// chunk of the import was written (there is nothing to put back).
pub async fn roll_back(
    conn: &mut PgConnection,
    import_id: Uuid,
    organization_id: i64,
) -> Result<Option<i64>, StoreError> {
    let wrote_any: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM chunks WHERE import_id = $1 AND state = 'done')",
    )
    .bind(import_id)
    .fetch_one(&mut *conn)
    .await?;
    if !wrote_any {
        forget_undo(conn, import_id).await?;
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
        .execute(&mut *conn)
        .await?;
    forget_undo(conn, import_id).await?;
    Ok(Some(undone))
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
pub async fn forget_undo(conn: &mut PgConnection, import_id: Uuid) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM import_undo WHERE import_id = $1")
        .bind(import_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// What a stop request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The import is now stopped.
    Now,
    /// It was stopped before (stopping is idempotent).
    Already,
    /// It had already ended in this other state.
    Finished(String),
    NotFound,
}

/// Stops an import. Waits for the organization's write fence, so a chunk in
/// hand finishes first and none starts after: a queued import never starts,
/// a running one stops after its current chunk. An all-or-nothing import is
/// rolled back in the same transaction.
pub async fn stop_import(
    db: &Db,
    import_id: Uuid,
    by: &Requester,
    reason: &str,
) -> Result<Stopped, StoreError> {
    let mut tx = db.pool().begin().await?;
    let org: Option<i64> = sqlx::query_scalar("SELECT organization_id FROM imports WHERE id = $1")
        .bind(import_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(org) = org else {
        return Ok(Stopped::NotFound);
    };
    take_write_fence(&mut tx, org).await?;
    let row = sqlx::query("SELECT state, failure_policy FROM imports WHERE id = $1 FOR UPDATE")
        .bind(import_id)
        .fetch_one(&mut *tx)
        .await?;
    let state: String = row.try_get("state")?;
    let policy_name: String = row.try_get("failure_policy")?;
    match state.as_str() {
        "stopped" => return Ok(Stopped::Already),
        "completed" | "completed_with_errors" | "failed" => return Ok(Stopped::Finished(state)),
        _ => {}
    }
    let policy = FailurePolicy::parse(&policy_name).ok_or_else(|| {
        StoreError::Corrupt(format!("import {import_id} has policy {policy_name}"))
    })?;
    end_import(
        &mut tx,
        Ending {
            import_id,
            organization_id: org,
            policy,
            how: How::Stopped {
                by: by.clone(),
                reason: reason.to_string(),
            },
            first_start: None,
        },
    )
    .await?;
    notify(&mut tx, import_id).await?;
    tx.commit().await?;
    Ok(Stopped::Now)
}

/// Pauses one organization, or every organization (`None`), with a reason.
/// Pausing a paused scope replaces its reason and author. Watchers of every
/// import re-read, so queued and running imports show the pause at once.
pub async fn pause(
    db: &Db,
    organization_id: Option<i64>,
    reason: &str,
    by: &Requester,
) -> Result<import_pauses::Model, StoreError> {
    let mut tx = db.pool().begin().await?;
    let row = sqlx::query(
        "INSERT INTO import_pauses (organization_id, reason, paused_by_id, paused_by_name, paused_by_email)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (COALESCE(organization_id, 0)) DO UPDATE
            SET reason = EXCLUDED.reason, paused_by_id = EXCLUDED.paused_by_id,
                paused_by_name = EXCLUDED.paused_by_name, paused_by_email = EXCLUDED.paused_by_email,
                paused_at = now()
         RETURNING id, organization_id, reason, paused_by_id, paused_by_name, paused_by_email, paused_at",
    )
    .bind(organization_id)
    .bind(reason)
    .bind(&by.id)
    .bind(&by.name)
    .bind(&by.email)
    .fetch_one(&mut *tx)
    .await?;
    let model = pause_model(&row)?;
    history::event_in_scope(&mut tx, organization_id, "paused", by, reason).await?;
    notify_everyone(&mut tx).await?;
    tx.commit().await?;
    Ok(model)
}

/// Lifts the pause of one organization, or the pause of every organization
/// (`None`); the other scopes stay as they are. Returns the pause lifted, if
/// there was one, and the organizations that now have chunks to load (to
/// announce to the workers).
pub async fn resume(
    db: &Db,
    organization_id: Option<i64>,
    by: &Requester,
) -> Result<(Option<import_pauses::Model>, Vec<i64>), StoreError> {
    let mut tx = db.pool().begin().await?;
    let row = sqlx::query(
        "DELETE FROM import_pauses WHERE COALESCE(organization_id, 0) = COALESCE($1, 0)
         RETURNING id, organization_id, reason, paused_by_id, paused_by_name, paused_by_email, paused_at",
    )
    .bind(organization_id)
    .fetch_optional(&mut *tx)
    .await?;
    let lifted = row.as_ref().map(pause_model).transpose()?;
    let waking: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT c.organization_id FROM chunks c
          WHERE c.state = 'queued' AND ($1::bigint IS NULL OR c.organization_id = $1)
            AND NOT EXISTS (SELECT 1 FROM import_pauses p
                             WHERE p.organization_id IS NULL OR p.organization_id = c.organization_id)",
    )
    .bind(organization_id)
    .fetch_all(&mut *tx)
    .await?;
    if let Some(p) = &lifted {
        history::event_in_scope(&mut tx, organization_id, "resumed", by, &p.reason).await?;
    }
    notify_everyone(&mut tx).await?;
    tx.commit().await?;
    Ok((lifted, waking))
}

fn pause_model(row: &sqlx::postgres::PgRow) -> Result<import_pauses::Model, StoreError> {
    Ok(import_pauses::Model {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        reason: row.try_get("reason")?,
        paused_by_id: row.try_get("paused_by_id")?,
        paused_by_name: row.try_get("paused_by_name")?,
        paused_by_email: row.try_get("paused_by_email")?,
        paused_at: row.try_get("paused_at")?,
    })
}

/// Every pause in force: the global one first, then by organization.
pub async fn pauses(db: &Db) -> Result<Vec<import_pauses::Model>, StoreError> {
    Ok(import_pauses::Entity::find()
        .order_by_asc(import_pauses::Column::OrganizationId)
        .all(db.orm())
        .await?
        .into_iter()
        // NULL (every organization) sorts last in ascending order; show it first.
        .fold(Vec::new(), |mut out, p| {
            if p.organization_id.is_none() {
                out.insert(0, p);
            } else {
                out.push(p);
            }
            out
        }))
}

/// The pause that holds an organization's imports, if any: the pause of
/// every organization first, else the organization's own.
pub async fn pause_of(
    db: &Db,
    organization_id: i64,
) -> Result<Option<import_pauses::Model>, StoreError> {
    let mut found = import_pauses::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(import_pauses::Column::OrganizationId.is_null())
                .add(import_pauses::Column::OrganizationId.eq(organization_id)),
        )
        .all(db.orm())
        .await?;
    found.sort_by_key(|p| p.organization_id.is_some());
    Ok(found.into_iter().next())
}

/// Tells every watcher on every replica to re-read (a pause changes many
/// imports at once).
async fn notify_everyone(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '*')")
        .bind(EVENTS_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}
