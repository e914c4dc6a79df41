//! The request-wide warning of a type with `sum_within`: the amounts of a
//! referenced record (stored ones not replaced by this import, plus this
//! import's) must not exceed its total. Checked a page of records at a
//! time: those summed in memory, then those only in the scratch table.

use std::collections::HashMap;

use passare_imports_domain::catalog::{ImportTypeDef, RefTarget};
use passare_imports_domain::values::format_cents;
use passare_imports_domain::{FindingKind, RowProblem};
use passare_imports_store::{PgConnection, load, scratch};

use super::across::{EarlierRecords, Sums, cents};
use crate::error::ApiError;

/// Records checked together: the totals, stored sums and import rows of one
/// page are what the check holds at once.
const PAGE: usize = 5_000;

/// What the check of a type reads with.
pub(super) struct SumCheck<'a> {
    pub org: i64,
    pub def: &'static ImportTypeDef,
    pub sums: &'a Sums,
}

/// Referenced records whose amounts exceed their total: a warning on the last
/// row that added to each, with the index of its file, in file and row order.
pub(super) async fn sums_above_totals(
    conn: &mut PgConnection,
    check: SumCheck<'_>,
    earlier: &mut EarlierRecords,
) -> Result<Vec<(usize, RowProblem)>, ApiError> {
    let (def, sums) = (check.def, check.sums);
    let Some(type_key) = referenced_type(def) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut in_memory: Vec<String> = sums.by_record.keys().cloned().collect();
    in_memory.sort_unstable();
    for page in in_memory.chunks(PAGE) {
        out.extend(check_page(conn, &check, type_key, page.to_vec(), earlier).await?);
    }
    if sums.spilled > 0 {
        let mut after = String::new();
        loop {
            let refs = scratch::sum_references_after(conn, def.key, &after, PAGE).await?;
            let Some(last) = refs.last() else {
                break;
            };
            after = last.clone();
            let only_spilled: Vec<String> = refs
                .into_iter()
                .filter(|r| !sums.by_record.contains_key(r))
                .collect();
            out.extend(check_page(conn, &check, type_key, only_spilled, earlier).await?);
        }
    }
    // In file and row order, so the samples a finding shows are the first
    // rows, whatever order the records were summed in.
    out.sort_by_key(|(fi, p)| (*fi, p.row));
    Ok(out)
}

/// The type whose records `def`'s amounts add up against.
fn referenced_type(def: &ImportTypeDef) -> Option<&'static str> {
    let s = def.sum_within?;
    let r = def.references.iter().find(|r| r.column == s.reference)?;
    match r.target {
        RefTarget::Records { type_key } => Some(type_key),
        RefTarget::Setup { .. } => None,
    }
}

/// Checks one page of referenced records: their sums in memory and in the
/// scratch table, against their totals (stored, or from an earlier file).
async fn check_page(
    conn: &mut PgConnection,
    check: &SumCheck<'_>,
    type_key: &'static str,
    page: Vec<String>,
    earlier: &mut EarlierRecords,
) -> Result<Vec<(usize, RowProblem)>, ApiError> {
    let (def, sums) = (check.def, check.sums);
    let (Some(s), Some(r)) = (
        def.sum_within,
        def.references
            .iter()
            .find(|r| Some(r.column) == def.sum_within.map(|s| s.reference)),
    ) else {
        return Ok(Vec::new());
    };
    if page.is_empty() {
        return Ok(Vec::new());
    }
    let mut totals: HashMap<String, (i128, u64, usize)> = page
        .iter()
        .filter_map(|p| sums.by_record.get(p).map(|t| (p.clone(), *t)))
        .collect();
    let mut keys: Vec<(String, String)> = page
        .iter()
        .flat_map(|p| {
            sums.keys
                .get(p)
                .into_iter()
                .flatten()
                .map(move |k| (p.clone(), k.clone()))
        })
        .collect();
    if sums.spilled > 0 {
        let (spilled, spilled_keys) = scratch::sums_of(conn, def.key, &page).await?;
        for x in spilled {
            let entry = totals.entry(x.reference).or_default();
            entry.0 += x.cents;
            if (x.file_index, x.row) >= (entry.2, entry.1) {
                (entry.1, entry.2) = (x.row, x.file_index);
            }
        }
        keys.extend(spilled_keys);
    }
    let stored = load::stored_sums(conn, check.org, def, &page, &keys).await?;
    // The totals of records of earlier files held beyond the memory budget.
    earlier.fetch_only(conn, type_key, page).await?;
    let show = |c: i128| i64::try_from(c).map(format_cents).unwrap_or_default();
    let mut out = Vec::new();
    for (record, (sum, row, fi)) in &totals {
        let (total, before) = match stored.iter().find(|x| x.record == *record) {
            Some(x) => (x.total.clone(), cents(&x.stored).unwrap_or(0)),
            None => (earlier.column(type_key, record, s.total), 0),
        };
        let Some(total) = total.as_deref().and_then(cents) else {
            continue;
        };
        let all = before + sum;
        if all > total {
            let reason = format!(
                "{} of {} {record:?} add up to {}, above its {} of {}",
                def.display_name,
                r.describes,
                show(all),
                s.total,
                show(total)
            );
            out.push((
                *fi,
                RowProblem {
                    row: *row,
                    column: s.amount.into(),
                    value: show(all),
                    reason,
                    kind: FindingKind::Constraint,
                },
            ));
        }
    }
    Ok(out)
}
