//! Finishing a parsed chunk against what the organization has stored:
//! references resolved in one query per reference, keys the import already
//! wrote, flags that would give a group a second flagged record, and (for
//! analysis) the stored amounts a type's warnings add up.

use passare_imports_domain::FindingKind;
use passare_imports_domain::catalog::{self, ImportTypeDef, RefTarget, ReferenceDef, RowCheck};
use passare_imports_domain::chunk::{ParsedChunk, RefHit, ReferenceIndex, ReferenceLookup};
// Dynamic SQL below is assembled from the compiled catalog's table and
// column names, never from a request or a file.
use sqlx::{AssertSqlSafe, PgConnection, Row};

use super::target::{StoredKey, Target};
use crate::StoreError;

/// Looks up the records the chunk's references name, one query per
/// reference: setup by its matched column ignoring case, other types' records
/// by their key, with the columns the reference must agree with.
pub async fn reference_index(
    conn: &mut PgConnection,
    organization_id: i64,
    def: &ImportTypeDef,
    parsed: &ParsedChunk,
) -> Result<ReferenceIndex, StoreError> {
    let mut index = ReferenceIndex::default();
    for (r, values) in def.references.iter().zip(parsed.reference_values(def)) {
        if values.is_empty() {
            continue;
        }
        let sql = match r.target {
            RefTarget::Setup {
                table,
                match_column,
            } => format!(
                "SELECT id, lower({match_column}) AS value FROM {table}
                  WHERE organization_id = $1 AND lower({match_column}) = ANY($2)"
            ),
            RefTarget::Records { type_key } => {
                let target = catalog::find(type_key).ok_or_else(|| {
                    StoreError::Corrupt(format!("{} refers to unknown type {type_key}", def.key))
                })?;
                let key = target.key_columns.first().copied().unwrap_or("id");
                let agrees: String = r
                    .agrees
                    .iter()
                    .map(|(_, theirs)| format!(", t.{theirs}::text"))
                    .collect();
                // A join with the values, not `= ANY($2)`: a table loaded
                // moments ago has no statistics yet, and a scan of it
                // testing each record against thousands of values costs
                // seconds per chunk; the join probes the key index.
                format!(
                    "SELECT NULL::bigint AS id, t.{key}::text AS value{agrees}
                       FROM unnest($2::text[]) AS u(v)
                       JOIN {table} t ON t.organization_id = $1 AND t.{key} = u.v::{kind}",
                    table = target.target_table,
                    kind = super::sql_type(target, key),
                )
            }
        };
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(&values)
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            let agrees = (0..r.agrees.len())
                .map(|j| row.try_get::<Option<String>, _>(2 + j))
                .collect::<Result<Vec<_>, _>>()?;
            index.insert(
                r,
                &row.try_get::<String, _>("value")?,
                RefHit {
                    id: row.try_get("id")?,
                    agrees,
                },
            );
        }
    }
    Ok(index)
}

/// Finishes a parsed chunk against what the organization has stored:
/// resolves its references (in the database, else through `earlier`, the
/// records of earlier files of the same import), fails repeated keys and
/// flags, and checks flags against stored records.
pub async fn check_against_stored(
    conn: &mut PgConnection,
    organization_id: i64,
    def: &ImportTypeDef,
    parsed: &mut ParsedChunk,
    earlier: Option<&dyn ReferenceLookup>,
) -> Result<(), StoreError> {
    // The lookups probe the tables' indexes whatever their statistics say
    // (see `turn::probing`); the transaction only reads.
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    super::turn::probing(&mut tx).await?;
    let index = reference_index(&mut tx, organization_id, def, parsed).await?;
    struct Either<'a>(ReferenceIndex, Option<&'a dyn ReferenceLookup>);
    impl ReferenceLookup for Either<'_> {
        fn find(&self, r: &ReferenceDef, value: &str) -> Option<RefHit> {
            self.0
                .find(r, value)
                .or_else(|| self.1.and_then(|e| e.find(r, value)))
        }
    }
    parsed
        .finish(def, &Either(index, earlier))
        .map_err(|e| StoreError::Corrupt(format!("finishing a parsed chunk: {e}")))?;
    check_stored_flags(&mut tx, organization_id, def, parsed).await?;
    tx.commit().await?;
    Ok(())
}

/// Fails the rows whose key an earlier chunk or file of the same import
/// already wrote (`found` by the chunk write's key lookup, under the write
/// fence): a key repeated within an import is a duplicate (as the analysis
/// reports it), never a silent overwrite of the earlier row.
pub(super) fn fail_repeated_in_import(
    target: Target<'_>,
    parsed: &mut ParsedChunk,
    found: &[StoredKey],
) {
    let def = target.def;
    let keys = parsed.keys(def);
    for stored in found.iter().filter(|k| k.same_import) {
        let (i, file, row) = (stored.row, stored.file, stored.source_row);
        let Some(key) = keys.get(i) else {
            continue;
        };
        let (kind, reason) = if file == Some(target.file_id) {
            (
                FindingKind::DuplicateInFile,
                format!(
                    "duplicate key: the same key is already at row {}",
                    row.unwrap_or_default()
                ),
            )
        } else {
            (
                FindingKind::DuplicateInRequest,
                format!(
                    "duplicate key: the same key was loaded from row {} of an earlier file of this import",
                    row.unwrap_or_default()
                ),
            )
        };
        parsed.fail(
            i,
            kind,
            &def.key_columns.join("+"),
            passare_imports_domain::excerpt(&key.join("+")),
            reason,
        );
    }
}

/// Fails the rows that would give a group a second flagged record (a second
/// next of kin of a case) next to one already stored under another key.
async fn check_stored_flags(
    conn: &mut PgConnection,
    organization_id: i64,
    def: &ImportTypeDef,
    parsed: &mut ParsedChunk,
) -> Result<(), StoreError> {
    for check in def.row_checks {
        let RowCheck::OneFlaggedPer { group, flag } = *check else {
            continue;
        };
        let flags = parsed.texts(flag, 0..parsed.batch.num_rows());
        let flagged: Vec<usize> = (0..parsed.batch.num_rows())
            .filter(|i| parsed.valid[*i] && flags[*i].as_deref() == Some("true"))
            .collect();
        let flagged_groups = parsed.texts(group, flagged.iter().copied());
        let mut groups: Vec<String> = flagged_groups.iter().flatten().cloned().collect();
        if groups.is_empty() {
            continue;
        }
        groups.sort_unstable();
        groups.dedup();
        let key = def
            .key_columns
            .iter()
            .map(|k| format!("t.{k}::text"))
            .collect::<Vec<_>>()
            .join(" || '+' || ");
        // Joined with the groups, as the references are (see there).
        let sql = format!(
            "SELECT t.{group}::text AS g, {key} AS k
               FROM unnest($2::text[]) AS u(v)
               JOIN {table} t ON t.organization_id = $1 AND t.{group} = u.v::{kind}
              WHERE t.{flag}",
            table = def.target_table,
            kind = super::sql_type(def, group),
        );
        let stored: Vec<(String, String)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(&groups)
            .fetch_all(&mut *conn)
            .await?;
        let mut by_group: std::collections::HashMap<&str, Vec<&str>> =
            std::collections::HashMap::new();
        for (g, k) in &stored {
            by_group.entry(g).or_default().push(k);
        }
        let keys = parsed.keys(def);
        for (i, g) in flagged.into_iter().zip(flagged_groups) {
            let (Some(g), Some(k)) = (g, keys.get(i)) else {
                continue;
            };
            let k = k.join("+");
            let others = by_group
                .get(g.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            if let Some(other) = others.iter().find(|sk| **sk != k) {
                parsed.fail(
                    i,
                    FindingKind::Constraint,
                    flag,
                    "true".into(),
                    format!("{group} {g:?} already has {flag}: {other}"),
                );
            }
        }
    }
    Ok(())
}

/// Stored amounts of `def` against the records its `sum_within` warning
/// reads: per referenced record, its total and the sum of the stored
/// amounts that rows of this import (`replaced`: reference and key) do not
/// replace.
#[derive(Debug, Clone)]
pub struct StoredSum {
    pub record: String,
    pub total: Option<String>,
    pub stored: String,
}

/// See [`StoredSum`]. `records` are the referenced records' keys.
pub async fn stored_sums(
    conn: &mut PgConnection,
    organization_id: i64,
    def: &ImportTypeDef,
    records: &[String],
    replaced: &[(String, String)],
) -> Result<Vec<StoredSum>, StoreError> {
    let Some(s) = def.sum_within else {
        return Ok(Vec::new());
    };
    let Some(referenced) = def
        .references
        .iter()
        .find(|r| r.column == s.reference)
        .and_then(|r| match r.target {
            RefTarget::Records { type_key } => catalog::find(type_key),
            RefTarget::Setup { .. } => None,
        })
    else {
        return Ok(Vec::new());
    };
    let ref_key = referenced.key_columns.first().copied().unwrap_or_default();
    let own_key: String = def
        .key_columns
        .iter()
        .map(|k| format!("p.{k}"))
        .collect::<Vec<_>>()
        .join(" || '+' || ");
    let (refs, keys): (Vec<String>, Vec<String>) = replaced.iter().cloned().unzip();
    let sql = format!(
        // The records joined with the chunk's references (see
        // `reference_index`), and the replaced rows as a hashed `NOT IN`
        // built once per statement rather than scanned per stored amount.
        "SELECT t.{ref_key}::text AS record, t.{total}::text AS total,
                (SELECT COALESCE(sum(p.{amount}), 0)::text FROM {own} p
                  WHERE p.organization_id = $1 AND p.{reference} = t.{ref_key}
                    AND COALESCE((p.{reference}::text, {own_key}) NOT IN
                          (SELECT x.r, x.k FROM unnest($3::text[], $4::text[]) AS x(r, k)), true)
                ) AS stored
           FROM unnest($2::text[]) AS u(v)
           JOIN {table} t ON t.organization_id = $1 AND t.{ref_key} = u.v::{kind}",
        total = s.total,
        amount = s.amount,
        reference = s.reference,
        own = def.target_table,
        table = referenced.target_table,
        kind = super::sql_type(referenced, ref_key),
    );
    let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(organization_id)
        .bind(records)
        .bind(&refs)
        .bind(&keys)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(record, total, stored)| StoredSum {
            record,
            total,
            stored,
        })
        .collect())
}
