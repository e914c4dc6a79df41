//! Undoing what an all-or-nothing import wrote: every record it updated gets
//! its before-image back (kept in the type's `<target table>_undo` table by
//! the update that changed it, a typed copy of the record as it was), and
//! every record still carrying the import as its last writer — those it
//! created — is deleted.
//!
//! An import of any size is put back in batches, each its own transaction
//! behind the organization's write fence: first the before-images (a
//! restored record no longer names the import as its writer), then the
//! created records, in the reverse of the loading order. What a batch did is
//! committed with it — restored before-images are deleted in the same
//! statement — so a worker killed between or during batches leaves a state
//! the next batch simply goes on from. The import is `rolling_back` until the
//! last batch, which records the ending (`failed`, or `stopped` when a user
//! stopped it).

use passare_imports_domain::catalog::{self, ImportTypeDef};
// Dynamic SQL below is assembled from the compiled catalog's table and
// column names, never from a request or a file.
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use super::{qualified, same_keys, turn, written_columns};
use crate::states::{ChunkState, ImportState};
use crate::{StoreError, locks, timeline};

/// The table that keeps a type's before-images: the import, then the
/// record's columns as they were (migration 0023).
pub fn undo_table(def: &ImportTypeDef) -> String {
    format!("{}_undo", def.target_table)
}

/// The columns a before-image keeps: the whole record — its organization,
/// the columns imports write, then its hash, provenance and times.
pub fn imaged_columns(def: &ImportTypeDef) -> Vec<&'static str> {
    std::iter::once("organization_id")
        .chain(written_columns(def))
        .chain([
            "row_hash",
            "source_row",
            "source_import_id",
            "source_file_id",
            "created_at",
            "updated_at",
        ])
        .collect()
}

/// The statement that keeps the before-images of the records in `rows` (a
/// relation with the record's [`imaged_columns`] as they were before an
/// update changed them): a typed copy of each record the import has not
/// written yet. A record it already wrote is either one it created (deleted
/// by a rollback) or one whose first image is kept, which must stay the one
/// put back. `import` is the parameter that holds the import's id.
pub(super) fn keep_images(def: &ImportTypeDef, import: &str, rows: &str) -> String {
    let list = imaged_columns(def).join(", ");
    format!(
        "INSERT INTO {undo} (import_id, {list})
         SELECT {import}, {list} FROM {rows} WHERE source_import_id IS DISTINCT FROM {import}",
        undo = undo_table(def),
    )
}

/// Whether any chunk of the import was written: only then is there
/// anything to put back.
pub(super) async fn wrote_any(
    conn: &mut PgConnection,
    import_id: Uuid,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM chunks WHERE import_id = $1 AND state = $2)",
    )
    .bind(import_id)
    .bind(ChunkState::Done)
    .fetch_one(&mut *conn)
    .await?)
}

/// Marks an import as rolling back (in the transaction that ended it): the
/// records to put back are the ones its files count as written.
pub(super) async fn begin(conn: &mut PgConnection, import_id: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE imports SET state = $2, finished_at = NULL,
                rollback_started_at = clock_timestamp(), rollback_records_done = 0,
                rollback_records_total = (SELECT COALESCE(sum(rows_created + rows_updated), 0)
                                            FROM import_files WHERE import_id = $1)
          WHERE id = $1",
    )
    .bind(import_id)
    .bind(ImportState::RollingBack)
    .execute(&mut *conn)
    .await?;
    timeline::record(conn, import_id, "rolling_back", None, "").await
}

/// What one rollback batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackStep {
    /// `records` more were put back; more batches follow.
    Progress { import_id: Uuid, records: i64 },
    /// The last batch: nothing of the import remains, and it ended in `state`
    /// (`records` put back in all).
    Finished {
        import_id: Uuid,
        state: ImportState,
        records: i64,
    },
}

/// Puts back at most `batch` records of the organization's import that is
/// rolling back, in a transaction of its own behind the organization's write
/// fence, each statement limited to `statement_timeout`. `None` when no
/// import of the organization is rolling back.
pub async fn roll_back_batch(
    conn: &mut PgConnection,
    organization_id: i64,
    batch: i64,
    statement_timeout: Option<std::time::Duration>,
) -> Result<Option<RollbackStep>, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    locks::write_fence(&mut tx, organization_id).await?;
    let Some(import_id) = sqlx::query_scalar::<_, Uuid>(
        "SELECT id FROM imports WHERE organization_id = $1 AND state = $2
          ORDER BY queue_seq NULLS LAST, created_at LIMIT 1 FOR UPDATE",
    )
    .bind(organization_id)
    .bind(ImportState::RollingBack)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    // As for a chunk's write: each statement limited, and key lookups by
    // the primary key whatever the table's statistics say.
    turn::prepare(&mut tx, statement_timeout).await?;
    let mut types = written_types(&mut tx, import_id).await?;
    // `taken`: before-images and created records handled by this batch;
    // `records`: records put back (a before-image whose record is gone puts
    // nothing back, but is taken all the same).
    let (mut taken, mut records) = (0, 0);
    for def in &types {
        let (images, restored) = restore(&mut tx, def, import_id, batch - taken).await?;
        (taken, records) = (taken + images, records + restored);
        if taken >= batch {
            break;
        }
    }
    // Created records go once every before-image is back (a restored record
    // names its earlier writer, so it is not taken for a created one).
    if taken < batch && !any_before_image(&mut tx, &types, import_id).await? {
        types.reverse();
        for def in &types {
            let deleted =
                delete_created(&mut tx, def, organization_id, import_id, batch - taken).await?;
            (taken, records) = (taken + deleted, records + deleted);
            if taken >= batch {
                break;
            }
        }
    }
    let step = if taken == 0 {
        let (state, records) = finish(&mut tx, import_id).await?;
        RollbackStep::Finished {
            import_id,
            state,
            records,
        }
    } else {
        sqlx::query(
            "UPDATE imports SET rollback_records_done = rollback_records_done + $2,
                    updated_at = clock_timestamp() WHERE id = $1",
        )
        .bind(import_id)
        .bind(records)
        .execute(&mut *tx)
        .await?;
        RollbackStep::Progress { import_id, records }
    };
    timeline::notify(&mut tx, import_id).await?;
    tx.commit().await?;
    Ok(Some(step))
}

/// The types the import wrote, in loading order.
async fn written_types(
    conn: &mut PgConnection,
    import_id: Uuid,
) -> Result<Vec<&'static ImportTypeDef>, StoreError> {
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT import_type FROM import_files WHERE import_id = $1 AND chunks_done > 0",
    )
    .bind(import_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut types = keys
        .iter()
        .map(|key| {
            catalog::find(key).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "import {import_id} has a file of unknown type {key}"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    types.sort_by_key(|t| t.load_rank());
    Ok(types)
}

async fn any_before_image(
    conn: &mut PgConnection,
    types: &[&ImportTypeDef],
    import_id: Uuid,
) -> Result<bool, StoreError> {
    for def in types {
        let found: bool = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE import_id = $1)",
            undo_table(def)
        )))
        .bind(import_id)
        .fetch_one(&mut *conn)
        .await?;
        if found {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Writes at most `limit` before-images of one type back over the records,
/// and deletes them in the same statement; returns how many before-images it
/// took and how many records it put back.
async fn restore(
    conn: &mut PgConnection,
    def: &ImportTypeDef,
    import_id: Uuid,
    limit: i64,
) -> Result<(i64, i64), StoreError> {
    let keys = def.key_columns;
    let restored: Vec<&str> = imaged_columns(def)
        .into_iter()
        .filter(|c| *c != "organization_id" && !keys.contains(c))
        .collect();
    let matched = same_keys(keys, "t", "r");
    let sql = format!(
        "WITH taken AS (
             DELETE FROM {undo}
              WHERE ctid = ANY (ARRAY(SELECT ctid FROM {undo} WHERE import_id = $1 LIMIT $2))
             RETURNING *),
         put AS (
             UPDATE {table} t SET ({cols}) = ({values})
               FROM taken r
              WHERE t.organization_id = r.organization_id AND {matched}
             RETURNING 1)
         SELECT (SELECT count(*) FROM taken), (SELECT count(*) FROM put)",
        undo = undo_table(def),
        table = def.target_table,
        cols = restored.join(", "),
        values = qualified("r", &restored),
    );
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(import_id)
        .bind(limit)
        .fetch_one(conn)
        .await?)
}

/// Deletes at most `limit` records of one type the import created (still
/// naming it as their writer once every before-image is back).
async fn delete_created(
    conn: &mut PgConnection,
    def: &ImportTypeDef,
    organization_id: i64,
    import_id: Uuid,
    limit: i64,
) -> Result<i64, StoreError> {
    Ok(sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE ctid = ANY (ARRAY(
             SELECT ctid FROM {table}
              WHERE organization_id = $1 AND source_import_id = $2 LIMIT $3))",
        table = def.target_table
    )))
    .bind(organization_id)
    .bind(import_id)
    .bind(limit)
    .execute(conn)
    .await?
    .rows_affected() as i64)
}

/// The last batch: the files' counts say the import's records were put
/// back, and the import ends as it was going to — stopped when a user
/// stopped it, failed otherwise.
async fn finish(
    conn: &mut PgConnection,
    import_id: Uuid,
) -> Result<(ImportState, i64), StoreError> {
    let (state, undone): (ImportState, i64) = sqlx::query_as(
        "UPDATE imports SET state = CASE WHEN stopped_by_id IS NULL THEN $2 ELSE $3 END,
                finished_at = clock_timestamp(), rolled_back_at = clock_timestamp(),
                updated_at = clock_timestamp()
          WHERE id = $1
      RETURNING state, rollback_records_done",
    )
    .bind(import_id)
    .bind(ImportState::Failed)
    .bind(ImportState::Stopped)
    .fetch_one(&mut *conn)
    .await?;
    // The import's rows are no longer in Passare: nor in the archive, nor
    // in the record events it held back.
    crate::archive::withdraw_import(conn, import_id).await?;
    crate::events::discard(conn, import_id).await?;
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
    let detail = format!("{undone} records put back");
    timeline::record(conn, import_id, "rolled_back", None, &detail).await?;
    Ok((state, undone))
}

/// Drops the before-images of an import that no longer needs them (it
/// completed, or wrote nothing): every type's, as an import of several
/// files may have updated records of each.
pub async fn forget(conn: &mut PgConnection, import_id: Uuid) -> Result<(), StoreError> {
    for def in catalog::CATALOG {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {} WHERE import_id = $1",
            undo_table(def)
        )))
        .bind(import_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
