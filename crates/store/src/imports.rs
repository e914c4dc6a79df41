//! Import records: creating a draft (idempotent per requester and request
//! id), finding and locking one, listing them for the history, their place in
//! their organization's queue, queueing a draft with its chunk rows, and the
//! analysis stored with a draft.

use chrono::Utc;
use passare_imports_domain::ChunkRange;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::entities::{chunks, import_files, imports};
use crate::states::{ChunkState, FailurePolicy, FileState, ImportState};
use crate::{Requester, StoreError, Timestamp, exec, timeline};

/// What `create` needs.
#[derive(Debug, Clone)]
pub struct NewImport {
    pub organization_id: i64,
    pub failure_policy: FailurePolicy,
    pub note: String,
    pub request_id: Option<Uuid>,
    pub requested_by: Requester,
}

/// Creates a draft import; with a `request_id` the same requester used
/// before, returns that import instead (`false` in the second field) —
/// whatever its parameters: the caller compares them.
pub async fn create(
    conn: &mut PgConnection,
    new: NewImport,
) -> Result<(imports::Model, bool), StoreError> {
    if let Some(existing) = by_request(conn, &new).await? {
        return Ok((existing, false));
    }
    let at = Utc::now().fixed_offset();
    let mut insert = imports::Entity::insert(imports::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(new.organization_id),
        state: Set(ImportState::Draft),
        failure_policy: Set(new.failure_policy),
        note: Set(new.note.clone()),
        request_id: Set(new.request_id),
        requested_by_id: Set(new.requested_by.id.clone()),
        requested_by_name: Set(new.requested_by.name.clone()),
        requested_by_email: Set(new.requested_by.email.clone()),
        created_at: Set(at),
        updated_at: Set(at),
        attempt: Set(1),
        ..Default::default()
    })
    .on_conflict(OnConflict::new().do_nothing().to_owned());
    sea_orm::QueryTrait::query(&mut insert).returning_all();
    let inserted: Vec<imports::Model> = exec::returning(conn, insert).await?;
    match inserted.into_iter().next() {
        Some(m) => {
            timeline::record(conn, m.id, "created", Some(&new.requested_by), "").await?;
            Ok((m, true))
        }
        // A concurrent call with the same request_id won the race.
        None => by_request(conn, &new)
            .await?
            .map(|m| (m, false))
            .ok_or_else(|| StoreError::Corrupt("import insert conflicted with nothing".into())),
    }
}

async fn by_request(
    conn: &mut PgConnection,
    new: &NewImport,
) -> Result<Option<imports::Model>, StoreError> {
    let Some(request_id) = new.request_id else {
        return Ok(None);
    };
    exec::one(
        conn,
        imports::Entity::find()
            .filter(imports::Column::RequestedById.eq(new.requested_by.id.clone()))
            .filter(imports::Column::RequestId.eq(request_id)),
    )
    .await
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<imports::Model>, StoreError> {
    exec::one(conn, imports::Entity::find_by_id(id)).await
}

/// The import, locked for the rest of the transaction.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<imports::Model>, StoreError> {
    exec::one(conn, imports::Entity::find_by_id(id).lock_exclusive()).await
}

/// Changes a draft import's failure policy.
pub async fn set_failure_policy(
    conn: &mut PgConnection,
    import_id: Uuid,
    policy: FailurePolicy,
) -> Result<(), StoreError> {
    exec::run(
        conn,
        imports::Entity::update_many()
            .col_expr(imports::Column::FailurePolicy, Expr::value(policy))
            .col_expr(imports::Column::UpdatedAt, Expr::cust("now()"))
            .filter(imports::Column::Id.eq(import_id))
            .filter(imports::Column::State.eq(ImportState::Draft)),
    )
    .await?;
    Ok(())
}

/// Records the trace context of the call that started the import.
pub async fn set_trace_context(
    conn: &mut PgConnection,
    id: Uuid,
    traceparent: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE imports SET trace_context = $2 WHERE id = $1")
        .bind(id)
        .bind(traceparent)
        .execute(conn)
        .await?;
    Ok(())
}

/// The trace context of the call that started the import, if recorded.
pub async fn trace_context(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT trace_context FROM imports WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?
            .flatten(),
    )
}

/// Marks an import changed now (a file was added or removed).
pub async fn touch(conn: &mut PgConnection, import_id: Uuid) -> Result<(), StoreError> {
    exec::run(
        conn,
        imports::Entity::update_many()
            .col_expr(imports::Column::UpdatedAt, Expr::cust("now()"))
            .filter(imports::Column::Id.eq(import_id)),
    )
    .await?;
    Ok(())
}

/// Which imports a history query wants.
#[derive(Debug, Clone, Default)]
pub struct ImportFilter {
    pub organization_id: Option<i64>,
    /// Imports with a file of this type.
    pub import_type: Option<String>,
    /// Stored states to match.
    pub states: Vec<ImportState>,
    /// Only imports a pause holds (`Some(true)`) or none holds (`Some(false)`);
    /// with `states`, this tells PAUSED from QUEUED and RUNNING.
    pub paused: Option<bool>,
    /// A user id or e-mail (any case).
    pub requested_by: Option<String>,
    pub created_from: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
}

/// A page of imports, newest first, strictly after `cursor` (create time, id).
pub async fn list(
    conn: &mut PgConnection,
    filter: &ImportFilter,
    cursor: Option<(Timestamp, Uuid)>,
    limit: u64,
) -> Result<Vec<imports::Model>, StoreError> {
    use imports::Column as C;
    let mut cond = Condition::all();
    if let Some(org) = filter.organization_id {
        cond = cond.add(C::OrganizationId.eq(org));
    }
    if let Some(t) = &filter.import_type {
        cond = cond.add(Expr::cust_with_values(
            "EXISTS (SELECT 1 FROM import_files f WHERE f.import_id = imports.id AND f.import_type = $1)",
            [t.clone()],
        ));
    }
    if !filter.states.is_empty() {
        cond = cond.add(C::State.is_in(filter.states.iter().copied()));
    }
    if let Some(paused) = filter.paused {
        let held = "EXISTS (SELECT 1 FROM import_pauses p
                     WHERE p.organization_id IS NULL OR p.organization_id = imports.organization_id)";
        cond = cond.add(Expr::cust(if paused {
            held.to_string()
        } else {
            format!("NOT {held}")
        }));
    }
    if let Some(who) = &filter.requested_by {
        cond = cond.add(Condition::any().add(C::RequestedById.eq(who.clone())).add(
            Expr::cust_with_values(
                "lower(imports.requested_by_email) = lower($1)",
                [who.clone()],
            ),
        ));
    }
    if let Some(from) = filter.created_from {
        cond = cond.add(C::CreatedAt.gte(from));
    }
    if let Some(before) = filter.created_before {
        cond = cond.add(C::CreatedAt.lt(before));
    }
    if let Some((at, id)) = cursor {
        cond = cond.add(
            Condition::any()
                .add(C::CreatedAt.lt(at))
                .add(Condition::all().add(C::CreatedAt.eq(at)).add(C::Id.lt(id))),
        );
    }
    exec::all(
        conn,
        imports::Entity::find()
            .filter(cond)
            .order_by_desc(C::CreatedAt)
            .order_by_desc(C::Id)
            .limit(limit),
    )
    .await
}

/// How many imports are ahead of each of `imports` in its organization's
/// queue (queued or running with a lower place), for those that have a
/// place (the others are absent), in one statement.
pub async fn queue_positions(
    conn: &mut PgConnection,
    imports: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, u64>, StoreError> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT i.id, (SELECT count(*) FROM imports o
                        WHERE o.organization_id = i.organization_id
                          AND o.state IN ('queued', 'running')
                          AND o.queue_seq < i.queue_seq)
           FROM imports i WHERE i.id = ANY($1) AND i.queue_seq IS NOT NULL",
    )
    .bind(imports)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, n)| (id, n.max(0) as u64))
        .collect())
}

/// Moves a draft import to `queued`: numbers it in its organization's queue
/// and creates its chunk rows from the files' chunk plans. Returns the chunks
/// in load order, or `None` when the import is no longer a draft. Call inside
/// the transaction that holds the organization's queue lock
/// (`locks::queue`).
pub async fn queue(
    conn: &mut PgConnection,
    import: &imports::Model,
    files: &[import_files::Model],
    by: &Requester,
) -> Result<Option<Vec<chunks::Model>>, StoreError> {
    let queued = exec::run(
        conn,
        imports::Entity::update_many()
            .col_expr(imports::Column::State, Expr::value(ImportState::Queued))
            .col_expr(
                imports::Column::QueueSeq,
                Expr::cust("nextval('import_queue_seq')"),
            )
            .col_expr(imports::Column::QueuedAt, Expr::cust("now()"))
            .col_expr(imports::Column::UpdatedAt, Expr::cust("now()"))
            .filter(imports::Column::Id.eq(import.id))
            .filter(imports::Column::State.eq(ImportState::Draft)),
    )
    .await?;
    if queued != 1 {
        return Ok(None);
    }
    let mut created = Vec::new();
    for file in files {
        let plan: Vec<ChunkRange> = serde_json::from_value(file.chunk_plan.clone())
            .map_err(|e| StoreError::Corrupt(format!("chunk plan of file {}: {e}", file.id)))?;
        exec::run(
            conn,
            import_files::Entity::update_many()
                .col_expr(import_files::Column::State, Expr::value(FileState::Queued))
                .col_expr(
                    import_files::Column::ChunksTotal,
                    Expr::value(plan.len() as i32),
                )
                .col_expr(import_files::Column::UpdatedAt, Expr::cust("now()"))
                .filter(import_files::Column::Id.eq(file.id)),
        )
        .await?;
        let rows: Vec<chunks::ActiveModel> = plan
            .iter()
            .map(|c| chunks::ActiveModel {
                import_id: Set(import.id),
                file_id: Set(file.id),
                organization_id: Set(import.organization_id),
                seq: Set(c.seq as i32),
                first_row: Set(c.first_row as i64),
                row_count: Set(c.rows as i64),
                byte_start: Set(c.start as i64),
                byte_end: Set(c.end as i64),
                state: Set(ChunkState::Queued),
                ..Default::default()
            })
            .collect();
        for batch in rows.chunks(1000) {
            created.extend(exec::insert_many(conn, batch.to_vec()).await?);
        }
    }
    let detail = format!("{} chunks, policy {}", created.len(), import.failure_policy);
    timeline::record(conn, import.id, "queued", Some(by), &detail).await?;
    timeline::notify(conn, import.id).await?;
    Ok(Some(created))
}

/// Stores an import's analysis report and the fingerprint of its files.
pub async fn store_analysis(
    conn: &mut PgConnection,
    import_id: Uuid,
    report: serde_json::Value,
    fingerprint: &str,
    by: &Requester,
    summary: &str,
) -> Result<(), StoreError> {
    exec::run(
        conn,
        imports::Entity::update_many()
            .col_expr(imports::Column::Analysis, Expr::value(report))
            .col_expr(
                imports::Column::AnalysisFingerprint,
                Expr::value(fingerprint.to_string()),
            )
            .col_expr(imports::Column::AnalyzedAt, Expr::cust("now()"))
            .col_expr(imports::Column::UpdatedAt, Expr::cust("now()"))
            .filter(imports::Column::Id.eq(import_id)),
    )
    .await?;
    timeline::record(conn, import_id, "analyzed", Some(by), summary).await?;
    timeline::notify(conn, import_id).await
}
