//! Where a chunk's rows go and how they compare with what is stored: the
//! target table of the type, rows of one organization, written by one file
//! of one import; binary COPY encoding, a staging table of the target's
//! shape, and the key lookups that tell new records from existing ones.

use std::borrow::Cow;

use arrow_array::{Array, RecordBatch, TimestampMicrosecondArray};
use passare_imports_domain::catalog::ImportTypeDef;
use passare_imports_domain::chunk::{ParsedChunk, ROW_COLUMN, cell_str};
use passare_imports_domain::copy::{
    Constant, ROW_HASH_COLUMN, encode_copy_binary, with_row_hashes,
};
// Dynamic SQL below is assembled from the compiled catalog's table and
// column names, never from a request or a file.
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use super::{ChunkJob, qualified, same_keys, sql_type, written_columns};
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

    /// Columns in COPY order: organization, the written columns, the row
    /// hash, provenance.
    pub(super) fn list(&self) -> String {
        format!(
            "organization_id, {}, {ROW_HASH_COLUMN}, source_row, source_import_id, source_file_id",
            written_columns(self.def).join(", ")
        )
    }

    /// The written columns a re-import compares with the stored record:
    /// neither the key (it matched) nor `source_updated_at` (it decides
    /// staleness instead).
    pub(super) fn compared(&self) -> Vec<&'static str> {
        let keys = self.def.key_columns;
        written_columns(self.def)
            .into_iter()
            .filter(|c| !keys.contains(c) && *c != SOURCE_UPDATED_AT)
            .collect()
    }

    /// The chunk's batch with each row's hash of its [`Target::compared`]
    /// values (the `row_hash` stored with the record).
    pub(super) fn hashed(&self, parsed: &ParsedChunk) -> Result<RecordBatch, StoreError> {
        with_row_hashes(&parsed.batch, &self.compared())
            .map_err(|e| StoreError::Corrupt(format!("hashing a chunk's rows: {e}")))
    }

    /// Encodes `rows` of a [`Target::hashed`] batch as a binary COPY stream
    /// in [`Target::list`] order.
    pub(super) fn encode(&self, batch: &RecordBatch, rows: &[usize], out: &mut Vec<u8>) {
        let mut encoded = written_columns(self.def);
        encoded.push(ROW_HASH_COLUMN);
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
        let compared = self.compared();
        let matched = same_keys(keys, "t", "s");
        let differs = format!(
            "({}) IS DISTINCT FROM ({})",
            qualified("t", &compared),
            qualified("s", &compared),
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
    pub updated_rows: Vec<(i64, Vec<&'static str>)>,
}

/// What writing a chunk would do, without writing it, among the valid rows.
/// One key lookup tells new, stale and unchanged rows (by their stored row
/// hash) from changed ones; only rows whose record has no hash yet are
/// staged and compared column by column, in a transaction rolled back.
pub async fn compare_with_stored(
    conn: &mut PgConnection,
    target: Target<'_>,
    parsed: &ParsedChunk,
) -> Result<Merged, StoreError> {
    let valid: Vec<usize> = (0..parsed.batch.num_rows())
        .filter(|i| parsed.valid[*i])
        .collect();
    if valid.is_empty() {
        return Ok(Merged::default());
    }
    // One transaction, rolled back: it only reads, and stages the rows
    // compared by value.
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    super::turn::probing(&mut tx).await?;
    let found = stored_keys(&mut tx, target, parsed, &valid, Wanted::Hashes).await?;
    if found.is_empty() {
        tx.rollback().await?;
        return Ok(Merged {
            created: valid.len() as i64,
            ..Merged::default()
        });
    }
    let batch = target.hashed(parsed)?;
    let sorted = Sorted::of(&batch, &valid, &found);
    let mut merged = Merged {
        created: sorted.new.len() as i64,
        unchanged: sorted.unchanged,
        stale: sorted.stale,
        ..Merged::default()
    };
    // A stored hash that differs means the values differ (the encoding is
    // canonical); a record without one is compared column by column.
    let unhashed: Vec<usize> = found
        .iter()
        .filter(|k| k.hash.is_none() && !k.stale)
        .map(|k| k.row)
        .collect();
    merged.updated = sorted.changed.len() as i64 - unhashed.len() as i64;
    if unhashed.is_empty() {
        tx.rollback().await?;
        return Ok(merged);
    }
    let mut data = Vec::with_capacity(unhashed.len() * 160);
    target.encode(&batch, &unhashed, &mut data);
    target.stage(&mut tx, &data).await?;
    let c = target.comparison();
    let changed: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FILTER (WHERE {differs})
           FROM {STAGE} s JOIN {table} t ON t.organization_id = s.organization_id AND {matched}",
        differs = c.differs,
        matched = c.matched,
        table = target.def.target_table
    )))
    .fetch_one(&mut *tx)
    .await?;
    tx.rollback().await?;
    merged.updated += changed;
    merged.unchanged += unhashed.len() as i64 - changed;
    Ok(merged)
}

/// The valid rows of a chunk sorted by what their stored record says.
#[derive(Debug, Default)]
pub(super) struct Sorted {
    /// Rows whose key the organization does not have.
    pub new: Vec<usize>,
    /// Rows to stage and compare: the stored record's hash differs or is
    /// unknown.
    pub changed: Vec<usize>,
    /// Rows whose stored record has the same hash.
    pub unchanged: i64,
    /// Rows older than their stored record (`source_updated_at`).
    pub stale: i64,
}

impl Sorted {
    /// Sorts `rows` of a [`Target::hashed`] batch by the `found` keys.
    pub(super) fn of(batch: &RecordBatch, rows: &[usize], found: &[StoredKey]) -> Self {
        let hashes = batch
            .column_by_name(ROW_HASH_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::Int64Array>());
        // Each row's stored record, by row index (a row has at most one).
        let mut stored: Vec<Option<&StoredKey>> = vec![None; batch.num_rows()];
        for k in found {
            if let Some(slot) = stored.get_mut(k.row) {
                *slot = Some(k);
            }
        }
        let mut sorted = Sorted::default();
        for &i in rows {
            match stored.get_mut(i).and_then(Option::take) {
                None => sorted.new.push(i),
                Some(k) if k.stale => sorted.stale += 1,
                Some(k) if k.hash.is_some() && k.hash == hashes.map(|h| h.value(i)) => {
                    sorted.unchanged += 1;
                }
                Some(_) => sorted.changed.push(i),
            }
        }
        sorted
    }
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

/// What [`stored_keys`] reads of each stored record besides its hash and
/// whether the row is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wanted {
    /// Also whether the target's import wrote it, and if so the file and
    /// row that did (a chunk's write).
    Provenance,
    /// Only what tells new, unchanged, changed and stale rows apart (the
    /// analysis). The range lookup then leaves the provenance `None`
    /// (`same_import` false); the probe still reads it.
    Hashes,
}

/// A batch row whose key the organization has stored.
#[derive(Debug, Clone)]
pub(super) struct StoredKey {
    /// The batch row.
    pub row: usize,
    /// The file and row that last wrote the record; the range lookup reads
    /// them only for records the target's import wrote (`same_import`).
    pub file: Option<Uuid>,
    pub source_row: Option<i64>,
    /// The record's row hash; `None` when not known.
    pub hash: Option<i64>,
    /// Whether the batch row is older than the record (`source_updated_at`).
    pub stale: bool,
    /// Whether the target's own import last wrote the record (an earlier
    /// chunk or file of it: the row repeats a key of the import).
    pub same_import: bool,
}

/// The given batch rows whose key is stored, in one query: the file and
/// row that wrote each record, its row hash, whether the target's import
/// wrote it, and whether the batch row is stale against it. A chunk whose
/// keys lie densely within their range of the organization's keys (files
/// exported in key order, re-imports) reads that range in one index scan;
/// other chunks probe the key index row by row.
pub(super) async fn stored_keys(
    conn: &mut PgConnection,
    target: Target<'_>,
    parsed: &ParsedChunk,
    rows: &[usize],
    wanted: Wanted,
) -> Result<Vec<StoredKey>, StoreError> {
    if let Some(found) = key_range(conn, target, parsed, rows, wanted).await? {
        return Ok(found);
    }
    let first_key = target.def.key_columns.first().copied().unwrap_or_default();
    let first_values = parsed.texts(first_key, rows.iter().copied());
    if !keys_in_range(conn, target, first_key, &first_values).await? {
        return Ok(Vec::new());
    }
    probe_keys(conn, target, parsed, rows).await
}

/// Whether the organization has any record whose first key column falls
/// between the smallest and the largest of `values` (in the database's
/// collation). When it has none, no key of the chunk can exist.
async fn keys_in_range(
    conn: &mut PgConnection,
    target: Target<'_>,
    column: &str,
    values: &[Option<String>],
) -> Result<bool, StoreError> {
    let kind = sql_type(target.def, column);
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM (SELECT min(x::{kind}) lo, max(x::{kind}) hi FROM unnest($2::text[]) x) b
            JOIN {table} t ON t.organization_id = $1 AND t.{column} BETWEEN b.lo AND b.hi)",
        table = target.def.target_table,
    );
    Ok(sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(target.organization_id)
        .bind(values)
        .fetch_one(&mut *conn)
        .await?)
}

/// [`stored_keys`] by reading the organization's records whose key lies
/// between the chunk's smallest and largest (in the database's collation),
/// matched to the rows by their key's text. `None` when the type's key is
/// not one text column, or when the range holds more than twice as many
/// records as the chunk has rows (a sparse chunk: probing is cheaper).
async fn key_range(
    conn: &mut PgConnection,
    target: Target<'_>,
    parsed: &ParsedChunk,
    rows: &[usize],
    wanted: Wanted,
) -> Result<Option<Vec<StoredKey>>, StoreError> {
    let def = target.def;
    let [key] = def.key_columns else {
        return Ok(None);
    };
    if sql_type(def, key) != "text" {
        return Ok(None);
    }
    // The rows by key, sorted (borrowed from the chunk: no copy per row).
    let Some(column) = parsed.column(key) else {
        return Ok(Some(Vec::new()));
    };
    let mut by_key: Vec<(Cow<str>, usize)> = rows
        .iter()
        .filter_map(|&r| cell_str(column, r).map(|k| (k, r)))
        .collect();
    by_key.sort_unstable();
    let mut keys: Vec<&str> = by_key.iter().map(|(k, _)| k.as_ref()).collect();
    keys.dedup();
    if keys.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let limit = 2 * keys.len() as i64 + 1;
    let updated = if written_columns(def).contains(&SOURCE_UPDATED_AT) {
        "(extract(epoch FROM t.source_updated_at) * 1000000)::int8"
    } else {
        "NULL::int8"
    };
    // One row of arrays, not a row per record: a chunk's range holds tens of
    // thousands of records, and each row the driver streams costs more on
    // the client than its values do. The file and row that wrote a record
    // only for the records the target's own import wrote (the rows that
    // repeat a key of the import), and only when asked for: those arrays
    // are empty on a first load and on a re-import, and building and
    // sending a file and a row for every record of the range doubled what
    // the lookup cost; the analysis's comparison needs the hashes alone.
    let (provenance, read) = match wanted {
        Wanted::Provenance => (
            "array_agg(k) FILTER (WHERE s) import_keys, array_agg(f) FILTER (WHERE s) files,
             array_agg(r) FILTER (WHERE s) source_rows",
            ", t.source_file_id f, t.source_row r, t.source_import_id = $4 s",
        ),
        Wanted::Hashes => (
            "NULL::text[] import_keys, NULL::uuid[] files, NULL::int8[] source_rows",
            "",
        ),
    };
    let sql = format!(
        "SELECT count(*) count, array_agg(k) keys, array_agg(h) hashes, array_agg(u) updated,
                {provenance}
           FROM (SELECT t.{key} k, t.{ROW_HASH_COLUMN} h, {updated} u{read}
                   FROM (SELECT min(x) lo, max(x) hi FROM unnest($2::text[]) x) b
                   JOIN {table} t ON t.organization_id = $1 AND t.{key} BETWEEN b.lo AND b.hi
                  LIMIT $3) found",
        table = def.target_table,
    );
    let mut query = sqlx::query_as::<_, RangeArrays>(AssertSqlSafe(sql))
        .bind(target.organization_id)
        .bind(&keys)
        .bind(limit);
    if wanted == Wanted::Provenance {
        query = query.bind(target.import_id);
    }
    let range = query.fetch_one(&mut *conn).await?;
    if range.count >= limit {
        return Ok(None);
    }
    Ok(Some(range.matched(&by_key, updated_at(parsed))))
}

/// What [`key_range`] reads: one array per column, in the order of the
/// records; the file and row arrays follow `import_keys`, the keys of the
/// records the target's import wrote.
#[derive(sqlx::FromRow)]
struct RangeArrays {
    /// Records in the range, up to the lookup's limit.
    count: i64,
    keys: Option<Vec<String>>,
    hashes: Option<Vec<Option<i64>>>,
    updated: Option<Vec<Option<i64>>>,
    import_keys: Option<Vec<String>>,
    files: Option<Vec<Option<Uuid>>>,
    source_rows: Option<Vec<Option<i64>>>,
}

/// The value of array `a` at `i`.
fn at<T: Copy>(a: &Option<Vec<Option<T>>>, i: usize) -> Option<T> {
    a.as_ref().and_then(|a| a.get(i).copied().flatten())
}

impl RangeArrays {
    /// The batch rows whose key the range holds (`by_key`: the rows by key
    /// text, sorted), each with what its record says (`updated_at`: the
    /// rows' `source_updated_at`, when the chunk has one).
    fn matched(
        self,
        by_key: &[(Cow<str>, usize)],
        updated_at: Option<&TimestampMicrosecondArray>,
    ) -> Vec<StoredKey> {
        // The keys the target's import wrote, with the file and row that
        // wrote each (keys are unique within an organization).
        let written_by_import: std::collections::HashMap<String, (Option<Uuid>, Option<i64>)> =
            self.import_keys
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(j, k)| (k, (at(&self.files, j), at(&self.source_rows, j))))
                .collect();
        let mut found = Vec::new();
        // Where the previous record's rows ended: the range comes back in
        // the database's collation, which for most keys is the rows' byte
        // order too, so the next record's rows usually start there. One
        // comparison says so; otherwise a binary search finds them.
        let mut next = 0;
        for (i, k) in self.keys.unwrap_or_default().into_iter().enumerate() {
            let first = match by_key.get(next) {
                Some((mine, _))
                    if *mine == k && (next == 0 || by_key[next - 1].0.as_ref() < k.as_str()) =>
                {
                    next
                }
                _ => by_key.partition_point(|(mine, _)| mine.as_ref() < k.as_str()),
            };
            let rows = by_key[first..].iter().take_while(|(mine, _)| *mine == k);
            next = first + rows.clone().count();
            let provenance = written_by_import.get(&k);
            for &(_, row) in rows {
                let mine = updated_at.filter(|a| a.is_valid(row)).map(|a| a.value(row));
                found.push(StoredKey {
                    row,
                    file: provenance.and_then(|p| p.0),
                    source_row: provenance.and_then(|p| p.1),
                    hash: at(&self.hashes, i),
                    stale: matches!((mine, at(&self.updated, i)), (Some(m), Some(s)) if m < s),
                    same_import: provenance.is_some(),
                });
            }
        }
        found
    }
}

/// The chunk's `source_updated_at` column, when it has one.
fn updated_at(parsed: &ParsedChunk) -> Option<&TimestampMicrosecondArray> {
    parsed
        .batch
        .column_by_name(SOURCE_UPDATED_AT)
        .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
}

/// [`stored_keys`] by probing the key index once per row.
async fn probe_keys(
    conn: &mut PgConnection,
    target: Target<'_>,
    parsed: &ParsedChunk,
    rows: &[usize],
) -> Result<Vec<StoredKey>, StoreError> {
    let def = target.def;
    let keys = def.key_columns;
    let unnest: Vec<String> = ["$2::int8[]".to_string(), "$3::int8[]".to_string()]
        .into_iter()
        .chain((0..keys.len()).map(|i| format!("${}::text[]", i + 4)))
        .collect();
    let names: Vec<String> = ["i".to_string(), "updated".to_string()]
        .into_iter()
        .chain((0..keys.len()).map(|i| format!("k{i}")))
        .collect();
    let on: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("t.{k} = u.k{i}::{}", sql_type(def, k)))
        .collect();
    let stale = if written_columns(def).contains(&SOURCE_UPDATED_AT) {
        "COALESCE(timestamptz 'epoch' + u.updated * interval '1 microsecond' < t.source_updated_at, false)"
    } else {
        "false"
    };
    let sql = format!(
        "SELECT u.i, t.source_file_id, t.source_row, t.{ROW_HASH_COLUMN}, {stale},
                COALESCE(t.source_import_id = ${import}, false)
           FROM UNNEST({unnest}) AS u({names})
           JOIN {table} t ON t.organization_id = $1 AND {on}",
        unnest = unnest.join(", "),
        names = names.join(", "),
        table = def.target_table,
        on = on.join(" AND "),
        import = keys.len() + 4,
    );
    let indexes: Vec<i64> = rows.iter().map(|r| *r as i64).collect();
    let updated_at = updated_at(parsed);
    let updated: Vec<Option<i64>> = rows
        .iter()
        .map(|r| updated_at.filter(|a| a.is_valid(*r)).map(|a| a.value(*r)))
        .collect();
    let mut query = sqlx::query_as(AssertSqlSafe(sql))
        .bind(target.organization_id)
        .bind(indexes)
        .bind(updated);
    for k in keys {
        query = query.bind(parsed.texts(k, rows.iter().copied()));
    }
    type Probed = (i64, Option<Uuid>, Option<i64>, Option<i64>, bool, bool);
    let found: Vec<Probed> = query.bind(target.import_id).fetch_all(&mut *conn).await?;
    Ok(found
        .into_iter()
        .map(
            |(i, file, source_row, hash, stale, same_import)| StoredKey {
                row: i as usize,
                file,
                source_row,
                hash,
                stale,
                same_import,
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of a range matched to `rows` (key, batch row): each matched
    /// row with its record's hash, by row.
    fn matched(rows: &[(&'static str, usize)], range: &[&str]) -> Vec<(usize, Option<i64>)> {
        let mut by_key: Vec<(Cow<str>, usize)> =
            rows.iter().map(|(k, r)| (Cow::Borrowed(*k), *r)).collect();
        by_key.sort_unstable();
        let arrays = RangeArrays {
            count: range.len() as i64,
            keys: Some(range.iter().map(|k| k.to_string()).collect()),
            hashes: Some((1..=range.len() as i64).map(Some).collect()),
            updated: None,
            import_keys: None,
            files: None,
            source_rows: None,
        };
        let mut found: Vec<(usize, Option<i64>)> = arrays
            .matched(&by_key, None)
            .iter()
            .map(|k| (k.row, k.hash))
            .collect();
        found.sort_unstable();
        found
    }

    #[test]
    fn a_range_matches_every_row_once_whatever_order_the_database_returns_it_in() {
        // A key repeated by two rows, and a row whose key is not stored.
        let rows = [
            ("A-2", 0),
            ("A1", 1),
            ("a-1", 2),
            ("a-1", 3),
            ("b", 4),
            ("c", 5),
            ("d", 6),
        ];
        // The rows' byte order, with a record no row has ("a0").
        assert_eq!(
            matched(&rows, &["A-2", "A1", "a-1", "a0", "b", "c"]),
            vec![
                (0, Some(1)),
                (1, Some(2)),
                (2, Some(3)),
                (3, Some(3)),
                (4, Some(5)),
                (5, Some(6))
            ]
        );
        // A collation's order (case and punctuation weigh last), and one
        // that is neither: the same rows, each with its own record.
        assert_eq!(
            matched(&rows, &["a-1", "a0", "A1", "A-2", "b", "c"]),
            vec![
                (0, Some(4)),
                (1, Some(3)),
                (2, Some(1)),
                (3, Some(1)),
                (4, Some(5)),
                (5, Some(6))
            ]
        );
        assert_eq!(
            matched(&rows, &["c", "b", "a0", "a-1", "A1", "A-2"]),
            vec![
                (0, Some(6)),
                (1, Some(5)),
                (2, Some(4)),
                (3, Some(4)),
                (4, Some(2)),
                (5, Some(1))
            ]
        );
        assert!(matched(&rows, &[]).is_empty());
    }
}
