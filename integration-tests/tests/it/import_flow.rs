//! One Cases file from upload to rows: the client-streaming upload, the
//! chunked load, the watch stream, idempotent re-imports and bad files.

use passare_imports_integration_tests::files;
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use tonic_types::StatusExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_row_file_streams_in_and_imports_exactly_with_monotonic_progress()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    let csv = cases_csv(100_000, 11)?;
    let (id, file) = env
        .draft_with_file(
            &mut client,
            1042,
            pb::FailurePolicy::StopOnFirstError,
            "cases.csv",
            &csv,
        )
        .await?;
    assert_eq!(file.row_count, 100_000);
    assert_eq!(file.size_bytes, csv.len() as i64);
    assert_eq!(file.format, pb::FileFormat::Csv as i32);
    assert_eq!(file.state, pb::FileState::Ready as i32);
    assert_eq!(file.sha256.len(), 64);
    assert!(
        file.columns.iter().all(|c| !c.column.is_empty()),
        "{:?}",
        file.columns
    );

    let started = start(&mut client, &id).await?;
    assert!(matches!(
        state(&started),
        pb::ImportState::Queued | pb::ImportState::Running | pb::ImportState::Completed
    ));
    // Two watchers of one import, the second on another server replica.
    let mut other = env.second_replica().await?;
    let (events, others) = tokio::join!(watch_all(&mut client, &id), watch_all(&mut other, &id));
    let (events, others) = (events?, others?);
    assert_eq!(
        others
            .last()
            .and_then(|e| e.import.as_ref()?.progress)
            .map(|p| p.rows_created),
        Some(100_000)
    );
    assert_eq!(
        events.first().map(|e| e.kind),
        Some(pb::WatchEventKind::Snapshot as i32)
    );
    let progress: Vec<pb::Progress> = events
        .iter()
        .filter_map(|e| e.import.as_ref()?.progress)
        .collect();
    for pair in progress.windows(2) {
        assert!(pair[0].rows_processed <= pair[1].rows_processed, "{pair:?}");
        assert!(pair[0].rows_imported <= pair[1].rows_imported, "{pair:?}");
        assert!(pair[0].chunks_done <= pair[1].chunks_done, "{pair:?}");
    }
    assert!(
        progress.len() >= 3,
        "expected several progress events, got {}",
        progress.len()
    );
    let last = events
        .last()
        .and_then(|e| e.import.clone())
        .ok_or_else(|| anyhow::anyhow!("no events"))?;
    assert_eq!(state(&last), pb::ImportState::Completed);
    let p = last.progress.unwrap_or_default();
    assert_eq!(
        (p.rows_processed, p.rows_created, p.rows_failed),
        (100_000, 100_000, 0)
    );
    assert_eq!((p.chunks_done, p.chunks_total), (20, 20));
    assert!(last.start_time.is_some() && last.end_time.is_some());
    assert_eq!(last.requested_by.map(|u| u.id).as_deref(), Some("admin-1"));

    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM cases WHERE organization_id = 1042"
        )
        .await?,
        100_000
    );
    // Spot checks against the generator: row 1 has a US-style birth date, row 2 an ISO one.
    let mut rng_rows = Vec::new();
    {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for i in 1..=50_000u64 {
            let row = generate::case_row(&mut rng, i);
            if i == 1 || i == 2 || i == 50_000 {
                rng_rows.push(row);
            }
        }
    }
    for row in &rng_rows {
        use passare_imports_store::sqlx::Row;
        let stored = passare_imports_store::sqlx::query(
            "SELECT c.deceased_first_name, c.deceased_last_name, c.date_of_birth::text AS dob, c.date_of_death::text AS dod,
                    c.case_type, c.disposition, l.name AS location, u.email AS director, c.source_row
               FROM cases c LEFT JOIN locations l ON l.id = c.location_id LEFT JOIN staff_users u ON u.id = c.director_user_id
              WHERE c.organization_id = 1042 AND c.case_number = $1",
        )
        .bind(&row[0])
        .fetch_one(env.db.pool())
        .await?;
        assert_eq!(stored.try_get::<String, _>("deceased_first_name")?, row[1]);
        assert_eq!(stored.try_get::<String, _>("deceased_last_name")?, row[3]);
        let dob = stored.try_get::<String, _>("dob")?;
        let expected_dob = passare_imports_domain::values::parse_date(&row[5])
            .map(|d| d.to_string())
            .unwrap_or_default();
        assert_eq!(dob, expected_dob, "{}", row[0]);
        assert_eq!(stored.try_get::<String, _>("dod")?, row[6]);
        assert_eq!(stored.try_get::<String, _>("case_type")?, row[7]);
        assert_eq!(stored.try_get::<String, _>("disposition")?, row[9]);
        assert_eq!(stored.try_get::<String, _>("location")?, row[10]);
        assert_eq!(stored.try_get::<String, _>("director")?, row[11]);
        let number: i64 = row[0].trim_start_matches('C').parse()?;
        assert_eq!(stored.try_get::<i64, _>("source_row")?, number);
    }
    // And every row: each stored case has the file's values, written by
    // this import.
    assert_cases_are(
        &env.db,
        1042,
        &all_written_by(&generated_rows(100_000, 11), uuid::Uuid::parse_str(&id)?),
    )
    .await?;
    // Each case knows its row of the file.
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM cases
              WHERE organization_id = 1042
                AND source_row = substr(case_number, 2)::bigint",
        )
        .await?,
        100_000
    );
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_the_same_file_again_leaves_the_same_rows() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 2_000,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let csv = cases_csv(10_000, 5)?;
    let fingerprint = "SELECT hashtext(string_agg(c::text, '|' ORDER BY case_number))::bigint FROM
        (SELECT case_number, deceased_first_name, deceased_middle_name, deceased_last_name, suffix, date_of_birth,
                date_of_death, case_type, case_status, disposition, location_id, director_user_id, opened_on,
                source_import_id, source_row, updated_at FROM cases WHERE organization_id = 1042) c";

    let (first, _) = env
        .draft_with_file(
            &mut client,
            1042,
            pb::FailurePolicy::StopOnFirstError,
            "a.csv",
            &csv,
        )
        .await?;
    start(&mut client, &first).await?;
    let done = wait_terminal(&mut client, &first).await?;
    assert_eq!(state(&done), pb::ImportState::Completed);
    let before = count(&env.db, fingerprint).await?;

    let (second, _) = env
        .draft_with_file(
            &mut client,
            1042,
            pb::FailurePolicy::StopOnFirstError,
            "a.csv",
            &csv,
        )
        .await?;
    start(&mut client, &second).await?;
    let again = wait_terminal(&mut client, &second).await?;
    assert_eq!(state(&again), pb::ImportState::Completed);
    let p = again.progress.unwrap_or_default();
    assert_eq!(
        (p.rows_created, p.rows_updated, p.rows_unchanged),
        (0, 0, 10_000)
    );
    assert_eq!(count(&env.db, "SELECT count(*) FROM cases").await?, 10_000);
    assert_eq!(
        count(&env.db, fingerprint).await?,
        before,
        "rows changed on re-import"
    );

    // One changed row, and keys new to the organization mixed with known ones.
    let text = String::from_utf8(csv.clone())?;
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut fields: Vec<String> = lines[1].split(',').map(String::from).collect();
    fields[1] = format!("Renamed{}", fields[1]);
    let changed_first = fields[1].clone();
    lines[1] = fields.join(",");
    for i in 0..5 {
        lines.push(format!("N{i:05},Nova,,Reyes,,1960-01-01,2020-02-02,,,,,,"));
    }
    let (third, _) = env
        .draft_with_file(
            &mut client,
            1042,
            pb::FailurePolicy::StopOnFirstError,
            "b.csv",
            (lines.join("\n") + "\n").as_bytes(),
        )
        .await?;
    start(&mut client, &third).await?;
    let mixed = wait_terminal(&mut client, &third).await?;
    assert_eq!(state(&mixed), pb::ImportState::Completed);
    let p = mixed.progress.unwrap_or_default();
    assert_eq!(
        (p.rows_created, p.rows_updated, p.rows_unchanged),
        (5, 1, 9_999)
    );
    assert_eq!(count(&env.db, "SELECT count(*) FROM cases").await?, 10_005);
    let renamed = count(
        &env.db,
        &format!(
            "SELECT count(*) FROM cases WHERE case_number = 'C00000001' AND deceased_first_name = '{}' AND source_import_id = '{third}'",
            changed_first.replace('\'', "''")
        ),
    )
    .await?;
    assert_eq!(
        renamed, 1,
        "the changed row is updated and knows its import"
    );
    let before = count(&env.db, fingerprint).await?;

    // A chunk processed again (a redelivery) has no second effect.
    let chunk: i64 = count(&env.db, "SELECT min(id) FROM chunks").await?;
    let outcome = service::process_chunk(&env.config, chunk).await?;
    assert_eq!(
        outcome,
        passare_imports_store::load::ChunkOutcome::AlreadyDone
    );
    assert_eq!(count(&env.db, fingerprint).await?, before);
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_files_get_located_errors_and_import_nothing() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    let header = "case_number,deceased_first_name,deceased_last_name\n";
    let cases: Vec<(&str, Vec<u8>, u64, &str)> = vec![
        (
            "ragged.csv",
            format!("{header}C1,Ann,Lee\nC2,Bob\nC3,Cy,Do\n").into_bytes(),
            2,
            "2 fields but the header has 3",
        ),
        (
            "quote.csv",
            format!("{header}C1,Ann,Lee\nC2,\"Bob,Ray\nC3,Cy,Do\n").into_bytes(),
            2,
            "closing quote",
        ),
    ];
    for (name, bytes, row, reason) in cases {
        let (id, file) = env
            .draft_with_file(
                &mut client,
                1042,
                pb::FailurePolicy::ImportValidRows,
                name,
                &bytes,
            )
            .await?;
        assert_eq!(file.state, pb::FileState::Invalid as i32, "{name}");
        let problem = file
            .problems
            .first()
            .ok_or_else(|| anyhow::anyhow!("{name}: no problem"))?;
        assert_eq!(problem.row, row as i64, "{name}: {problem:?}");
        assert!(problem.reason.contains(reason), "{name}: {problem:?}");

        let refused = start(&mut client, &id)
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("{name} started"))?;
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{name}");
        let details = refused.get_error_details();
        assert_eq!(
            details.error_info().map(|e| e.reason.as_str()),
            Some("INVALID_FILES")
        );
        let violation = details
            .bad_request()
            .and_then(|b| b.field_violations.first().cloned())
            .ok_or_else(|| anyhow::anyhow!("{name}: no field violation"))?;
        assert_eq!(violation.field, format!("files[{name}]"));
        assert!(
            violation.description.starts_with(&format!("row {row}:")),
            "{violation:?}"
        );
        assert_eq!(state(&get(&mut client, &id).await?), pb::ImportState::Draft);
    }
    assert_eq!(count(&env.db, "SELECT count(*) FROM cases").await?, 0);
    assert_eq!(count(&env.db, "SELECT count(*) FROM chunks").await?, 0);
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_are_row_errors_or_fail_the_import_by_policy() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    let csv = "case_number,deceased_first_name,deceased_last_name,date_of_birth,date_of_death,location_name,director_email\n\
               C1,Ann,Lee,1950-01-01,2020-01-01,Main Chapel,director@riverside.example\n\
               C2,Bob,Ray,not a date,2020-01-01,,\n\
               C3,Cy,Do,1950-01-01,2020-01-01,Nowhere Chapel,\n\
               C4,Di,Fu,1/2/1940,3/4/2021,north chapel,ARRANGER@riverside.example\n";

    let (valid_rows, _) = env
        .draft_with_file(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            "mixed.csv",
            csv.as_bytes(),
        )
        .await?;
    start(&mut client, &valid_rows).await?;
    let done = wait_terminal(&mut client, &valid_rows).await?;
    assert_eq!(state(&done), pb::ImportState::CompletedWithErrors);
    let p = done.progress.unwrap_or_default();
    assert_eq!((p.rows_processed, p.rows_created, p.rows_failed), (4, 2, 2));
    let problems = &done.files[0].problems;
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(
        (
            problems[0].row,
            problems[0].column.as_str(),
            problems[0].value.as_str()
        ),
        (2, "date_of_birth", "not a date")
    );
    assert_eq!(
        (
            problems[1].row,
            problems[1].column.as_str(),
            problems[1].value.as_str()
        ),
        (3, "location_name", "Nowhere Chapel")
    );
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM cases WHERE case_number IN ('C1', 'C4')"
        )
        .await?,
        2
    );
    assert_eq!(count(&env.db, "SELECT count(*) FROM row_errors").await?, 2);

    env.organization(77).await?;
    let (stop, _) = env
        .draft_with_file(
            &mut client,
            77,
            pb::FailurePolicy::StopOnFirstError,
            "mixed.csv",
            csv.as_bytes(),
        )
        .await?;
    // Stopping at the first error, the import is doomed: analysis blocks it
    // before anything runs, naming every failing row.
    files::analyze(&mut client, &stop).await?;
    let refused = request_start(&mut client, &stop)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a doomed import started"))?;
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let details = refused.get_error_details();
    assert_eq!(
        details.error_info().map(|i| i.reason.as_str()),
        Some("BLOCKING_FINDINGS")
    );
    let fields: Vec<String> = details
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        fields,
        vec![
            "files[mixed.csv].rows[2].date_of_birth".to_string(),
            "files[mixed.csv].rows[3].location_name".to_string()
        ]
    );
    let draft = get(&mut client, &stop).await?;
    assert_eq!(state(&draft), pb::ImportState::Draft);
    assert!(draft.analysis.is_some_and(|a| a.blocking));
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM cases WHERE organization_id = 77"
        )
        .await?,
        0
    );
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_without_a_location_cannot_start_a_cases_import() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    passare_imports_store::sqlx::query(
        "INSERT INTO organizations (id, name) VALUES (500, 'Bare Funeral Home')",
    )
    .execute(env.db.pool())
    .await?;
    let mut client = env.client().await?;
    let csv = cases_csv(10, 1)?;
    let (id, _) = env
        .draft_with_file(
            &mut client,
            500,
            pb::FailurePolicy::StopOnFirstError,
            "cases.csv",
            &csv,
        )
        .await?;
    // Started without an analysis: the analysis StartImport queued finds the
    // missing prerequisite, and the import fails with it, nothing written.
    let failed = start(&mut client, &id).await?;
    assert_eq!(state(&failed), pb::ImportState::Failed);
    let error = failed.error.clone().unwrap_or_default();
    assert_eq!(error.reason, "MISSING_PREREQUISITE");
    assert!(
        error
            .message
            .contains("organization 500 has no location; needed by cases.csv"),
        "{}",
        error.message
    );
    assert!(failed.analysis.is_some_and(|a| a.blocking));
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM cases WHERE organization_id = 500"
        )
        .await?,
        0
    );
    // Analysed first, the draft is refused by StartImport itself, with
    // every detail, and stays a draft.
    let (id, _) = env
        .draft_with_file(
            &mut client,
            500,
            pb::FailurePolicy::StopOnFirstError,
            "cases.csv",
            &csv,
        )
        .await?;
    files::analyze(&mut client, &id).await?;
    let refused = request_start(&mut client, &id)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("started"))?;
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let details = refused.get_error_details();
    assert_eq!(
        details.error_info().map(|e| e.reason.as_str()),
        Some("MISSING_PREREQUISITE")
    );
    let violation = details
        .precondition_failure()
        .and_then(|p| p.violations.first().cloned())
        .ok_or_else(|| anyhow::anyhow!("no precondition failure"))?;
    assert_eq!(violation.r#type, "PREREQUISITE");
    assert_eq!(violation.subject, "organizations/500");
    assert_eq!(
        violation.description,
        "organization 500 has no location; needed by cases.csv"
    );
    assert_eq!(state(&get(&mut client, &id).await?), pb::ImportState::Draft);
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_idempotent_and_lists_page_newest_first() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let request_id = uuid::Uuid::new_v4().to_string();
    let create = |org: &str, rid: &str| pb::CreateImportRequest {
        organization_id: org.into(),
        failure_policy: pb::FailurePolicy::ImportValidRows as i32,
        note: "nightly".into(),
        request_id: rid.into(),
    };
    let a = client
        .create_import(create("1042", &request_id))
        .await?
        .into_inner()
        .import;
    let b = client
        .create_import(create("1042", &request_id))
        .await?
        .into_inner()
        .import;
    assert_eq!(a.as_ref().map(|i| &i.id), b.as_ref().map(|i| &i.id));
    // AIP-155: the same request_id with other parameters is refused, never
    // answered with the first request's import (of another organization).
    env.organization(2001).await?;
    let other_policy = pb::CreateImportRequest {
        failure_policy: pb::FailurePolicy::StopOnFirstError as i32,
        ..create("1042", &request_id)
    };
    let other_note = pb::CreateImportRequest {
        note: "another note".into(),
        ..create("1042", &request_id)
    };
    for (request, field) in [
        (create("2001", &request_id), "organization_id"),
        (other_policy, "failure_policy"),
        (other_note, "note"),
    ] {
        let refused = client.create_import(request).await.err();
        let refused = refused.ok_or_else(|| anyhow::anyhow!("{field} changed was accepted"))?;
        assert_eq!(refused.code(), tonic::Code::AlreadyExists, "{field}");
        let details = refused.get_error_details();
        let fields: Vec<String> = details
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default();
        assert_eq!(fields, vec![field.to_string()]);
        assert_eq!(
            details.error_info().map(|i| i.reason.as_str()),
            Some("REQUEST_ID_REUSED")
        );
    }
    let of_2001 = client
        .list_imports(pb::ListImportsRequest {
            organization_id: "2001".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .imports;
    assert!(
        of_2001.is_empty(),
        "nothing was created for 2001: {of_2001:?}"
    );
    let mut ids = vec![a.map(|i| i.id).unwrap_or_default()];
    for _ in 0..4 {
        ids.push(
            client
                .create_import(create("1042", ""))
                .await?
                .into_inner()
                .import
                .map(|i| i.id)
                .unwrap_or_default(),
        );
    }
    let missing = client
        .create_import(create("999999", ""))
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(missing, Some(tonic::Code::NotFound));
    let bad = client
        .create_import(create("abc", ""))
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(bad, Some(tonic::Code::InvalidArgument));

    let listed = pages::pages(
        &mut client,
        pb::ListImportsRequest {
            organization_id: "1042".into(),
            page_size: 2,
            ..Default::default()
        },
    )
    .await?;
    assert!(listed.iter().all(|p| p.items.len() <= 2));
    assert_eq!(listed.len(), 3, "five imports, two to a page");
    let seen: Vec<String> = listed
        .into_iter()
        .flat_map(|p| p.items)
        .map(|i| i.id)
        .collect();
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
    let none = client
        .get_import(pb::GetImportRequest {
            import_id: uuid::Uuid::new_v4().to_string(),
        })
        .await;
    assert_eq!(none.err().map(|s| s.code()), Some(tonic::Code::NotFound));
    env.finish().await
}
