//! The sample file of every import type (in `samples/`) imports in one
//! request, in dependency order, and the stored values are exactly the
//! normalised inputs listed in `samples/expected/` (one TSV per type: the
//! type's written columns as PostgreSQL prints them, `\N` for null).

use std::path::PathBuf;

use anyhow::Context;
use passare_imports_cli::client;
use passare_imports_domain::catalog::{self, CATALOG};
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use passare_imports_store::load::written_columns;

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples")
}

/// The stored rows of a type in the organization, as TSV lines.
async fn stored(env: &TestEnv, def: &catalog::ImportTypeDef) -> anyhow::Result<Vec<String>> {
    let columns = written_columns(def);
    let sql = format!(
        "SELECT concat_ws(E'\\t', {}) FROM {} WHERE organization_id = 1042 ORDER BY {}",
        columns
            .iter()
            .map(|c| format!("COALESCE({c}::text, '\\N')"))
            .collect::<Vec<_>>()
            .join(", "),
        def.target_table,
        def.key_columns.join(", ")
    );
    let mut conn = env.db.pool().acquire().await?;
    passare_imports_store::sqlx::query("SET TIME ZONE 'UTC'")
        .execute(&mut *conn)
        .await?;
    let rows: Vec<String> =
        passare_imports_store::sqlx::query_scalar(passare_imports_store::sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await?;
    let mut out = vec![columns.join("\t")];
    out.extend(rows);
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_imports_with_exactly_its_normalised_values() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    let import = client
        .create_import(pb::CreateImportRequest {
            organization_id: "1042".into(),
            failure_policy: pb::FailurePolicy::StopOnFirstError as i32,
            note: "samples".into(),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .import
        .context("no import")?;
    // Uploaded in reverse loading order: the service loads them by dependency.
    for def in CATALOG.iter().rev() {
        let path = samples().join(format!("{}.csv", def.key));
        let file = client::upload(&mut client, &import.id, &path, def.key, None).await?;
        assert_eq!(
            file.state,
            pb::FileState::Ready as i32,
            "{}: {:?}",
            def.key,
            file.problems
        );
    }
    let report = files::analyze(&mut client, &import.id).await?;
    let findings: Vec<String> = report
        .files
        .iter()
        .flat_map(|f| {
            f.findings
                .iter()
                .map(move |x| format!("{}: {}", f.file_name, x.message))
        })
        .chain(report.findings.iter().map(|x| x.message.clone()))
        .collect();
    assert!(findings.is_empty(), "{findings:#?}");
    assert!(!report.blocking);
    let order: Vec<&str> = report
        .files
        .iter()
        .map(|f| f.import_type.as_str())
        .collect();
    let expected_order: Vec<&str> = CATALOG.iter().map(|t| t.key).collect();
    assert_eq!(order, expected_order, "files are analysed in loading order");

    start(&mut client, &import.id).await?;
    let done = wait_terminal(&mut client, &import.id).await?;
    assert_eq!(
        done.state,
        pb::ImportState::Completed as i32,
        "{:?}",
        done.error
    );
    let p = done.progress.unwrap_or_default();
    assert_eq!(p.rows_failed, 0);

    let mut mismatches = Vec::new();
    for def in CATALOG {
        let expected_path = samples().join("expected").join(format!("{}.tsv", def.key));
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        let expected: Vec<&str> = expected.lines().collect();
        let actual = stored(&env, def).await?;
        // After a deliberate change of samples or normalisation, rewrite the
        // expected files with PASSARE_BLESS_SAMPLES=1 and review the diff.
        if std::env::var_os("PASSARE_BLESS_SAMPLES").is_some() {
            std::fs::write(&expected_path, format!("{}\n", actual.join("\n")))?;
            continue;
        }
        if expected != actual {
            mismatches.push(format!(
                "{}:\nexpected\n{}\nstored\n{}",
                def.key,
                expected.join("\n"),
                actual.join("\n")
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
    env.finish().await
}
