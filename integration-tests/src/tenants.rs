//! Many organizations, each with a small import: what the nightly flow of
//! journey 2 looks like to the service. Used by the broker-resource tests
//! (`tenants`) and the broker restart test.

use std::ops::Range;

use passare_imports_cli::client::Client;
use passare_imports_proto::v1 as pb;
use passare_imports_store::sqlx;

use crate::files::{self, NewFile};
use crate::{TestEnv, request_start};

/// A rolodex of three vendors, each named after `org`, so every
/// organization's rows are its own and can be counted exactly.
pub fn rolodex(org: i64) -> NewFile {
    let rows = format!(
        "name,category\nChapel of {org},church\nGarden {org},cemetery\nBlooms {org},florist\n"
    );
    NewFile::new("vendors.csv", "rolodex", rows.into_bytes())
}

/// Rows of [`rolodex`] stored for the organizations of `orgs`: (rows,
/// organizations that have them).
pub async fn rolodex_rows(env: &TestEnv, orgs: Range<i64>) -> anyhow::Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT count(*), count(DISTINCT organization_id) FROM rolodex_entries
          WHERE organization_id >= $1 AND organization_id < $2
            AND (name = 'Chapel of ' || organization_id
             OR name = 'Garden ' || organization_id
             OR name = 'Blooms ' || organization_id)",
    )
    .bind(orgs.start)
    .bind(orgs.end)
    .fetch_one(env.db.pool())
    .await?)
}

/// A draft of `org` with its small rolodex, started: StartImport queues its
/// analysis and returns, and a worker queues the import once analysed, as
/// for a service that uploads and starts without looking at the report.
pub async fn start_small(client: &mut Client, org: i64) -> anyhow::Result<String> {
    let (id, _) = files::draft_with_files(
        client,
        org,
        pb::FailurePolicy::ImportValidRows,
        &[rolodex(org)],
    )
    .await?;
    request_start(client, &id).await?;
    Ok(id)
}

/// Creates the organizations of `orgs` (names only: a rolodex needs no
/// setup) and starts a small import of each, through the API, with
/// `callers` clients side by side, each on its own connection and taking
/// every `callers`-th organization.
pub async fn start_many(env: &TestEnv, orgs: Range<i64>, callers: usize) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO organizations (id, name)
         SELECT g, 'Funeral Home ' || g FROM generate_series($1::bigint, $2::bigint) g",
    )
    .bind(orgs.start)
    .bind(orgs.end - 1)
    .execute(env.db.pool())
    .await?;
    let callers = callers.max(1);
    let mut clients = Vec::with_capacity(callers);
    for _ in 0..callers {
        clients.push(env.client().await?);
    }
    let orgs = &orgs;
    futures::future::try_join_all(
        clients
            .iter_mut()
            .enumerate()
            .map(|(i, client)| async move {
                for org in orgs.clone().skip(i).step_by(callers) {
                    start_small(client, org).await?;
                }
                anyhow::Ok(())
            }),
    )
    .await?;
    Ok(())
}
