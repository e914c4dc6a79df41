//! The files of imports: adding one to a draft (under the import's row lock,
//! so a concurrent StartImport sees it or refuses it), removing one, and
//! reading them back.

use std::collections::HashMap;

use chrono::Utc;
use passare_imports_domain::ChunkRange;
use passare_imports_domain::transform::AppliedProfile;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::entities::import_files;
use crate::states::{FileState, ImportState};
use crate::{Requester, StoreError, exec, imports, timeline};

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
    /// The profile version the file is read with.
    pub profile: Option<AppliedProfile>,
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

/// Adds a file to a draft import, in a transaction of its own that locks the
/// import first.
pub async fn add(
    conn: &mut PgConnection,
    file: NewFile,
    by: &Requester,
    max_files: u64,
) -> Result<Added, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let draft = imports::lock(&mut tx, file.import_id).await?;
    if draft.is_none_or(|i| i.state != ImportState::Draft) {
        return Ok(Added::NotDraft);
    }
    let files = of_import(&mut tx, file.import_id).await?;
    if files.len() as u64 >= max_files {
        return Ok(Added::TooMany(files.len() as u64));
    }
    let position = files.iter().map(|f| f.position + 1).max().unwrap_or(0);
    let at = Utc::now().fixed_offset();
    let chunk_plan =
        serde_json::to_value(&file.chunk_plan).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let model = exec::insert(
        &mut tx,
        import_files::ActiveModel {
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
            chunk_plan: Set(chunk_plan),
            state: Set(file.state),
            problems: Set(file.problems),
            chunks_total: Set(file.chunk_plan.len() as i32),
            created_at: Set(at),
            updated_at: Set(at),
            encoding: Set(file.encoding),
            sheet_name: Set(file.sheet_name),
            data_key: Set(file.data_key),
            column_mapping: Set(serde_json::json!(file.column_mapping)),
            load_order: Set(file.load_order),
            profile_id: Set(file.profile.as_ref().map(|p| p.profile_id)),
            profile: Set(file.profile.as_ref().map(|p| serde_json::json!(p))),
            ..Default::default()
        },
    )
    .await?;
    imports::touch(&mut tx, model.import_id).await?;
    let detail = format!(
        "{} ({}, {} bytes, {} rows, sha256 {})",
        model.file_name, model.import_type, model.size_bytes, model.row_count, model.sha256
    );
    timeline::record(&mut tx, model.import_id, "file_added", Some(by), &detail).await?;
    timeline::notify(&mut tx, model.import_id).await?;
    tx.commit().await?;
    Ok(Added::File(Box::new(model)))
}

/// What became of a request to remove a file.
#[derive(Debug)]
pub enum Removed {
    /// Removed; the file's name and the storage keys of its bytes, to delete.
    Done(String, Vec<String>),
    NotDraft(ImportState),
    NotFound,
}

/// Removes a file from a draft import, under the import's row lock so a
/// concurrent StartImport either sees it or does not.
pub async fn remove(
    conn: &mut PgConnection,
    import_id: Uuid,
    file_id: Uuid,
    by: &Requester,
) -> Result<Removed, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let Some(import) = imports::lock(&mut tx, import_id).await? else {
        return Ok(Removed::NotFound);
    };
    if import.state != ImportState::Draft {
        return Ok(Removed::NotDraft(import.state));
    }
    let Some(file) = exec::one(
        &mut tx,
        import_files::Entity::find_by_id(file_id)
            .filter(import_files::Column::ImportId.eq(import_id)),
    )
    .await?
    else {
        return Ok(Removed::NotFound);
    };
    exec::run(&mut tx, import_files::Entity::delete_by_id(file_id)).await?;
    imports::touch(&mut tx, import_id).await?;
    timeline::record(
        &mut tx,
        import_id,
        "file_removed",
        Some(by),
        &file.file_name,
    )
    .await?;
    timeline::notify(&mut tx, import_id).await?;
    tx.commit().await?;
    let keys = std::iter::once(file.storage_key)
        .chain(file.data_key)
        .collect();
    Ok(Removed::Done(file.file_name, keys))
}

/// The files of an import, in position order.
pub async fn of_import(
    conn: &mut PgConnection,
    import_id: Uuid,
) -> exec::Records<import_files::Model> {
    use import_files::Column;
    exec::all_by(conn, Column::ImportId.eq(import_id), Column::Position).await
}

/// Files of several imports at once, by import then position.
pub async fn of_imports(
    conn: &mut PgConnection,
    import_ids: &[Uuid],
) -> Result<Vec<import_files::Model>, StoreError> {
    if import_ids.is_empty() {
        return Ok(Vec::new());
    }
    exec::all(
        conn,
        import_files::Entity::find()
            .filter(import_files::Column::ImportId.is_in(import_ids.iter().copied()))
            .order_by_asc(import_files::Column::ImportId)
            .order_by_asc(import_files::Column::Position),
    )
    .await
}

/// How many files an import holds.
pub async fn count(conn: &mut PgConnection, import_id: Uuid) -> Result<u64, StoreError> {
    exec::count(
        conn,
        import_files::Entity::find().filter(import_files::Column::ImportId.eq(import_id)),
    )
    .await
}

/// File names by id (for lists that show files of several imports).
pub async fn names(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, String>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let files = exec::all(
        conn,
        import_files::Entity::find().filter(import_files::Column::Id.is_in(ids.iter().copied())),
    )
    .await?;
    Ok(files.into_iter().map(|f| (f.id, f.file_name)).collect())
}

/// Who a stored object belongs to, read off its key: the files of an import
/// live under `imports/<import id>/`, the parts of a resumable upload under
/// `uploads/<upload id>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOwner {
    Import(Uuid),
    Upload(Uuid),
}

impl KeyOwner {
    /// The owner a key names, or `None` for a key the service never writes.
    pub fn of(key: &str) -> Option<Self> {
        let mut parts = key.split('/');
        let (folder, id) = (parts.next()?, parts.next()?);
        parts.next()?;
        let id = Uuid::parse_str(id).ok()?;
        match folder {
            "imports" => Some(Self::Import(id)),
            "uploads" => Some(Self::Upload(id)),
            _ => None,
        }
    }
}

/// Which of `keys` a record still points at: a file's original or converted
/// bytes, a retry chunk's file, or a resumable upload's part. Everything
/// else under the service's folders is an orphan.
pub async fn referenced_keys(
    conn: &mut PgConnection,
    keys: &[(String, KeyOwner)],
) -> Result<std::collections::HashSet<String>, StoreError> {
    let split = |want_import: bool| -> (Vec<String>, Vec<Uuid>) {
        keys.iter()
            .filter_map(|(key, owner)| match (owner, want_import) {
                (KeyOwner::Import(id), true) | (KeyOwner::Upload(id), false) => {
                    Some((key.clone(), *id))
                }
                _ => None,
            })
            .unzip()
    };
    let (import_keys, imports) = split(true);
    let (upload_keys, uploads) = split(false);
    let mut found: Vec<String> = sqlx::query_scalar(
        "SELECT t.k FROM unnest($1::text[], $2::uuid[]) AS t(k, owner)
          WHERE EXISTS (SELECT 1 FROM import_files f
                         WHERE f.import_id = t.owner AND (f.storage_key = t.k OR f.data_key = t.k))
             OR EXISTS (SELECT 1 FROM chunks c WHERE c.import_id = t.owner AND c.data_key = t.k)",
    )
    .bind(&import_keys)
    .bind(&imports)
    .fetch_all(&mut *conn)
    .await?;
    found.extend(
        sqlx::query_scalar::<_, String>(
            "SELECT t.k FROM unnest($1::text[], $2::uuid[]) AS t(k, owner)
              WHERE EXISTS (SELECT 1 FROM upload_parts p
                             WHERE p.upload_id = t.owner AND p.storage_key = t.k)",
        )
        .bind(&upload_keys)
        .bind(&uploads)
        .fetch_all(&mut *conn)
        .await?,
    );
    Ok(found.into_iter().collect())
}
