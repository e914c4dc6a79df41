//! Resumable uploads: the record of an upload (what file, how to read it,
//! how many bytes are committed, until when it lives) and its parts. A part
//! commits by moving `committed_bytes` from exactly its offset to its end in
//! one statement, so two clients sending parts at once can never leave a gap
//! or an overlap: the one that loses the race finds the offset moved.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::entities::{upload_parts, uploads};
use crate::states::UploadState;
use crate::{Requester, StoreError, exec};

/// What CreateUpload asks for.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub import_id: Uuid,
    pub organization_id: i64,
    pub request_id: Option<Uuid>,
    pub created_by: Requester,
    pub file_name: String,
    pub import_type: String,
    pub declared_size: i64,
    pub declared_sha256: Option<String>,
    pub reading: serde_json::Value,
    pub expires_at: DateTime<Utc>,
}

/// Creates an upload; with a `request_id` the same user used before,
/// returns that upload instead (`false`): the caller compares parameters.
pub async fn create(
    conn: &mut PgConnection,
    new: NewUpload,
) -> Result<(uploads::Model, bool), StoreError> {
    if let Some(existing) = by_request(conn, &new.created_by.id, new.request_id).await? {
        return Ok((existing, false));
    }
    let mut insert = uploads::Entity::insert(uploads::ActiveModel {
        id: Set(Uuid::now_v7()),
        import_id: Set(new.import_id),
        organization_id: Set(new.organization_id),
        request_id: Set(new.request_id),
        created_by_id: Set(new.created_by.id.clone()),
        created_by_name: Set(new.created_by.name.clone()),
        created_by_email: Set(new.created_by.email.clone()),
        file_name: Set(new.file_name.clone()),
        import_type: Set(new.import_type.clone()),
        declared_size: Set(new.declared_size),
        declared_sha256: Set(new.declared_sha256.clone()),
        reading: Set(new.reading.clone()),
        state: Set(UploadState::Active),
        expires_at: Set(new.expires_at.fixed_offset()),
        ..Default::default()
    })
    .on_conflict(OnConflict::new().do_nothing().to_owned());
    sea_orm::QueryTrait::query(&mut insert).returning_all();
    let inserted: Vec<uploads::Model> = exec::returning(conn, insert).await?;
    match inserted.into_iter().next() {
        Some(m) => Ok((m, true)),
        // A concurrent call with the same request_id won the race.
        None => by_request(conn, &new.created_by.id, new.request_id)
            .await?
            .map(|m| (m, false))
            .ok_or_else(|| StoreError::Corrupt("upload insert conflicted with nothing".into())),
    }
}

async fn by_request(
    conn: &mut PgConnection,
    user: &str,
    request_id: Option<Uuid>,
) -> Result<Option<uploads::Model>, StoreError> {
    let Some(request_id) = request_id else {
        return Ok(None);
    };
    exec::one(
        conn,
        uploads::Entity::find()
            .filter(uploads::Column::CreatedById.eq(user.to_string()))
            .filter(uploads::Column::RequestId.eq(request_id)),
    )
    .await
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<uploads::Model>, StoreError> {
    exec::one(conn, uploads::Entity::find_by_id(id)).await
}

/// Uploads a user runs now (active or completing), across every process.
pub async fn running_of_user(conn: &mut PgConnection, user: &str) -> Result<u64, StoreError> {
    exec::count(
        conn,
        uploads::Entity::find()
            .filter(uploads::Column::CreatedById.eq(user.to_string()))
            .filter(uploads::Column::State.is_in([UploadState::Active, UploadState::Completing])),
    )
    .await
}

/// Active uploads into an import (each may become a file).
pub async fn running_of_import(
    conn: &mut PgConnection,
    import_id: Uuid,
) -> Result<u64, StoreError> {
    exec::count(
        conn,
        uploads::Entity::find()
            .filter(uploads::Column::ImportId.eq(import_id))
            .filter(uploads::Column::State.is_in([UploadState::Active, UploadState::Completing])),
    )
    .await
}

/// What became of a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The part is committed; the upload's committed offset is now this.
    Now(i64),
    /// The committed offset moved on meanwhile (another client sent a part,
    /// or this one twice); it is this. The stored part is not used.
    Moved(i64),
    /// The upload is no longer active.
    Ended(UploadState),
}

/// Commits a stored part at `offset` of `length` bytes: the committed offset
/// moves from exactly `offset` to its end, and the upload's life is extended
/// by `ttl`.
pub async fn commit_part(
    conn: &mut PgConnection,
    upload_id: Uuid,
    offset: i64,
    length: i64,
    storage_key: &str,
    expires_at: DateTime<Utc>,
) -> Result<Committed, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let moved = exec::run(
        &mut tx,
        uploads::Entity::update_many()
            .col_expr(
                uploads::Column::CommittedBytes,
                Expr::value(offset + length),
            )
            .col_expr(uploads::Column::UpdatedAt, Expr::cust("now()"))
            .col_expr(
                uploads::Column::ExpiresAt,
                Expr::value(expires_at.fixed_offset()),
            )
            .filter(uploads::Column::Id.eq(upload_id))
            .filter(uploads::Column::State.eq(UploadState::Active))
            .filter(uploads::Column::CommittedBytes.eq(offset)),
    )
    .await?;
    if moved == 0 {
        let now = find(&mut tx, upload_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("upload {upload_id} vanished")))?;
        return Ok(match now.state {
            UploadState::Active => Committed::Moved(now.committed_bytes),
            other => Committed::Ended(other),
        });
    }
    exec::insert(
        &mut tx,
        upload_parts::ActiveModel {
            upload_id: Set(upload_id),
            offset_bytes: Set(offset),
            length: Set(length),
            storage_key: Set(storage_key.to_string()),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Committed::Now(offset + length))
}

/// The parts of an upload, in offset order.
pub async fn parts(conn: &mut PgConnection, upload_id: Uuid) -> exec::Records<upload_parts::Model> {
    use upload_parts::Column;
    exec::all_by(conn, Column::UploadId.eq(upload_id), Column::OffsetBytes).await
}

/// Moves an upload from one state to another if it is in `from`; with
/// `stale_after`, a `Completing` upload not touched for that long (its
/// completer died) may be taken over too. Returns the upload as it is now,
/// and whether it moved.
pub async fn transition(
    conn: &mut PgConnection,
    upload_id: Uuid,
    from: &[UploadState],
    to: UploadState,
    end_reason: Option<&str>,
) -> Result<(Option<uploads::Model>, bool), StoreError> {
    let moved = exec::run(
        conn,
        uploads::Entity::update_many()
            .col_expr(uploads::Column::State, Expr::value(to))
            .col_expr(
                uploads::Column::EndReason,
                Expr::value(end_reason.map(str::to_string)),
            )
            .col_expr(uploads::Column::UpdatedAt, Expr::cust("now()"))
            .filter(uploads::Column::Id.eq(upload_id))
            .filter(uploads::Column::State.is_in(from.iter().copied())),
    )
    .await?;
    Ok((find(conn, upload_id).await?, moved == 1))
}

/// Shows that a completion is alive: a `Completing` upload touched within
/// the stale time is not taken for one whose completer died.
pub async fn touch_completing(conn: &mut PgConnection, upload_id: Uuid) -> Result<(), StoreError> {
    exec::run(
        conn,
        uploads::Entity::update_many()
            .col_expr(uploads::Column::UpdatedAt, Expr::cust("now()"))
            .filter(uploads::Column::Id.eq(upload_id))
            .filter(uploads::Column::State.eq(UploadState::Completing)),
    )
    .await?;
    Ok(())
}

/// Records the file a completed upload became, and forgets its parts (the
/// caller deletes their bytes). Only a `Completing` upload completes.
pub async fn completed(
    conn: &mut PgConnection,
    upload_id: Uuid,
    file_id: Uuid,
) -> Result<(), StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    exec::run(
        &mut tx,
        uploads::Entity::update_many()
            .col_expr(uploads::Column::State, Expr::value(UploadState::Completed))
            .col_expr(uploads::Column::FileId, Expr::value(file_id))
            .col_expr(uploads::Column::UpdatedAt, Expr::cust("now()"))
            .filter(uploads::Column::Id.eq(upload_id))
            .filter(uploads::Column::State.eq(UploadState::Completing)),
    )
    .await?;
    forget_parts(&mut tx, upload_id).await?;
    tx.commit().await?;
    Ok(())
}

/// Forgets an upload's parts (after their bytes were deleted, or are about to be).
pub async fn forget_parts(conn: &mut PgConnection, upload_id: Uuid) -> Result<(), StoreError> {
    exec::run(
        conn,
        upload_parts::Entity::delete_many().filter(upload_parts::Column::UploadId.eq(upload_id)),
    )
    .await?;
    Ok(())
}

/// Active uploads whose time ran out, and completing ones whose completer
/// has not touched them since `stale_before` (it died): the sweep ends them.
pub async fn due_to_expire(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    stale_before: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<uploads::Model>, StoreError> {
    exec::all(
        conn,
        uploads::Entity::find()
            .filter(
                sea_orm::Condition::any()
                    .add(
                        sea_orm::Condition::all()
                            .add(uploads::Column::State.eq(UploadState::Active))
                            .add(uploads::Column::ExpiresAt.lt(now.fixed_offset())),
                    )
                    .add(
                        sea_orm::Condition::all()
                            .add(uploads::Column::State.eq(UploadState::Completing))
                            .add(uploads::Column::UpdatedAt.lt(stale_before.fixed_offset())),
                    ),
            )
            .order_by_asc(uploads::Column::ExpiresAt)
            .limit(limit),
    )
    .await
}
