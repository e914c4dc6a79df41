//! The dry run: every kind of finding located with its severity, missing
//! organization setup, references to earlier files of the same import,
//! analysis that writes nothing but predicts what the import will do, stale
//! reports, and the catalog.

use passare_imports_integration_tests::files::{self, NewFile};
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use passare_imports_store::organizations::OrgSetup;
use tonic_types::StatusExt;

fn severity(f: &pb::Finding) -> pb::Severity {
    pb::Severity::try_from(f.severity).unwrap_or(pb::Severity::Unspecified)
}

/// One expected finding: where, what, how many, and the first sample.
struct Expected {
    file: &'static str,
    kind: pb::FindingKind,
    count: i64,
    row: i64,
    column: &'static str,
    value: &'static str,
    /// Severity when the import stops at the first error, and when it
    /// imports the valid rows.
    stopping: pb::Severity,
    valid_rows: pb::Severity,
}

const BLOCKING: pb::Severity = pb::Severity::Blocking;
const WARNING: pb::Severity = pb::Severity::Warning;

/// Files that between them raise every kind of finding (with the
/// organization lacking GL accounts for the price list).
fn files_with_every_finding() -> Vec<NewFile> {
    vec![
        NewFile::new(
            "cases.csv",
            "cases",
            "case_number,deceased_first_name,deceased_last_name,date_of_birth,date_of_death,favourite_colour\n\
             C1,Ann,Lee,1950-01-01,2020-01-01,blue\n\
             C2,Bob,Ray,not a date,2020-01-01,red\n\
             C3,Cy,Do,2000-01-01,1990-01-01,\n\
             C1,Ann,Again,1950-01-01,2020-01-01,\n",
        ),
        NewFile::new(
            "more-cases.csv",
            "cases",
            "case_number,deceased_first_name,deceased_last_name\nC4,Di,Fu\nC1,Ann,Lee\n",
        ),
        NewFile::new(
            "basic.csv",
            "basic_information",
            "case_number,sex,ssn\nC1,F,999-45-6789\nC9,M,123-45-6789\n",
        ),
        // `relationship` is required.
        NewFile::new(
            "family.csv",
            "family_and_friends",
            "case_number,first_name,last_name\nC1,Eve,Lee\n",
        ),
        NewFile::new(
            "prices.csv",
            "price_list",
            "item_code,name,category,price\nP1,Oak Casket,merchandise,2499.00\n",
        ),
    ]
}

const EXPECTED: &[Expected] = &[
    Expected {
        file: "cases.csv",
        kind: pb::FindingKind::UnknownColumn,
        count: 1,
        row: 0,
        column: "favourite_colour",
        value: "",
        stopping: WARNING,
        valid_rows: WARNING,
    },
    Expected {
        file: "cases.csv",
        kind: pb::FindingKind::TypeError,
        count: 1,
        row: 2,
        column: "date_of_birth",
        value: "not a date",
        stopping: BLOCKING,
        valid_rows: WARNING,
    },
    Expected {
        file: "cases.csv",
        kind: pb::FindingKind::Constraint,
        count: 1,
        row: 3,
        column: "date_of_death",
        value: "1990-01-01",
        stopping: BLOCKING,
        valid_rows: WARNING,
    },
    Expected {
        file: "cases.csv",
        kind: pb::FindingKind::DuplicateInFile,
        count: 1,
        row: 4,
        column: "case_number",
        value: "C1",
        stopping: BLOCKING,
        valid_rows: WARNING,
    },
    Expected {
        file: "more-cases.csv",
        kind: pb::FindingKind::DuplicateInRequest,
        count: 1,
        row: 2,
        column: "case_number",
        value: "C1",
        stopping: BLOCKING,
        valid_rows: WARNING,
    },
    // The SSN is masked to its last four characters.
    Expected {
        file: "basic.csv",
        kind: pb::FindingKind::TypeError,
        count: 1,
        row: 1,
        column: "ssn",
        value: "*******6789",
        stopping: BLOCKING,
        valid_rows: WARNING,
    },
    Expected {
        file: "basic.csv",
        kind: pb::FindingKind::UnresolvedReference,
        count: 1,
        row: 2,
        column: "case_number",
        value: "C9",
        stopping: BLOCKING,
        valid_rows: WARNING,
    },
    Expected {
        file: "family.csv",
        kind: pb::FindingKind::MissingColumn,
        count: 1,
        row: 0,
        column: "relationship",
        value: "",
        stopping: BLOCKING,
        valid_rows: BLOCKING,
    },
];

fn check_findings(report: &pb::AnalysisReport, policy: pb::FailurePolicy) -> anyhow::Result<()> {
    let stopping = policy == pb::FailurePolicy::StopOnFirstError;
    for e in EXPECTED {
        let what = format!("{policy:?} {} {:?}", e.file, e.kind);
        let f = files::finding(report, e.file, e.kind)
            .ok_or_else(|| anyhow::anyhow!("{what}: no such finding in {report:#?}"))?;
        let wanted = if stopping { e.stopping } else { e.valid_rows };
        assert_eq!(severity(f), wanted, "{what}: {f:?}");
        assert_eq!(f.count, e.count, "{what}: {f:?}");
        assert_eq!(f.samples.len(), e.count as usize, "{what}: {f:?}");
        let sample = &f.samples[0];
        assert_eq!(
            (sample.row, sample.column.as_str(), sample.value.as_str()),
            (e.row, e.column, e.value),
            "{what}: {f:?}"
        );
        assert_eq!(sample.kind, e.kind as i32, "{what}: {sample:?}");
        assert!(!f.message.is_empty(), "{what}: {f:?}");
    }
    // Nothing but the expected findings, file by file.
    for name in [
        "cases.csv",
        "more-cases.csv",
        "basic.csv",
        "family.csv",
        "prices.csv",
    ] {
        let mut found = files::finding_kinds(report, name);
        found.sort();
        let mut wanted: Vec<String> = EXPECTED
            .iter()
            .filter(|e| e.file == name)
            .map(|e| e.kind.as_str_name().to_string())
            .collect();
        wanted.sort();
        assert_eq!(found, wanted, "{policy:?} {name}");
    }

    let missing = files::org_finding(report, pb::FindingKind::MissingPrerequisite)
        .ok_or_else(|| anyhow::anyhow!("no missing prerequisite in {report:#?}"))?;
    assert_eq!(severity(missing), BLOCKING);
    assert_eq!(missing.count, 1);
    assert_eq!(missing.file_names, vec!["prices.csv".to_string()]);
    assert_eq!(
        missing.message,
        "organization 7 has no GL account; needed by prices.csv"
    );
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert!(report.blocking, "file findings always block");
    assert!(!report.stale);

    let cases = files::file_analysis(report, "cases.csv")?;
    assert_eq!((cases.rows, cases.rows_failing), (4, 3));
    assert_eq!(files::file_analysis(report, "basic.csv")?.rows_failing, 2);
    // The full SSN appears nowhere in the report.
    assert!(!format!("{report:?}").contains("999-45"), "{report:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_finding_kind_is_located_with_its_severity_under_each_policy() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    // Locations and staff, but no GL account: the price list cannot load.
    env.organization_with(
        7,
        OrgSetup {
            locations: &["Main Chapel"],
            staff: &[("director@riverside.example", "Dana Director")],
            gl_accounts: &[],
            bank_accounts: &[],
        },
    )
    .await?;
    let mut client = env.client().await?;

    let mut imports = Vec::new();
    for policy in [
        pb::FailurePolicy::StopOnFirstError,
        pb::FailurePolicy::ImportValidRows,
    ] {
        let (id, uploaded) =
            files::draft_with_files(&mut client, 7, policy, &files_with_every_finding()).await?;
        let family = uploaded
            .iter()
            .find(|f| f.name == "family.csv")
            .ok_or_else(|| anyhow::anyhow!("no family.csv"))?;
        assert_eq!(family.state, pb::FileState::Invalid as i32, "{family:?}");
        let report = files::analyze(&mut client, &id).await?;
        check_findings(&report, policy)?;
        // GetImport shows the same stored report.
        let shown = get(&mut client, &id).await?.analysis;
        assert_eq!(
            shown.as_ref().map(|a| &a.files),
            Some(&report.files),
            "{policy:?}"
        );
        imports.push((policy, id, uploaded));
    }

    // Without the file-level problems, the row findings block the import
    // that stops at the first error, and name every failing row...
    for (policy, id, uploaded) in &imports {
        for f in uploaded
            .iter()
            .filter(|f| f.name == "family.csv" || f.name == "prices.csv")
        {
            client
                .remove_file(pb::RemoveFileRequest {
                    import_id: id.clone(),
                    file_id: f.id.clone(),
                })
                .await?;
        }
        let report = files::analyze(&mut client, id).await?;
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert_eq!(
            report.blocking,
            *policy == pb::FailurePolicy::StopOnFirstError,
            "{policy:?}"
        );
    }
    let (_, stopping, _) = &imports[0];
    let refused = start(&mut client, stopping)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an import with blocking findings started"))?;
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let details = refused.get_error_details();
    assert_eq!(
        details.error_info().map(|e| e.reason.as_str()),
        Some("BLOCKING_FINDINGS")
    );
    let violations = details
        .bad_request()
        .map(|b| b.field_violations.clone())
        .unwrap_or_default();
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "files[cases.csv].rows[2].date_of_birth",
            "files[cases.csv].rows[3].date_of_death",
            "files[cases.csv].rows[4].case_number",
            "files[more-cases.csv].rows[2].case_number",
            "files[basic.csv].rows[1].ssn",
            "files[basic.csv].rows[2].case_number",
        ]
    );
    let ssn = &violations[4].description;
    assert!(
        ssn.starts_with("type_error: \"*******6789\""),
        "masked in the error too: {ssn}"
    );
    assert!(!format!("{refused:?}").contains("999-45"), "{refused:?}");
    assert_eq!(
        state(&get(&mut client, stopping).await?),
        pb::ImportState::Draft
    );

    // ...while the import of valid rows starts and records them as row errors.
    let (_, valid_rows, _) = &imports[1];
    start(&mut client, valid_rows).await?;
    let done = wait_terminal(&mut client, valid_rows).await?;
    assert_eq!(
        state(&done),
        pb::ImportState::CompletedWithErrors,
        "{done:?}"
    );
    let p = done.progress.unwrap_or_default();
    // cases.csv: C1; more-cases.csv: C4; basic.csv: nothing. (How many rows
    // failed is left to the test of keys repeated across files below: the
    // duplicate of more-cases.csv row 2 is written today.)
    assert_eq!((p.rows_processed, p.rows_created), (8, 2), "{p:?}");
    let stored: Vec<(String, String)> = passare_imports_store::sqlx::query_as(
        "SELECT case_number, deceased_last_name FROM cases WHERE organization_id = 7 ORDER BY case_number",
    )
    .fetch_all(env.db.pool())
    .await?;
    assert_eq!(
        stored,
        vec![
            ("C1".to_string(), "Lee".to_string()),
            ("C4".to_string(), "Fu".to_string())
        ]
    );
    assert_eq!(
        count(&env.db, "SELECT count(*) FROM case_basic_information").await?,
        0
    );
    let masked = count(
        &env.db,
        "SELECT count(*) FROM row_errors WHERE column_name = 'ssn' AND value = '*******6789'",
    )
    .await?;
    assert_eq!(masked, 1, "the row error keeps the SSN masked");
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM row_errors WHERE value LIKE '%999-45%'"
        )
        .await?,
        0
    );
    env.finish().await
}

/// A key that repeats an earlier chunk of the same file, or an earlier file
/// of the import, fails at load exactly as the analysis said: the earlier
/// row stays as it was and the repeat is a row error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_repeated_across_chunks_and_files_fail_at_load_as_the_analysis_says()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 2,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let (id, _) = files::draft_with_files(
        &mut client,
        1042,
        pb::FailurePolicy::ImportValidRows,
        &[
            // Row 3 is the second chunk of the file.
            NewFile::new(
                "first.csv",
                "cases",
                "case_number,deceased_first_name,deceased_last_name,date_of_birth\n\
                 D1,Ann,Lee,1950-01-01\n\
                 D2,Bob,Ray,1951-01-01\n\
                 D1,Ann,Again,\n",
            ),
            NewFile::new(
                "second.csv",
                "cases",
                "case_number,deceased_first_name,deceased_last_name\nD3,Cy,Do\nD2,Bobby,Ray\n",
            ),
        ],
    )
    .await?;
    let report = files::analyze(&mut client, &id).await?;
    let sample = |file: &str, kind: pb::FindingKind| {
        files::finding(&report, file, kind).map(|f| {
            (
                severity(f),
                f.count,
                f.samples
                    .first()
                    .map(|s| (s.row, s.column.clone(), s.value.clone())),
            )
        })
    };
    let in_file = sample("first.csv", pb::FindingKind::DuplicateInFile);
    let in_request = sample("second.csv", pb::FindingKind::DuplicateInRequest);
    let failing = (report.rows_failing, report.would_create);
    start(&mut client, &id).await?;
    let done = wait_terminal(&mut client, &id).await?;
    let p = done.progress.unwrap_or_default();
    let stored: Vec<(String, String, Option<String>)> = passare_imports_store::sqlx::query_as(
        "SELECT case_number, deceased_first_name, date_of_birth::text
           FROM cases WHERE organization_id = 1042 ORDER BY case_number",
    )
    .fetch_all(env.db.pool())
    .await?;
    let row_errors = count(&env.db, "SELECT count(*) FROM row_errors").await?;
    // Each repeat names the row that wrote its key first.
    let reasons: Vec<(String, i64, String)> = passare_imports_store::sqlx::query_as(
        "SELECT f.file_name, e.row_number, e.reason
           FROM row_errors e JOIN import_files f ON f.id = e.file_id
          ORDER BY f.file_name, e.row_number",
    )
    .fetch_all(env.db.pool())
    .await?;
    env.finish().await?;

    assert_eq!(
        reasons,
        vec![
            (
                "first.csv".to_string(),
                3,
                "duplicate key: the same key is already at row 1".to_string()
            ),
            (
                "second.csv".to_string(),
                2,
                "duplicate key: the same key was loaded from row 2 of an earlier file of this import"
                    .to_string()
            ),
        ]
    );
    assert_eq!(
        in_file,
        Some((WARNING, 1, Some((3, "case_number".into(), "D1".into()))))
    );
    assert_eq!(
        in_request,
        Some((WARNING, 1, Some((2, "case_number".into(), "D2".into()))))
    );
    assert_eq!(failing, (2, 3), "2 rows fail, 3 are created");
    // The load must do what the analysis said.
    let s = |n: &str, f: &str, d: Option<&str>| (n.to_string(), f.to_string(), d.map(String::from));
    assert_eq!(
        stored,
        vec![
            s("D1", "Ann", Some("1950-01-01")),
            s("D2", "Bob", Some("1951-01-01")),
            s("D3", "Cy", None),
        ],
        "a repeated key was written over the earlier row ({:?}, {p:?}, {row_errors} row errors)",
        state(&done)
    );
    assert_eq!(
        (p.rows_created, p.rows_updated, p.rows_failed, row_errors),
        (3, 0, 2, 2),
        "{p:?}"
    );
    assert_eq!(state(&done), pb::ImportState::CompletedWithErrors);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_missing_a_prerequisite_cannot_start() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    env.organization_with(
        42,
        OrgSetup {
            locations: &["Main Chapel", "North Chapel"],
            staff: &[],
            gl_accounts: &[],
            bank_accounts: &[],
        },
    )
    .await?;
    let mut client = env.client().await?;
    let (id, _) = files::draft_with_files(
        &mut client,
        42,
        pb::FailurePolicy::ImportValidRows,
        &[
            NewFile::new(
                "checks.csv",
                "checks",
                "bank_account_number,check_number,issued_on,payee,amount\n\
                 100200300,1001,2024-01-05,Acme Florist,125.00\n",
            ),
            NewFile::new(
                "bank.csv",
                "bank_transactions",
                "bank_account_number,posted_on,amount,description\n\
                 100200300,2024-01-06,-125.00,Check 1001\n",
            ),
        ],
    )
    .await?;

    let report = files::analyze(&mut client, &id).await?;
    let missing = files::org_finding(&report, pb::FindingKind::MissingPrerequisite)
        .ok_or_else(|| anyhow::anyhow!("no missing prerequisite in {report:#?}"))?;
    assert_eq!(severity(missing), BLOCKING);
    assert_eq!(missing.count, 1);
    assert_eq!(
        missing.file_names,
        vec!["checks.csv".to_string(), "bank.csv".to_string()]
    );
    assert_eq!(
        missing.message,
        "organization 42 has no bank account; needed by checks.csv, bank.csv"
    );
    assert_eq!(report.findings.len(), 1, "one finding per missing setup");
    assert!(report.blocking);

    let refused = start(&mut client, &id)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an import missing a prerequisite started"))?;
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let details = refused.get_error_details();
    assert_eq!(
        details.error_info().map(|e| e.reason.as_str()),
        Some("MISSING_PREREQUISITE")
    );
    let violations = details
        .precondition_failure()
        .map(|p| p.violations.clone())
        .unwrap_or_default();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].r#type, "PREREQUISITE");
    assert_eq!(violations[0].subject, "organizations/42");
    assert!(
        violations[0]
            .description
            .contains("has no bank account; needed by checks.csv, bank.csv"),
        "{violations:?}"
    );
    assert_eq!(state(&get(&mut client, &id).await?), pb::ImportState::Draft);
    assert_eq!(count(&env.db, "SELECT count(*) FROM chunks").await?, 0);
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_load_after_the_contracts_of_the_same_import() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    // Payments first: the import loads its files in dependency order anyway.
    let (id, uploaded) = files::draft_with_files(
        &mut client,
        1042,
        pb::FailurePolicy::StopOnFirstError,
        &[
            NewFile::new(
                "payments.csv",
                "payments",
                "contract_number,paid_on,amount,method,reference,case_number\n\
                 CT1,2024-01-10,1000.00,check,R1,K1\n\
                 CT1,2024-02-10,\"$2,500.50\",card,R2,\n\
                 CT2,2024-02-02,1234.56,cash,R3,K2\n",
            ),
            NewFile::new(
                "cases.csv",
                "cases",
                "case_number,deceased_first_name,deceased_last_name\nK1,Ann,Lee\nK2,Bob,Ray\n",
            ),
            NewFile::new(
                "contracts.csv",
                "contract_information",
                "contract_number,case_number,contract_date,total\n\
                 CT1,K1,2024-01-05,5000.00\n\
                 CT2,K2,2024-02-01,1234.56\n",
            ),
        ],
    )
    .await?;
    let order = |name: &str| {
        uploaded
            .iter()
            .find(|f| f.name == name)
            .map_or(-1, |f| f.load_order)
    };
    assert!(order("cases.csv") < order("contracts.csv"));
    assert!(order("contracts.csv") < order("payments.csv"));

    let report = files::analyze(&mut client, &id).await?;
    assert!(!report.blocking, "{report:#?}");
    let names: Vec<&str> = report.files.iter().map(|f| f.file_name.as_str()).collect();
    assert_eq!(names, vec!["cases.csv", "contracts.csv", "payments.csv"]);
    for f in &report.files {
        assert!(f.findings.is_empty(), "{}: {:?}", f.file_name, f.findings);
    }
    let counts: Vec<(i64, i64, i64)> = report
        .files
        .iter()
        .map(|f| (f.would_create, f.would_update, f.would_leave_unchanged))
        .collect();
    assert_eq!(counts, vec![(2, 0, 0), (2, 0, 0), (3, 0, 0)]);
    assert_eq!(
        (
            report.would_create,
            report.would_update,
            report.would_leave_unchanged,
            report.rows_failing
        ),
        (7, 0, 0, 0)
    );

    start(&mut client, &id).await?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:?}");
    let p = done.progress.unwrap_or_default();
    assert_eq!((p.rows_created, p.rows_failed), (7, 0));
    let payments: Vec<(String, String, String, String, Option<String>)> =
        passare_imports_store::sqlx::query_as(
            "SELECT contract_number, reference, amount::text, method, case_number
               FROM payments WHERE organization_id = 1042 ORDER BY contract_number, reference",
        )
        .fetch_all(env.db.pool())
        .await?;
    let row = |c: &str, r: &str, a: &str, m: &str, k: Option<&str>| {
        (c.into(), r.into(), a.into(), m.into(), k.map(String::from))
    };
    assert_eq!(
        payments,
        vec![
            row("CT1", "R1", "1000.00", "check", Some("K1")),
            row("CT1", "R2", "2500.50", "credit_card", None),
            row("CT2", "R3", "1234.56", "cash", Some("K2")),
        ]
    );
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM contracts WHERE organization_id = 1042"
        )
        .await?,
        2
    );

    // A contract that exists nowhere, and case numbers that disagree with
    // the contract's: with an earlier file's contract and a stored one.
    let (bad, _) = files::draft_with_files(
        &mut client,
        1042,
        pb::FailurePolicy::StopOnFirstError,
        &[
            NewFile::new(
                "payments-2.csv",
                "payments",
                "contract_number,paid_on,amount,method,reference,case_number\n\
                 CT404,2024-03-02,10.00,cash,R20,\n\
                 CT3,2024-03-02,10.00,cash,R21,K1\n\
                 CT1,2024-03-02,10.00,cash,R22,K2\n\
                 CT3,2024-03-02,20.00,cash,R23,K2\n",
            ),
            NewFile::new(
                "contracts-2.csv",
                "contract_information",
                "contract_number,case_number,contract_date,total\nCT3,K2,2024-03-01,800.00\n",
            ),
        ],
    )
    .await?;
    let report = files::analyze(&mut client, &bad).await?;
    assert!(report.blocking);
    assert!(
        files::finding_kinds(&report, "contracts-2.csv").is_empty(),
        "{report:#?}"
    );
    let unresolved = files::finding(
        &report,
        "payments-2.csv",
        pb::FindingKind::UnresolvedReference,
    )
    .ok_or_else(|| anyhow::anyhow!("no unresolved reference in {report:#?}"))?;
    assert_eq!(severity(unresolved), BLOCKING);
    assert_eq!(unresolved.count, 1);
    let s = &unresolved.samples[0];
    assert_eq!(
        (s.row, s.column.as_str(), s.value.as_str()),
        (1, "contract_number", "CT404")
    );
    let disagree = files::finding(&report, "payments-2.csv", pb::FindingKind::Constraint)
        .ok_or_else(|| anyhow::anyhow!("no constraint in {report:#?}"))?;
    assert_eq!(severity(disagree), BLOCKING);
    assert_eq!(disagree.count, 2, "{disagree:?}");
    let samples: Vec<(i64, &str, &str)> = disagree
        .samples
        .iter()
        .map(|s| (s.row, s.column.as_str(), s.value.as_str()))
        .collect();
    assert_eq!(
        samples,
        vec![(2, "case_number", "K1"), (3, "case_number", "K2")]
    );
    assert_eq!(
        files::finding_kinds(&report, "payments-2.csv").len(),
        2,
        "{report:#?}"
    );
    let payments = files::file_analysis(&report, "payments-2.csv")?;
    assert_eq!(
        (
            payments.would_create,
            payments.rows_failing,
            payments.load_order > files::file_analysis(&report, "contracts-2.csv")?.load_order
        ),
        (1, 3, true)
    );
    env.finish().await
}

/// Row counts of every target table and of row errors.
async fn table_counts(env: &TestEnv) -> anyhow::Result<Vec<(&'static str, i64)>> {
    let mut out = Vec::new();
    for table in [
        "cases",
        "case_basic_information",
        "case_veterans",
        "case_family_members",
        "case_events",
        "contracts",
        "payments",
        "rolodex_entries",
        "price_list_items",
        "client_service_types",
        "checks",
        "bank_transactions",
        "row_errors",
    ] {
        out.push((
            table,
            count(&env.db, &format!("SELECT count(*) FROM {table}")).await?,
        ));
    }
    Ok(out)
}

/// One valid row of every type but cases, for case C4 of organization 1042.
fn one_row_of_every_other_type() -> Vec<NewFile> {
    vec![
        NewFile::new(
            "basic.csv",
            "basic_information",
            "case_number,sex,ssn,marital_status,state,zip\nC4,F,123-45-6789,widowed,Texas,75001\n",
        ),
        NewFile::new(
            "veterans.csv",
            "veteran_information",
            "case_number,branch,entered_on,discharged_on,flag_requested\nC4,usmc,1961-01-01,1965-01-01,yes\n",
        ),
        NewFile::new(
            "family.csv",
            "family_and_friends",
            "case_number,first_name,last_name,relationship,is_next_of_kin,phone,email\n\
             C4,Tom,Fu,son,yes,(512) 463-2000,tom@example.com\n",
        ),
        NewFile::new(
            "events.csv",
            "events",
            "case_number,event_type,starts_at,ends_at\nC4,visitation,2024-03-01T17:00:00,2024-03-01T19:00:00\n",
        ),
        NewFile::new(
            "contracts.csv",
            "contract_information",
            "contract_number,case_number,contract_date,total,subtotal,tax,discount\n\
             K4,C4,2024-02-28,5250.00,5000.00,250.00,0\n",
        ),
        NewFile::new(
            "payments.csv",
            "payments",
            "contract_number,paid_on,amount,method,reference\nK4,2024-03-05,1000.00,check,1234\n",
        ),
        NewFile::new(
            "rolodex.csv",
            "rolodex",
            "name,category\nSt. Mary Church,church\n",
        ),
        NewFile::new(
            "prices.csv",
            "price_list",
            "item_code,name,category,price,gl_account_code\nCSK-1,Oak Casket,merchandise,2499.00,4100\n",
        ),
        NewFile::new(
            "services.csv",
            "client_service_types",
            "code,name\nTRAD,Traditional Funeral\n",
        ),
        NewFile::new(
            "checks.csv",
            "checks",
            "bank_account_number,check_number,issued_on,payee,amount,case_number\n\
             100200300,5001,2024-03-06,Acme Florist,150.00,C4\n",
        ),
        NewFile::new(
            "bank.csv",
            "bank_transactions",
            "bank_account_number,posted_on,amount,description,type\n100200300,2024-03-07,-150.00,Check 5001,debit\n",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_writes_nothing_and_predicts_creates_updates_and_unchanged_rows()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    let header = "case_number,deceased_first_name,deceased_last_name,date_of_birth,date_of_death\n";
    let (first, _) = files::draft_with_files(
        &mut client,
        1042,
        pb::FailurePolicy::StopOnFirstError,
        &[NewFile::new(
            "cases.csv",
            "cases",
            format!(
                "{header}C1,Ann,Lee,1950-01-01,2020-01-01\nC2,Bob,Ray,1951-02-02,2021-02-02\nC3,Cy,Do,1952-03-03,2022-03-03\n"
            ),
        )],
    )
    .await?;
    start(&mut client, &first).await?;
    assert_eq!(
        state(&wait_terminal(&mut client, &first).await?),
        pb::ImportState::Completed
    );

    // C1 unchanged, C2 renamed, C4 new; and one new row of every other type.
    let mut second_files = vec![NewFile::new(
        "cases.csv",
        "cases",
        format!(
            "{header}C1,Ann,Lee,1950-01-01,2020-01-01\nC2,Robert,Ray,1951-02-02,2021-02-02\nC4,Di,Fu,1953-04-04,2023-04-04\n"
        ),
    )];
    second_files.extend(one_row_of_every_other_type());
    let (second, _) = files::draft_with_files(
        &mut client,
        1042,
        pb::FailurePolicy::StopOnFirstError,
        &second_files,
    )
    .await?;

    let content = "SELECT string_agg(c::text, '|' ORDER BY case_number) FROM cases c";
    let content_of = |env: &TestEnv| {
        let pool = env.db.pool().clone();
        async move {
            passare_imports_store::sqlx::query_scalar::<_, Option<String>>(content)
                .fetch_one(&pool)
                .await
        }
    };
    let before = table_counts(&env).await?;
    let cases_before = content_of(&env).await?;
    let report = files::analyze(&mut client, &second).await?;
    assert_eq!(table_counts(&env).await?, before, "analysis wrote rows");
    assert_eq!(
        content_of(&env).await?,
        cases_before,
        "analysis changed rows"
    );
    assert_eq!(
        before.iter().find(|(t, _)| *t == "cases").map(|(_, n)| *n),
        Some(3)
    );

    assert!(!report.blocking, "{report:#?}");
    assert_eq!(report.rows_failing, 0, "{report:#?}");
    for f in &report.files {
        assert!(f.findings.is_empty(), "{}: {:?}", f.file_name, f.findings);
    }
    let cases = files::file_analysis(&report, "cases.csv")?;
    assert_eq!(
        (
            cases.would_create,
            cases.would_update,
            cases.would_leave_unchanged
        ),
        (1, 1, 1)
    );
    for f in report.files.iter().filter(|f| f.file_name != "cases.csv") {
        assert_eq!(
            (f.would_create, f.would_update, f.would_leave_unchanged),
            (1, 0, 0),
            "{}",
            f.file_name
        );
    }
    assert_eq!(report.files.len(), 12);
    let types: Vec<&str> = report
        .files
        .iter()
        .map(|f| f.import_type.as_str())
        .collect();
    let catalog: Vec<&str> = passare_imports_domain::catalog::CATALOG
        .iter()
        .map(|t| t.key)
        .collect();
    assert_eq!(types, catalog, "files in loading order");
    assert_eq!(
        (
            report.would_create,
            report.would_update,
            report.would_leave_unchanged
        ),
        (12, 1, 1)
    );

    // The import does what the analysis said.
    start(&mut client, &second).await?;
    let done = wait_terminal(&mut client, &second).await?;
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:?}");
    let p = done.progress.unwrap_or_default();
    assert_eq!(
        (
            p.rows_created,
            p.rows_updated,
            p.rows_unchanged,
            p.rows_failed
        ),
        (12, 1, 1, 0)
    );
    let after = table_counts(&env).await?;
    for ((table, was), (_, now)) in before.iter().zip(&after) {
        let grew = match *table {
            "row_errors" => 0,
            _ => 1,
        };
        assert_eq!(*now, was + grew, "{table}");
    }
    env.finish().await
}

/// The comparison of chunks with the stored records runs beside the checks
/// on a second connection when the pool has one to spare, and after each
/// check on the analysis's only connection when it has none: the counts are
/// the same, across chunks, either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analysis_counts_the_same_with_or_without_a_second_connection() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 2,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let first = cases_draft(
        &mut client,
        "C1,Ann,Lee\nC2,Bob,Ray\nC3,Cy,Do\nC4,Di,Fu\nC5,Ed,Go\n",
    )
    .await?;
    start(&mut client, &first).await?;
    assert_eq!(
        state(&wait_terminal(&mut client, &first).await?),
        pb::ImportState::Completed
    );
    // Four chunks of two rows: unchanged, changed and new rows in each.
    let second = cases_draft(
        &mut client,
        "C1,Ann,Lee\nC6,Fay,Ho\nC2,Robert,Ray\nC3,Cy,Do\nC7,Gus,Ito\nC4,Dina,Fu\nC8,Hal,Jo\n",
    )
    .await?;
    let beside = env.analyse_in_process(&second, 0).await?;
    let alone = env.analyse_in_process(&second, 1).await?;
    env.finish().await?;
    for (how, report) in [("beside", &beside), ("alone", &alone)] {
        let counts: Vec<(u64, u64, u64, u64)> = report
            .files
            .iter()
            .map(|f| {
                (
                    f.rows,
                    f.would_create,
                    f.would_update,
                    f.would_leave_unchanged,
                )
            })
            .collect();
        assert_eq!(counts, vec![(7, 3, 2, 2)], "{how}: {report:#?}");
    }
    Ok(())
}

/// A draft of organization 1042 with one Cases file of `rows` (first name,
/// last name).
async fn cases_draft(
    client: &mut passare_imports_cli::client::Client,
    rows: &str,
) -> anyhow::Result<String> {
    let header = "case_number,deceased_first_name,deceased_last_name\n";
    let file = NewFile::new("cases.csv", "cases", format!("{header}{rows}"));
    let policy = pb::FailurePolicy::StopOnFirstError;
    Ok(files::draft_with_files(client, 1042, policy, &[file])
        .await?
        .0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_analysis_must_be_run_again_before_starting() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    let header = "case_number,deceased_first_name,deceased_last_name\n";
    let (id, uploaded) = files::draft_with_files(
        &mut client,
        1042,
        pb::FailurePolicy::StopOnFirstError,
        &[NewFile::new(
            "a.csv",
            "cases",
            format!("{header}S1,Ann,Lee\n"),
        )],
    )
    .await?;
    let report = files::analyze(&mut client, &id).await?;
    assert!(!report.blocking && !report.stale);

    let expect_stale = |status: Result<pb::Import, tonic::Status>, what: &str| {
        let refused = status
            .err()
            .ok_or_else(|| anyhow::anyhow!("{what}: started on a stale analysis"))?;
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{what}");
        assert_eq!(
            refused
                .get_error_details()
                .error_info()
                .map(|e| e.reason.clone()),
            Some("ANALYSIS_STALE".to_string()),
            "{what}: {refused:?}"
        );
        anyhow::Ok(())
    };

    // Another file after the analysis.
    let added = files::upload(
        &mut client,
        &id,
        &NewFile::new("b.csv", "cases", format!("{header}S2,Bob,Ray\n")),
    )
    .await?;
    let shown = get(&mut client, &id).await?.analysis.unwrap_or_default();
    assert!(shown.stale && shown.blocking, "{shown:?}");
    expect_stale(start(&mut client, &id).await, "after an upload")?;
    assert_eq!(state(&get(&mut client, &id).await?), pb::ImportState::Draft);

    // A file removed after the analysis.
    let report = files::analyze(&mut client, &id).await?;
    assert!(!report.stale && !report.blocking);
    assert_eq!(report.would_create, 2);
    client
        .remove_file(pb::RemoveFileRequest {
            import_id: id.clone(),
            file_id: uploaded[0].id.clone(),
        })
        .await?;
    expect_stale(start(&mut client, &id).await, "after a removal")?;

    let report = files::analyze(&mut client, &id).await?;
    assert!(!report.stale && !report.blocking);
    assert_eq!(
        report
            .files
            .iter()
            .map(|f| f.file_id.as_str())
            .collect::<Vec<_>>(),
        vec![added.id.as_str()]
    );
    start(&mut client, &id).await?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:?}");
    let stored: Vec<String> = passare_imports_store::sqlx::query_scalar(
        "SELECT case_number FROM cases WHERE organization_id = 1042 ORDER BY case_number",
    )
    .fetch_all(env.db.pool())
    .await?;
    assert_eq!(stored, vec!["S2".to_string()]);
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_lists_twelve_types_in_loading_order_with_templates() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let types = client
        .list_import_types(pb::ListImportTypesRequest {})
        .await?
        .into_inner()
        .import_types;
    let keys: Vec<&str> = types.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "cases",
            "basic_information",
            "veteran_information",
            "family_and_friends",
            "events",
            "contract_information",
            "payments",
            "rolodex",
            "price_list",
            "client_service_types",
            "checks",
            "bank_transactions",
        ]
    );
    for pair in types.windows(2) {
        assert!(
            pair[0].load_order < pair[1].load_order,
            "{} before {}",
            pair[0].key,
            pair[1].key
        );
    }
    // Every type loads after the types it depends on.
    for (i, t) in types.iter().enumerate() {
        for d in &t.dependencies {
            let at = keys.iter().position(|k| k == d);
            assert!(at.is_some_and(|at| at < i), "{} depends on {d}", t.key);
        }
    }
    let payments = types
        .iter()
        .find(|t| t.key == "payments")
        .ok_or_else(|| anyhow::anyhow!("no payments"))?;
    assert_eq!(
        payments.dependencies,
        vec!["contract_information".to_string()]
    );
    assert_eq!(types[0].key, "cases");
    assert!(types[0].dependencies.is_empty());
    let ssn = types
        .iter()
        .find(|t| t.key == "basic_information")
        .and_then(|t| t.columns.iter().find(|c| c.name == "ssn"))
        .ok_or_else(|| anyhow::anyhow!("no ssn column"))?;
    assert!(ssn.sensitive);
    assert_eq!(ssn.kind, "ssn");

    let template = client
        .get_import_template(pb::GetImportTemplateRequest {
            import_type: "payments".into(),
        })
        .await?
        .into_inner();
    let text = String::from_utf8(template.content)?;
    assert!(
        text.starts_with("contract_number,paid_on,amount,method"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "header only: {text:?}");
    assert_eq!(template.file_name, "payments.csv");
    assert!(template.content_type.starts_with("text/csv"));
    let unknown = client
        .get_import_template(pb::GetImportTemplateRequest {
            import_type: "payroll".into(),
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(unknown, Some(tonic::Code::InvalidArgument));
    env.finish().await
}
