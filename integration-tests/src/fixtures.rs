//! Test data: generated Cases files (deterministic per seed) and the rows
//! they hold, as tests compare them with what was stored; and drafts of a
//! test's service with one such file uploaded. Drafts with files of other
//! types are in `files`.

use anyhow::Context;
use passare_imports_cli::client::{self, Client};
use passare_imports_proto::v1 as pb;

pub use passare_imports_cli::generate;

use crate::files;
use crate::test_env::TestEnv;

/// One Cases record as tests compare it: the 13 columns of
/// [`generate::CASES_HEADER`] in that order, dates as `YYYY-MM-DD`, a missing
/// value as the empty string.
pub type CaseValues = [String; 13];

/// A Cases CSV of `rows` generated rows (deterministic for `seed`).
pub fn cases_csv(rows: u64, seed: u64) -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cases.csv");
    generate::write_cases(&path, rows, seed)?;
    Ok(std::fs::read(path)?)
}

/// A date of a generated file (`YYYY-MM-DD` or `M/D/YYYY`) as `YYYY-MM-DD`.
pub fn iso_date(text: &str) -> String {
    let parts: Vec<&str> = text.split('/').collect();
    match parts.as_slice() {
        [m, d, y] => format!(
            "{y}-{:02}-{:02}",
            m.parse::<u32>().unwrap_or_default(),
            d.parse::<u32>().unwrap_or_default()
        ),
        _ => text.to_string(),
    }
}

/// A row as written to a file, with its dates as stored.
pub fn normalized(row: &CaseValues) -> CaseValues {
    let mut out = row.clone();
    for i in [5, 6, 12] {
        out[i] = iso_date(&out[i]);
    }
    out
}

/// The rows [`cases_csv`]`(rows, seed)` holds, in file order, as written
/// (dates not normalized; see [`normalized`]).
pub fn generated_rows(rows: u64, seed: u64) -> Vec<CaseValues> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (1..=rows)
        .map(|i| generate::case_row(&mut rng, i))
        .collect()
}

/// A Cases CSV of the given rows (whose values hold no delimiter or quote).
pub fn cases_csv_of(rows: &[CaseValues]) -> Vec<u8> {
    let mut out = generate::CASES_HEADER.join(",");
    out.push('\n');
    for r in rows {
        out.push_str(&r.join(","));
        out.push('\n');
    }
    out.into_bytes()
}

impl TestEnv {
    /// A draft import of `org` with one generated Cases file of `rows` rows
    /// (deterministic for `seed`), named `cases-{rows}-{seed}.csv`; returns
    /// the import id.
    pub async fn generated_draft(
        &self,
        client: &mut Client,
        org: i64,
        policy: pb::FailurePolicy,
        rows: u64,
        seed: u64,
    ) -> anyhow::Result<String> {
        let name = format!("cases-{rows}-{seed}.csv");
        let (id, _) = self
            .draft_with_file(client, org, policy, &name, &cases_csv(rows, seed)?)
            .await?;
        Ok(id)
    }

    /// Creates an import, uploads `csv` as a Cases file (through the CLI's
    /// upload, from a file on disk); returns the import id and the file.
    pub async fn draft_with_file(
        &self,
        client: &mut Client,
        org: i64,
        policy: pb::FailurePolicy,
        name: &str,
        csv: &[u8],
    ) -> anyhow::Result<(String, pb::ImportFile)> {
        let import_id = files::create_draft(client, org, policy).await?;
        let dir = self.sources.path().join(uuid::Uuid::new_v4().to_string());
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(name);
        std::fs::write(&path, csv)?;
        let file = client::upload(client, &import_id, &path, "cases", None).await?;
        Ok((import_id, file))
    }

    /// Starts a cases import of `csv` whose data row `row` (1-based) names a
    /// location, Annex Chapel, that exists when the import is analysed and
    /// is gone when the row's chunk loads: the analysis finds nothing
    /// blocking, and the load fails at that row after writing what came
    /// before. Returns the import and its file.
    pub async fn started_with_a_late_failure(
        &self,
        client: &mut Client,
        org: i64,
        policy: pb::FailurePolicy,
        csv: &[u8],
        row: usize,
    ) -> anyhow::Result<(String, pb::ImportFile)> {
        const ANNEX: &str = "Annex Chapel";
        sqlx::query("INSERT INTO locations (organization_id, name) VALUES ($1, $2)")
            .bind(org)
            .bind(ANNEX)
            .execute(self.db.pool())
            .await?;
        let csv = with_field(csv, row, 10, ANNEX)?;
        let (id, file) = self
            .draft_with_file(client, org, policy, "cases-update.csv", &csv)
            .await?;
        let report = files::analyze(client, &id).await?;
        anyhow::ensure!(!report.blocking, "the analysis blocks: {report:#?}");
        sqlx::query("DELETE FROM locations WHERE organization_id = $1 AND name = $2")
            .bind(org)
            .bind(ANNEX)
            .execute(self.db.pool())
            .await?;
        crate::calls::start(client, &id).await?;
        Ok((id, file))
    }
}

/// Replaces field `field` of data row `row` (1-based) of a generated CSV.
pub fn with_field(csv: &[u8], row: usize, field: usize, value: &str) -> anyhow::Result<Vec<u8>> {
    let text = String::from_utf8(csv.to_vec())?;
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let line = lines.get_mut(row).context("no such row")?;
    let mut fields: Vec<String> = line.split(',').map(String::from).collect();
    *fields.get_mut(field).context("no such field")? = value.to_string();
    *line = fields.join(",");
    Ok((lines.join("\n") + "\n").into_bytes())
}
