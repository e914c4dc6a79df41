//! The request-wide warning of a type with `sum_within`: the amounts of a
//! referenced record (stored ones not replaced by this import, plus this
//! import's) must not exceed its total.

use passare_imports_domain::catalog::{ImportTypeDef, RefTarget};
use passare_imports_domain::values::format_cents;
use passare_imports_domain::{FindingKind, RowProblem};
use passare_imports_store::{PgConnection, load};

use super::across::{EarlierRecords, Sums, cents};
use crate::error::ApiError;

/// Referenced records whose amounts exceed their total: a warning on the last
/// row that added to each, with the index of its file.
pub(super) async fn sums_above_totals(
    conn: &mut PgConnection,
    org: i64,
    def: &'static ImportTypeDef,
    sums: &Sums,
    earlier: &mut EarlierRecords,
) -> Result<Vec<(usize, RowProblem)>, ApiError> {
    let Some(s) = def.sum_within else {
        return Ok(Vec::new());
    };
    let Some(r) = def.references.iter().find(|r| r.column == s.reference) else {
        return Ok(Vec::new());
    };
    let RefTarget::Records { type_key } = r.target else {
        return Ok(Vec::new());
    };
    let records: Vec<String> = sums.by_record.keys().cloned().collect();
    let stored = load::stored_sums(conn, org, def, &records, &sums.keys).await?;
    // The totals of records of earlier files held beyond the memory budget.
    earlier.fetch_keys(conn, type_key, records).await?;
    let show = |c: i128| i64::try_from(c).map(format_cents).unwrap_or_default();
    let mut out = Vec::new();
    for (record, (sum, row, fi)) in &sums.by_record {
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
    // In file and row order, so the samples a finding shows are the first
    // rows, whatever order the records were summed in.
    out.sort_by_key(|(fi, p)| (*fi, p.row));
    Ok(out)
}
