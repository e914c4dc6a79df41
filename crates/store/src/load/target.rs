//! Where a chunk's rows go and how they compare with what is stored: the
//! target table of the type, rows of one organization, written by one file
//! of one import; binary COPY encoding, a staging table of the target's
//! shape, and the key lookups that tell new records from existing ones.

use std::collections::HashSet;

use passare_imports_domain::catalog::ImportTypeDef;
use passare_imports_domain::chunk::{ParsedChunk, ROW_COLUMN};
use passare_imports_domain::copy::{Constant, encode_copy_binary};
// Dynamic SQL below is assembled from the compiled catalog's table and
// column names, never from a request or a file.
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use super::{ChunkJob, sql_type, written_columns};
use crate::StoreError;

pub(super) const STAGE: &str = "passare_stage";

/// The column every type accepts for the source system's last-modified time.
pub(super) const SOURCE_UPDATED_AT: &str = "source_updated_at";

/// Where a chunk's rows go: the type's table, rows of one organization,
/// written by one file of one import.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub def: &'a ImportTypeDef,
    pub organization_id: i64,
    pub import_id: Uuid,
    pub file_id: Uuid,
}

impl<'a> Target<'a> {
    pub fn of(job: &'a ChunkJob) -> Self {
        Self {
            def: job.def,
            organization_id: job.import.organization_id,
            import_id: job.import.id,
            file_id: job.file.id,
        }
    }

    /// Columns in COPY order: organization, the written columns, provenance.
    pub(super) fn list(&self) -> String {
        format!(
            "organization_id, {}, source_row, source_import_id, source_file_id",
            written_columns(self.def).join(", ")
        )
    }

    /// Encodes `rows` of the batch as a binary COPY stream in [`Target::list`] order.
    pub(super) fn encode(
        &self,
        batch: &arrow_array::RecordBatch,
        rows: &[usize],
        out: &mut Vec<u8>,
    ) {
        let mut encoded = written_columns(self.def);
        encoded.push(ROW_COLUMN);
        out.clear();
        encode_copy_binary(
            batch,
            &encoded,
            rows.iter().copied(),
            &[Constant::Int8(self.organization_id)],
            &[
                Constant::Uuid(*self.import_id.as_bytes()),
                Constant::Uuid(*self.file_id.as_bytes()),
            ],
            out,
        );
    }

    /// Copies `data` (from [`Target::encode`]) into a new temporary table of the
    /// target's shape, dropped at commit.
    pub(super) async fn stage(
        &self,
        conn: &mut PgConnection,
        data: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TEMP TABLE {STAGE} ON COMMIT DROP AS SELECT {list} FROM {table} WITH NO DATA",
            list = self.list(),
            table = self.def.target_table
        )))
        .execute(&mut *conn)
        .await?;
        copy_in(
            conn,
            &format!("COPY {STAGE} ({}) FROM STDIN (FORMAT binary)", self.list()),
            data,
        )
        .await?;
        Ok(())
    }

    /// The compared columns (neither key nor `source_updated_at`) and the SQL
    /// conditions joining the target `t` to the stage `s`, telling rows that
    /// differ, and telling stale rows (older than the stored record).
    pub(super) fn comparison(&self) -> Comparison {
        let keys = self.def.key_columns;
        let compared: Vec<&'static str> = written_columns(self.def)
            .into_iter()
            .filter(|c| !keys.contains(c) && *c != SOURCE_UPDATED_AT)
            .collect();
        let matched = keys
            .iter()
            .map(|k| format!("t.{k} = s.{k}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let differs = format!(
            "({}) IS DISTINCT FROM ({})",
            compared
                .iter()
                .map(|c| format!("t.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
            compared
                .iter()
                .map(|c| format!("s.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let stale = if written_columns(self.def).contains(&SOURCE_UPDATED_AT) {
            "COALESCE(s.source_updated_at < t.source_updated_at, false)".to_string()
        } else {
            "false".to_string()
        };
        Comparison {
            compared,
            matched,
            differs,
            stale,
        }
    }
}

/// See [`Target::comparison`].
pub(super) struct Comparison {
    pub compared: Vec<&'static str>,
    pub matched: String,
    pub differs: String,
    pub stale: String,
}

/// What writing rows does (or would do) to the stored records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub stale: i64,
    /// With record events: the batch rows created, and the row numbers of
    /// the rows that updated a record with the columns they changed.
    pub created_rows: Vec<usize>,
    pub updated_rows: Vec<(i64, Vec<String>)>,
}

/// What writing a chunk would do, without writing it, among the valid rows.
/// Runs in its own transaction, which it rolls back.
pub async fn compare_with_stored(
    conn: &mut PgConnection,
    target: Target<'_>,
    parsed: &ParsedChunk,
) -> Result<Merged, StoreError> {
    let batch = &parsed.batch;
    let valid: Vec<usize> = (0..batch.num_rows()).filter(|i| parsed.valid[*i]).collect();
    if valid.is_empty() {
        return Ok(Merged::default());
    }
    let first_key = target.def.key_columns.first().copied().unwrap_or_default();
    let first_values: Vec<Option<String>> =
        valid.iter().map(|i| parsed.text(first_key, *i)).collect();
    if !keys_in_range(conn, target, first_key, &first_values).await? {
        return Ok(Merged {
            created: valid.len() as i64,
            ..Merged::default()
        });
    }
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let mut data = Vec::with_capacity(valid.len() * 160);
    target.encode(batch, &valid, &mut data);
    target.stage(&mut tx, &data).await?;
    let c = target.comparison();
    let (existing, changed, stale): (i64, i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT count(*), count(*) FILTER (WHERE {differs} AND NOT {stale}), count(*) FILTER (WHERE {stale})
           FROM {STAGE} s JOIN {table} t ON t.organization_id = s.organization_id AND {matched}",
        differs = c.differs,
        stale = c.stale,
        matched = c.matched,
        table = target.def.target_table
    )))
    .fetch_one(&mut *tx)
    .await?;
    tx.rollback().await?;
    Ok(Merged {
        created: valid.len() as i64 - existing,
        updated: changed,
        unchanged: existing - changed - stale,
        stale,
        ..Merged::default()
    })
}

pub(super) async fn copy_in(
    conn: &mut PgConnection,
    statement: &str,
    data: &[u8],
) -> Result<i64, StoreError> {
    let mut copy = conn.copy_in_raw(statement).await?;
    if let Err(e) = copy.send(data).await {
        copy.abort("the chunk could not be sent").await.ok();
        return Err(e.into());
    }
    Ok(copy.finish().await? as i64)
}

/// Whether the organization has any record whose first key column falls
/// between the smallest and the largest of `values` (in the database's
/// collation). When it has none, no key of the chunk can exist.
pub(super) async fn keys_in_range(
    conn: &mut PgConnection,
    target: Target<'_>,
    column: &str,
    values: &[Option<String>],
) -> Result<bool, StoreError> {
    let kind = sql_type(target.def, column);
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {table} t WHERE t.organization_id = $1 AND t.{column} BETWEEN
            (SELECT min(x::{kind}) FROM unnest($2::text[]) x) AND (SELECT max(x::{kind}) FROM unnest($2::text[]) x))",
        table = target.def.target_table,
    );
    Ok(sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(target.organization_id)
        .bind(values)
        .fetch_one(&mut *conn)
        .await?)
}

/// Which of the given batch rows have a key the organization already has.
pub(super) async fn existing_rows(
    conn: &mut PgConnection,
    target: Target<'_>,
    parsed: &ParsedChunk,
    rows: &[usize],
) -> Result<HashSet<usize>, StoreError> {
    Ok(key_matches(conn, target, parsed, rows, false)
        .await?
        .into_iter()
        .map(|(i, _, _)| i)
        .collect())
}

/// The given batch rows whose key is stored (only records last written by
/// the target's import when `same_import`), with the file and row that wrote
/// each.
pub(super) async fn key_matches(
    conn: &mut PgConnection,
    target: Target<'_>,
    parsed: &ParsedChunk,
    rows: &[usize],
    same_import: bool,
) -> Result<Vec<(usize, Option<Uuid>, Option<i64>)>, StoreError> {
    let def = target.def;
    let keys = def.key_columns;
    let unnest: Vec<String> = std::iter::once("$3::int8[]".to_string())
        .chain((0..keys.len()).map(|i| format!("${}::text[]", i + 4)))
        .collect();
    let names: Vec<String> = std::iter::once("i".to_string())
        .chain((0..keys.len()).map(|i| format!("k{i}")))
        .collect();
    let on: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("t.{k} = u.k{i}::{}", sql_type(def, k)))
        .collect();
    let sql = format!(
        "SELECT u.i, t.source_file_id, t.source_row FROM UNNEST({unnest}) AS u({names})
           JOIN {table} t ON t.organization_id = $1 AND {on}
          WHERE NOT $2 OR t.source_import_id = $4_import",
        unnest = unnest.join(", "),
        names = names.join(", "),
        table = def.target_table,
        on = on.join(" AND "),
    )
    .replace("$4_import", &format!("${}", keys.len() + 4));
    let indexes: Vec<i64> = rows.iter().map(|r| *r as i64).collect();
    let mut query = sqlx::query_as(AssertSqlSafe(sql))
        .bind(target.organization_id)
        .bind(same_import)
        .bind(indexes);
    for k in keys {
        let values: Vec<Option<String>> = rows.iter().map(|r| parsed.text(k, *r)).collect();
        query = query.bind(values);
    }
    let found: Vec<(i64, Option<Uuid>, Option<i64>)> =
        query.bind(target.import_id).fetch_all(&mut *conn).await?;
    Ok(found
        .into_iter()
        .map(|(i, f, r)| (i as usize, f, r))
        .collect())
}
