//! Writing a chunk's valid rows into the target table.

use passare_imports_domain::chunk::ParsedChunk;
// Dynamic SQL below is assembled from the compiled catalog's table and
// column names, never from a request or a file.
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgConnection};

use super::ChunkJob;
use super::target::{
    Merged, SOURCE_UPDATED_AT, STAGE, Target, copy_in, existing_rows, keys_in_range,
};
use crate::StoreError;
use crate::states::FailurePolicy;

/// Writes the chunk's valid rows: keys new to the organization go straight
/// into the target table with COPY; rows whose key exists are staged and
/// updated where a value differs (identical rows are left alone, provenance
/// included; rows older than the stored record are stale and left alone
/// too). An all-or-nothing import first keeps a before-image of every record
/// it updates, so a failure or a stop can put it back. The organization's
/// write fence makes the split safe: no other transaction writes this
/// organization's rows meanwhile. `unchanged` is left for the caller.
pub(super) async fn merge(
    conn: &mut PgConnection,
    job: &ChunkJob,
    parsed: &ParsedChunk,
    events: bool,
) -> Result<Merged, StoreError> {
    let target = Target::of(job);
    let valid: Vec<usize> = (0..parsed.batch.num_rows())
        .filter(|i| parsed.valid[*i])
        .collect();
    if valid.is_empty() {
        return Ok(Merged::default());
    }
    let copy = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        job.def.target_table,
        target.list()
    );
    let mut data = Vec::with_capacity(valid.len() * 160);
    target.encode(&parsed.batch, &valid, &mut data);
    if let Some(created) = copy_new_keys(conn, target, parsed, &valid, &copy, &data).await? {
        return Ok(Merged {
            created,
            created_rows: if events { valid } else { Vec::new() },
            ..Merged::default()
        });
    }
    let existing = existing_rows(conn, target, parsed, &valid).await?;
    let (old, new): (Vec<usize>, Vec<usize>) =
        valid.iter().copied().partition(|i| existing.contains(i));
    let mut merged = Merged::default();
    if !new.is_empty() {
        target.encode(&parsed.batch, &new, &mut data);
        merged.created = copy_in(conn, &copy, &data).await?;
    }
    if !old.is_empty() {
        target.encode(&parsed.batch, &old, &mut data);
        target.stage(conn, &data).await?;
        let stop_on_first_error = job.policy() == FailurePolicy::StopOnFirstError;
        let how = Update {
            import_id: job.import.id,
            keep_before_images: stop_on_first_error,
            events,
        };
        (merged.updated, merged.stale, merged.updated_rows) =
            update_existing(conn, target, how).await?;
    }
    if events {
        merged.created_rows = new;
    }
    Ok(merged)
}

/// The common case when onboarding a client: no key of the chunk exists
/// yet, and the rows go straight in with COPY. When no stored key even falls
/// within the chunk's key range, that is certain; otherwise COPY is tried
/// under a savepoint, and a key that does exist (`None`) sends the chunk
/// down the careful path.
async fn copy_new_keys(
    conn: &mut PgConnection,
    target: Target<'_>,
    parsed: &ParsedChunk,
    valid: &[usize],
    copy: &str,
    data: &[u8],
) -> Result<Option<i64>, StoreError> {
    let first_key = target.def.key_columns.first().copied().unwrap_or_default();
    let first_values: Vec<Option<String>> =
        valid.iter().map(|i| parsed.text(first_key, *i)).collect();
    if !keys_in_range(conn, target, first_key, &first_values).await? {
        return Ok(Some(copy_in(conn, copy, data).await?));
    }
    sqlx::query("SAVEPOINT passare_copy")
        .execute(&mut *conn)
        .await?;
    match copy_in(conn, copy, data).await {
        Ok(created) => {
            sqlx::query("RELEASE SAVEPOINT passare_copy")
                .execute(&mut *conn)
                .await?;
            Ok(Some(created))
        }
        Err(e) if e.sqlstate().as_deref() == Some("23505") => {
            sqlx::query("ROLLBACK TO SAVEPOINT passare_copy")
                .execute(&mut *conn)
                .await?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The row number of each updated row with the columns it changed.
type ChangedColumns = Vec<(i64, Vec<String>)>;

/// How [`update_existing`] updates.
struct Update {
    import_id: uuid::Uuid,
    keep_before_images: bool,
    /// Also say which columns each updated row changed.
    events: bool,
}

/// Updates the staged rows' records where a value differs and the row is not
/// stale, keeping before-images when the import is all-or-nothing. One
/// statement, one snapshot: the before-images (and the changed columns) are
/// the records as they were when the update began. Returns (updated, stale,
/// the changed columns of each updated row when asked).
async fn update_existing(
    conn: &mut PgConnection,
    target: Target<'_>,
    how: Update,
) -> Result<(i64, i64, ChangedColumns), StoreError> {
    let def = target.def;
    let c = target.comparison();
    let changed_columns = c
        .compared
        .iter()
        .map(|col| format!("CASE WHEN t.{col} IS DISTINCT FROM s.{col} THEN '{col}' END"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut set: Vec<String> = c
        .compared
        .iter()
        .map(|col| format!("{col} = s.{col}"))
        .collect();
    if c.stale != "false" {
        set.push(format!(
            "{SOURCE_UPDATED_AT} = COALESCE(s.{SOURCE_UPDATED_AT}, t.{SOURCE_UPDATED_AT})"
        ));
    }
    let row_key = def
        .key_columns
        .iter()
        .map(|k| format!("t.{k}::text"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "WITH undo AS (
             INSERT INTO import_undo (import_id, target_table, row_key, before)
             SELECT $1, '{table}', concat_ws(E'\\x1f', {row_key}), to_jsonb(t)
               FROM {table} t JOIN {STAGE} s ON t.organization_id = s.organization_id AND {matched}
              WHERE $2 AND {differs} AND NOT {stale}
             ON CONFLICT DO NOTHING
             RETURNING 1),
         updated AS (
             UPDATE {table} t SET {set}, source_row = s.source_row,
                    source_import_id = s.source_import_id, source_file_id = s.source_file_id,
                    updated_at = now()
               FROM {STAGE} s
              WHERE t.organization_id = s.organization_id AND {matched} AND {differs} AND NOT {stale}
             RETURNING 1),
         changed AS (
             SELECT s.source_row, array_remove(ARRAY[{changed_columns}]::text[], NULL) AS columns
               FROM {table} t JOIN {STAGE} s ON t.organization_id = s.organization_id AND {matched}
              WHERE $3 AND {differs} AND NOT {stale})
         SELECT (SELECT count(*) FROM updated),
                (SELECT count(*) FROM {STAGE} s JOIN {table} t
                    ON t.organization_id = s.organization_id AND {matched} WHERE {stale}),
                (SELECT count(*) FROM undo),
                (SELECT COALESCE(jsonb_agg(jsonb_build_array(source_row, columns)), '[]'::jsonb)
                   FROM changed)",
        table = def.target_table,
        set = set.join(", "),
        matched = c.matched,
        differs = c.differs,
        stale = c.stale,
    );
    let (updated, stale, _undo, changed): (i64, i64, i64, Json<ChangedColumns>) =
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(how.import_id)
            .bind(how.keep_before_images)
            .bind(how.events)
            .fetch_one(&mut *conn)
            .await?;
    Ok((updated, stale, changed.0))
}
