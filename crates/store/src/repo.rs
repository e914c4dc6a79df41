//! Queries on imports, files, chunks and the organization setup. Functions take
//! `&impl ConnectionTrait` so they work inside or outside a transaction.

use chrono::{DateTime, FixedOffset, Utc};
use passare_imports_domain::catalog::ImportTypeDef;
use passare_imports_domain::{ChunkRange, FileState, ImportState};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement, TransactionSession,
    TransactionTrait,
};
use uuid::Uuid;

use crate::entities::{chunks, import_files, imports, organizations};
use crate::{EVENTS_CHANNEL, StoreError};

pub type Timestamp = DateTime<FixedOffset>;

fn now() -> Timestamp {
    Utc::now().fixed_offset()
}

fn stmt(sql: &str, values: Vec<sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Who asked for an import, from their bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    pub id: String,
    pub name: String,
    pub email: String,
}

/// What `create_import` needs.
#[derive(Debug, Clone)]
pub struct NewImport {
    pub organization_id: i64,
    pub failure_policy: passare_imports_domain::FailurePolicy,
    pub note: String,
    pub request_id: Option<Uuid>,
    pub requested_by: Requester,
}

pub async fn organization(
    db: &impl ConnectionTrait,
    id: i64,
) -> Result<Option<organizations::Model>, StoreError> {
    Ok(organizations::Entity::find_by_id(id).one(db).await?)
}

/// Creates a draft import; with a `request_id` already used by the same
/// requester, returns that import instead (`false` in the second field).
pub async fn create_import(
    db: &impl ConnectionTrait,
    new: NewImport,
) -> Result<(imports::Model, bool), StoreError> {
    if let Some(request_id) = new.request_id {
        let existing = imports::Entity::find()
            .filter(imports::Column::RequestedById.eq(new.requested_by.id.clone()))
            .filter(imports::Column::RequestId.eq(request_id))
            .one(db)
            .await?;
        if let Some(existing) = existing {
            return Ok((existing, false));
        }
    }
    let at = now();
    let model = imports::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(new.organization_id),
        state: Set(ImportState::Draft.as_str().to_string()),
        failure_policy: Set(new.failure_policy.as_str().to_string()),
        note: Set(new.note),
        request_id: Set(new.request_id),
        requested_by_id: Set(new.requested_by.id.clone()),
        requested_by_name: Set(new.requested_by.name.clone()),
        requested_by_email: Set(new.requested_by.email.clone()),
        queue_seq: Set(None),
        error: Set(None),
        created_at: Set(at),
        queued_at: Set(None),
        started_at: Set(None),
        finished_at: Set(None),
        updated_at: Set(at),
        analysis: Set(None),
        analysis_fingerprint: Set(None),
        analyzed_at: Set(None),
        stopped_by_id: Set(None),
        stopped_by_name: Set(None),
        stopped_by_email: Set(None),
        stopped_at: Set(None),
        stop_reason: Set(None),
        rolled_back_at: Set(None),
        attempt: Set(1),
        results_purged_at: Set(None),
    };
    let inserted = imports::Entity::insert(model)
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_with_returning(db)
        .await;
    match inserted {
        Ok(m) => {
            crate::history::event_orm(db, m.id, "created", Some(&new.requested_by), "").await?;
            Ok((m, true))
        }
        // A concurrent call with the same request_id won the race.
        Err(sea_orm::DbErr::RecordNotInserted) => {
            let existing = imports::Entity::find()
                .filter(imports::Column::RequestedById.eq(new.requested_by.id))
                .filter(imports::Column::RequestId.eq(new.request_id))
                .one(db)
                .await?
                .ok_or_else(|| {
                    StoreError::Corrupt("import insert conflicted with nothing".into())
                })?;
            Ok((existing, false))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn find_import(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<imports::Model>, StoreError> {
    Ok(imports::Entity::find_by_id(id).one(db).await?)
}

/// The import, locked for the rest of the transaction.
pub async fn lock_import(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<imports::Model>, StoreError> {
    Ok(imports::Entity::find_by_id(id)
        .lock_exclusive()
        .one(db)
        .await?)
}

/// Organizations not paused with chunks that have waited at least `min_age`
/// (since they were queued, or since their retry came due), for the
/// workers' sweep, which re-announces them.
pub async fn organizations_with_waiting_chunks(
    db: &impl ConnectionTrait,
    min_age: std::time::Duration,
) -> Result<Vec<i64>, StoreError> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT DISTINCT c.organization_id FROM chunks c
              WHERE c.state = 'queued'
                AND COALESCE(c.not_before, c.queued_at) < now() - make_interval(secs => $1)
                AND NOT EXISTS (SELECT 1 FROM import_pauses p
                                 WHERE p.organization_id IS NULL OR p.organization_id = c.organization_id)",
            vec![min_age.as_secs_f64().into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            r.try_get::<i64>("", "organization_id")
                .map_err(StoreError::from)
        })
        .collect()
}

pub async fn import_files(
    db: &impl ConnectionTrait,
    import_id: Uuid,
) -> Result<Vec<import_files::Model>, StoreError> {
    Ok(import_files::Entity::find()
        .filter(import_files::Column::ImportId.eq(import_id))
        .order_by_asc(import_files::Column::Position)
        .all(db)
        .await?)
}

/// Files of several imports at once, in position order.
pub async fn files_of_imports(
    db: &impl ConnectionTrait,
    import_ids: &[Uuid],
) -> Result<Vec<import_files::Model>, StoreError> {
    if import_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(import_files::Entity::find()
        .filter(import_files::Column::ImportId.is_in(import_ids.iter().copied()))
        .order_by_asc(import_files::Column::ImportId)
        .order_by_asc(import_files::Column::Position)
        .all(db)
        .await?)
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
pub async fn list_imports(
    db: &impl ConnectionTrait,
    filter: &ImportFilter,
    cursor: Option<(Timestamp, Uuid)>,
    limit: u64,
) -> Result<Vec<imports::Model>, StoreError> {
    let mut q = imports::Entity::find();
    if let Some(org) = filter.organization_id {
        q = q.filter(imports::Column::OrganizationId.eq(org));
    }
    if let Some(t) = &filter.import_type {
        q = q.filter(Expr::cust_with_values(
            "EXISTS (SELECT 1 FROM import_files f WHERE f.import_id = imports.id AND f.import_type = $1)",
            [t.clone()],
        ));
    }
    if !filter.states.is_empty() {
        q = q.filter(imports::Column::State.is_in(filter.states.iter().map(|s| s.as_str())));
    }
    if let Some(paused) = filter.paused {
        let held = "EXISTS (SELECT 1 FROM import_pauses p
                     WHERE p.organization_id IS NULL OR p.organization_id = imports.organization_id)";
        q = q.filter(Expr::cust(if paused {
            held.to_string()
        } else {
            format!("NOT {held}")
        }));
    }
    if let Some(who) = &filter.requested_by {
        q = q.filter(
            Condition::any()
                .add(imports::Column::RequestedById.eq(who.clone()))
                .add(Expr::cust_with_values(
                    "lower(imports.requested_by_email) = lower($1)",
                    [who.clone()],
                )),
        );
    }
    if let Some(from) = filter.created_from {
        q = q.filter(imports::Column::CreatedAt.gte(from));
    }
    if let Some(before) = filter.created_before {
        q = q.filter(imports::Column::CreatedAt.lt(before));
    }
    if let Some((at, id)) = cursor {
        q = q.filter(
            Condition::any().add(imports::Column::CreatedAt.lt(at)).add(
                Condition::all()
                    .add(imports::Column::CreatedAt.eq(at))
                    .add(imports::Column::Id.lt(id)),
            ),
        );
    }
    Ok(q.order_by_desc(imports::Column::CreatedAt)
        .order_by_desc(imports::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Organizations whose name contains `query` (any case) or whose id it is,
/// by name then id, after `cursor` (lower-case name, id).
pub async fn list_organizations(
    db: &impl ConnectionTrait,
    query: &str,
    only: Option<i64>,
    cursor: Option<(String, i64)>,
    limit: u64,
) -> Result<Vec<organizations::Model>, StoreError> {
    let (after_name, after_id) = cursor.unwrap_or_default();
    let rows = db
        .query_all_raw(stmt(
            "SELECT id, name, created_at FROM organizations
              WHERE ($1 = '' OR position(lower($1) in lower(name)) > 0 OR id::text = $1)
                AND ($2::bigint IS NULL OR id = $2)
                AND (lower(name), id) > ($3, $4)
              ORDER BY lower(name), id LIMIT $5",
            vec![
                query.trim().into(),
                only.into(),
                after_name.into(),
                after_id.into(),
                (limit as i64).into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(organizations::Model {
                id: r.try_get("", "id")?,
                name: r.try_get("", "name")?,
                created_at: r.try_get("", "created_at")?,
            })
        })
        .collect()
}

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
pub async fn record_source(
    db: &impl ConnectionTrait,
    def: &ImportTypeDef,
    organization_id: i64,
    key: &[String],
) -> Result<Option<RecordSource>, StoreError> {
    let matched: Vec<String> = def
        .key_columns
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let kind = def.column(k).map_or("text", |c| c.kind.sql_type());
            format!("{k} = ${}::{kind}", i + 2)
        })
        .collect();
    // Table and column names come from the compiled catalog; values are bound.
    let sql = format!(
        "SELECT source_import_id, source_file_id, source_row, updated_at FROM {} WHERE organization_id = $1 AND {}",
        def.target_table,
        matched.join(" AND ")
    );
    let mut values: Vec<sea_orm::Value> = vec![organization_id.into()];
    values.extend(key.iter().map(|k| k.clone().into()));
    let Some(r) = db.query_one_raw(stmt(&sql, values)).await? else {
        return Ok(None);
    };
    let (Some(import_id), Some(file_id)) = (
        r.try_get::<Option<Uuid>>("", "source_import_id")?,
        r.try_get::<Option<Uuid>>("", "source_file_id")?,
    ) else {
        return Ok(None);
    };
    Ok(Some(RecordSource {
        import_id,
        file_id,
        row: r
            .try_get::<Option<i64>>("", "source_row")?
            .unwrap_or_default(),
        updated_at: r.try_get("", "updated_at")?,
    }))
}

/// Imports of the same organization that run or wait before this one.
pub async fn queue_position(
    db: &impl ConnectionTrait,
    import: &imports::Model,
) -> Result<u64, StoreError> {
    let Some(seq) = import.queue_seq else {
        return Ok(0);
    };
    Ok(imports::Entity::find()
        .filter(imports::Column::OrganizationId.eq(import.organization_id))
        .filter(
            imports::Column::State
                .is_in([ImportState::Queued.as_str(), ImportState::Running.as_str()]),
        )
        .filter(imports::Column::QueueSeq.lt(seq))
        .count(db)
        .await?)
}

/// Everything the upload learned about a stored file.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub id: Uuid,
    pub import_id: Uuid,
    pub organization_id: i64,
    pub import_type: String,
    pub file_name: String,
    pub storage_key: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub format: String,
    pub delimiter: String,
    pub headers: Vec<String>,
    pub row_count: i64,
    pub chunk_plan: Vec<ChunkRange>,
    pub state: FileState,
    pub problems: serde_json::Value,
    /// Encoding the file arrived in ("utf-8", "windows-1252", …).
    pub encoding: String,
    /// Sheet read from a workbook.
    pub sheet_name: Option<String>,
    /// Stored UTF-8 conversion the chunks index, when the original is not UTF-8 text.
    pub data_key: Option<String>,
    /// Explicit header mapping of the request (file header, column).
    pub column_mapping: Vec<(String, String)>,
    /// Loading order of the file's type (see `ImportTypeDef::load_rank`).
    pub load_order: i32,
}

/// Adds a file to a draft import. Fails with `Ok(None)` when the import is no
/// longer a draft (it started meanwhile).
pub async fn add_file<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    file: NewFile,
    by: &Requester,
    max_files: u64,
) -> Result<Added, StoreError> {
    let txn = db.begin().await?;
    // Lock the import so a concurrent StartImport cannot miss this file.
    let draft = txn
        .query_one_raw(stmt(
            "SELECT state FROM imports WHERE id = $1 FOR UPDATE",
            vec![file.import_id.into()],
        ))
        .await?
        .map(|r| r.try_get::<String>("", "state"))
        .transpose()?;
    if draft.as_deref() != Some(ImportState::Draft.as_str()) {
        return Ok(Added::NotDraft);
    }
    let files = import_files::Entity::find()
        .filter(import_files::Column::ImportId.eq(file.import_id))
        .count(&txn)
        .await?;
    if files >= max_files {
        return Ok(Added::TooMany(files));
    }
    let position: i32 = txn
        .query_one_raw(stmt(
            "SELECT COALESCE(MAX(position) + 1, 0)::int AS p FROM import_files WHERE import_id = $1",
            vec![file.import_id.into()],
        ))
        .await?
        .map(|r| r.try_get::<i32>("", "p"))
        .transpose()?
        .unwrap_or(0);
    let at = now();
    let model = import_files::ActiveModel {
        id: Set(file.id),
        import_id: Set(file.import_id),
        organization_id: Set(file.organization_id),
        position: Set(position),
        import_type: Set(file.import_type),
        file_name: Set(file.file_name),
        storage_key: Set(file.storage_key),
        size_bytes: Set(file.size_bytes),
        sha256: Set(file.sha256),
        format: Set(file.format),
        delimiter: Set(file.delimiter),
        headers: Set(serde_json::json!(file.headers)),
        row_count: Set(file.row_count),
        chunk_plan: Set(serde_json::to_value(&file.chunk_plan)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?),
        state: Set(file.state.as_str().to_string()),
        problems: Set(file.problems),
        chunks_total: Set(file.chunk_plan.len() as i32),
        chunks_done: Set(0),
        rows_processed: Set(0),
        rows_created: Set(0),
        rows_updated: Set(0),
        rows_unchanged: Set(0),
        rows_failed: Set(0),
        created_at: Set(at),
        updated_at: Set(at),
        encoding: Set(file.encoding),
        sheet_name: Set(file.sheet_name),
        data_key: Set(file.data_key),
        column_mapping: Set(serde_json::json!(file.column_mapping)),
        load_order: Set(file.load_order),
        rows_stale: Set(0),
        rows_rolled_back: Set(0),
    }
    .insert(&txn)
    .await?;
    imports::Entity::update_many()
        .col_expr(imports::Column::UpdatedAt, Expr::value(at))
        .filter(imports::Column::Id.eq(model.import_id))
        .exec(&txn)
        .await?;
    crate::history::event_orm(
        &txn,
        model.import_id,
        "file_added",
        Some(by),
        &format!(
            "{} ({}, {} bytes, {} rows, sha256 {})",
            model.file_name, model.import_type, model.size_bytes, model.row_count, model.sha256
        ),
    )
    .await?;
    notify(&txn, model.import_id).await?;
    txn.commit().await?;
    Ok(Added::File(Box::new(model)))
}

/// What became of a file to add.
#[derive(Debug)]
pub enum Added {
    File(Box<import_files::Model>),
    /// The import started meanwhile.
    NotDraft,
    /// The import already holds this many files, the most allowed.
    TooMany(u64),
}

/// How many files an import holds.
pub async fn file_count(db: &impl ConnectionTrait, import_id: Uuid) -> Result<u64, StoreError> {
    Ok(import_files::Entity::find()
        .filter(import_files::Column::ImportId.eq(import_id))
        .count(db)
        .await?)
}

/// Changes a draft import's failure policy.
pub async fn set_failure_policy(
    db: &impl ConnectionTrait,
    import_id: Uuid,
    policy: passare_imports_domain::FailurePolicy,
) -> Result<(), StoreError> {
    db.execute_raw(stmt(
        "UPDATE imports SET failure_policy = $2, updated_at = now() WHERE id = $1 AND state = 'draft'",
        vec![import_id.into(), policy.as_str().into()],
    ))
    .await?;
    Ok(())
}

/// What became of a request to remove a file.
#[derive(Debug)]
pub enum Removed {
    /// Removed; the file's name and the storage keys of its bytes, to delete.
    Done(String, Vec<String>),
    NotDraft(String),
    NotFound,
}

/// Removes a file from a draft import, under the import's row lock so a
/// concurrent StartImport either sees it or does not.
pub async fn remove_file<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    import_id: Uuid,
    file_id: Uuid,
    by: &Requester,
) -> Result<Removed, StoreError> {
    let txn = db.begin().await?;
    let state = txn
        .query_one_raw(stmt(
            "SELECT state FROM imports WHERE id = $1 FOR UPDATE",
            vec![import_id.into()],
        ))
        .await?
        .map(|r| r.try_get::<String>("", "state"))
        .transpose()?;
    let Some(state) = state else {
        return Ok(Removed::NotFound);
    };
    if state != ImportState::Draft.as_str() {
        return Ok(Removed::NotDraft(state));
    }
    let Some(file) = import_files::Entity::find_by_id(file_id)
        .filter(import_files::Column::ImportId.eq(import_id))
        .one(&txn)
        .await?
    else {
        return Ok(Removed::NotFound);
    };
    import_files::Entity::delete_by_id(file_id)
        .exec(&txn)
        .await?;
    txn.execute_raw(stmt(
        "UPDATE imports SET updated_at = now() WHERE id = $1",
        vec![import_id.into()],
    ))
    .await?;
    crate::history::event_orm(&txn, import_id, "file_removed", Some(by), &file.file_name).await?;
    notify(&txn, import_id).await?;
    txn.commit().await?;
    Ok(Removed::Done(
        file.file_name,
        std::iter::once(file.storage_key)
            .chain(file.data_key)
            .collect(),
    ))
}

/// Stores an import's analysis report and the fingerprint of its files.
pub async fn store_analysis(
    db: &impl ConnectionTrait,
    import_id: Uuid,
    report: serde_json::Value,
    fingerprint: &str,
    by: &Requester,
    summary: &str,
) -> Result<(), StoreError> {
    db.execute_raw(stmt(
        "UPDATE imports SET analysis = $2, analysis_fingerprint = $3, analyzed_at = now(),
                updated_at = now() WHERE id = $1",
        vec![import_id.into(), report.into(), fingerprint.into()],
    ))
    .await?;
    crate::history::event_orm(db, import_id, "analyzed", Some(by), summary).await?;
    notify(db, import_id).await?;
    Ok(())
}

/// Organization setup that `def` needs and the organization lacks.
pub async fn missing_prerequisites(
    db: &impl ConnectionTrait,
    organization_id: i64,
    def: &ImportTypeDef,
) -> Result<Vec<&'static str>, StoreError> {
    let mut missing = Vec::new();
    for p in def.prerequisites {
        // Table names come from the compiled catalog, never from a request.
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE organization_id = $1) AS present",
            p.table
        );
        let present = db
            .query_one_raw(stmt(&sql, vec![organization_id.into()]))
            .await?
            .map(|r| r.try_get::<bool>("", "present"))
            .transpose()?
            .unwrap_or(false);
        if !present {
            missing.push(p.missing);
        }
    }
    Ok(missing)
}

/// Serialises the StartImport calls of one organization for the rest of the
/// transaction, so their chunks reach the broker in the order they queue.
pub async fn lock_org_queue(
    db: &impl ConnectionTrait,
    organization_id: i64,
) -> Result<(), StoreError> {
    db.execute_raw(stmt(
        "SELECT pg_advisory_xact_lock(hashtextextended('passare_imports.queue:' || $1::text, 0))",
        vec![organization_id.into()],
    ))
    .await?;
    Ok(())
}

/// Moves a draft import to `queued`: numbers it in its organization's queue
/// and creates its chunk rows from the files' chunk plans. Returns the chunks
/// in load order, or `None` when the import is no longer a draft. Call inside
/// the transaction that holds [`lock_org_queue`].
pub async fn queue_import(
    db: &impl ConnectionTrait,
    import: &imports::Model,
    files: &[import_files::Model],
    by: &Requester,
) -> Result<Option<Vec<chunks::Model>>, StoreError> {
    let at = now();
    let seq: i64 = db
        .query_one_raw(stmt("SELECT nextval('import_queue_seq') AS seq", vec![]))
        .await?
        .map(|r| r.try_get::<i64>("", "seq"))
        .transpose()?
        .ok_or_else(|| StoreError::Corrupt("nextval returned nothing".into()))?;
    let updated = imports::Entity::update_many()
        .col_expr(
            imports::Column::State,
            Expr::value(ImportState::Queued.as_str()),
        )
        .col_expr(imports::Column::QueueSeq, Expr::value(seq))
        .col_expr(imports::Column::QueuedAt, Expr::value(at))
        .col_expr(imports::Column::UpdatedAt, Expr::value(at))
        .filter(imports::Column::Id.eq(import.id))
        .filter(imports::Column::State.eq(ImportState::Draft.as_str()))
        .exec(db)
        .await?;
    if updated.rows_affected != 1 {
        return Ok(None);
    }
    let mut created = Vec::new();
    for file in files {
        let plan: Vec<ChunkRange> = serde_json::from_value(file.chunk_plan.clone())
            .map_err(|e| StoreError::Corrupt(format!("chunk plan of file {}: {e}", file.id)))?;
        import_files::Entity::update_many()
            .col_expr(
                import_files::Column::State,
                Expr::value(FileState::Queued.as_str()),
            )
            .col_expr(
                import_files::Column::ChunksTotal,
                Expr::value(plan.len() as i32),
            )
            .col_expr(import_files::Column::UpdatedAt, Expr::value(at))
            .filter(import_files::Column::Id.eq(file.id))
            .exec(db)
            .await?;
        let models: Vec<chunks::ActiveModel> = plan
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
                state: Set("queued".into()),
                attempts: Set(0),
                queued_at: Set(at),
                ..Default::default()
            })
            .collect();
        for batch in models.chunks(1000) {
            let rows = chunks::Entity::insert_many(batch.to_vec())
                .exec_with_returning(db)
                .await?;
            created.extend(rows);
        }
    }
    crate::history::event_orm(
        db,
        import.id,
        "queued",
        Some(by),
        &format!("{} chunks, policy {}", created.len(), import.failure_policy),
    )
    .await?;
    notify(db, import.id).await?;
    Ok(Some(created))
}

/// Tells every watcher, on every replica, that an import changed.
pub async fn notify(db: &impl ConnectionTrait, import_id: Uuid) -> Result<(), StoreError> {
    db.execute_raw(stmt(
        "SELECT pg_notify($1, $2)",
        vec![EVENTS_CHANNEL.into(), import_id.to_string().into()],
    ))
    .await?;
    Ok(())
}

/// Organization setup for demos and tests (Passare manages the real one).
#[derive(Debug, Clone, Copy, Default)]
pub struct OrgSetup<'a> {
    pub locations: &'a [&'a str],
    /// (e-mail, name)
    pub staff: &'a [(&'a str, &'a str)],
    /// (code, name)
    pub gl_accounts: &'a [(&'a str, &'a str)],
    /// (number, name)
    pub bank_accounts: &'a [(&'a str, &'a str)],
}

/// Creates an organization and the setup given, leaving what exists alone.
pub async fn ensure_demo_organization(
    db: &impl ConnectionTrait,
    id: i64,
    name: &str,
    setup: OrgSetup<'_>,
) -> Result<(), StoreError> {
    db.execute_raw(stmt(
        "INSERT INTO organizations (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        vec![id.into(), name.into()],
    ))
    .await?;
    for location in setup.locations {
        db.execute_raw(stmt(
            "INSERT INTO locations (organization_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            vec![id.into(), (*location).into()],
        ))
        .await?;
    }
    let pairs = [
        ("staff_users (organization_id, email, name)", setup.staff),
        (
            "gl_accounts (organization_id, code, name)",
            setup.gl_accounts,
        ),
        (
            "bank_accounts (organization_id, number, name)",
            setup.bank_accounts,
        ),
    ];
    for (table, rows) in pairs {
        for (a, b) in rows {
            // Table names are the constants above, never input.
            db.execute_raw(stmt(
                &format!("INSERT INTO {table} VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"),
                vec![id.into(), (*a).into(), (*b).into()],
            ))
            .await?;
        }
    }
    Ok(())
}

/// Chunks of an import in load order, with their timestamps.
pub async fn chunks_of_import(
    db: &impl ConnectionTrait,
    import_id: Uuid,
) -> Result<Vec<chunks::Model>, StoreError> {
    Ok(chunks::Entity::find()
        .filter(chunks::Column::ImportId.eq(import_id))
        .order_by_asc(chunks::Column::Id)
        .all(db)
        .await?)
}

/// The first still-open row errors of a file (a retry supersedes the
/// errors of the rows it tries again), in row order.
pub async fn first_row_errors(
    db: &impl ConnectionTrait,
    file_id: Uuid,
    limit: u64,
) -> Result<Vec<crate::entities::row_errors::Model>, StoreError> {
    use crate::entities::row_errors;
    Ok(row_errors::Entity::find()
        .filter(row_errors::Column::FileId.eq(file_id))
        .filter(row_errors::Column::SupersededAt.is_null())
        .order_by_asc(row_errors::Column::RowNumber)
        .order_by_asc(row_errors::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// File names by id (for lists that show files of several imports).
pub async fn file_names(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, String>, StoreError> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    Ok(import_files::Entity::find()
        .filter(import_files::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|f| (f.id, f.file_name))
        .collect())
}

/// Chunks by id, in id order.
pub async fn chunks_by_id(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<Vec<chunks::Model>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(chunks::Entity::find()
        .filter(chunks::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(chunks::Column::Id)
        .all(db)
        .await?)
}
