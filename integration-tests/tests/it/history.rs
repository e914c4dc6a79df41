//! History, audit, retention and the organization picker: ListImports answers
//! "what was imported into an organization, by whom, and what failed" with
//! every filter alone and combined; every state-changing call is in the audit
//! log with its actor, organization, import, x-request-id and details; the
//! retention job deletes uploaded files and row-level results but keeps the
//! summary; ListOrganizations finds organizations by part of their name or
//! their id.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use passare_imports_cli::client::{self, Client};
use passare_imports_integration_tests::files::{self, NewFile};
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use passare_imports_store::sqlx;
use sha2::{Digest, Sha256};
use tonic_types::StatusExt;

/// Two super admins besides ADMIN, with their own ids and e-mails.
const ALICE: User<'static> = User {
    id: "alice-7",
    super_admin: true,
    developer: false,
    org: None,
};
const BOB: User<'static> = User {
    id: "bob-9",
    super_admin: true,
    developer: false,
    org: None,
};
const CAROL: User<'static> = User {
    id: "carol-3",
    super_admin: true,
    developer: false,
    org: None,
};
/// A user of organization 1042 who is neither super admin nor developer.
const PLAIN: User<'static> = User {
    id: "plain-5",
    super_admin: false,
    developer: false,
    org: Some(1042),
};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn time_of(t: Option<&prost_types::Timestamp>) -> anyhow::Result<DateTime<Utc>> {
    let t = t.context("no timestamp")?;
    DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32).context("not a timestamp")
}

/// The ErrorInfo reason of a refused call.
fn reason(status: &tonic::Status) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
}

/// A moment between two steps, clear of both (timestamps are microseconds).
async fn moment() -> DateTime<Utc> {
    tokio::time::sleep(Duration::from_millis(30)).await;
    let t = Utc::now();
    tokio::time::sleep(Duration::from_millis(30)).await;
    t
}

/// A request carrying `x-request-id` metadata when `id` is given.
fn with_request_id<T>(message: T, id: Option<&str>) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    if let Some(id) = id {
        request.metadata_mut().insert("x-request-id", id.parse()?);
    }
    Ok(request)
}

/// Readable names of import ids, for assertions on lists.
#[derive(Default)]
struct Labels(HashMap<String, &'static str>);

impl Labels {
    fn add(&mut self, id: &str, label: &'static str) {
        self.0.insert(id.to_string(), label);
    }

    fn of(&self, imports: &[pb::Import]) -> Vec<&'static str> {
        imports
            .iter()
            .map(|i| self.0.get(&i.id).copied().unwrap_or("?"))
            .collect()
    }
}

async fn list_page(
    client: &mut Client,
    request: pb::ListImportsRequest,
) -> Result<pb::ListImportsResponse, tonic::Status> {
    Ok(client.list_imports(request).await?.into_inner())
}

/// Every page of a ListImports query; fails on a repeated import.
async fn list_all(
    client: &mut Client,
    request: pb::ListImportsRequest,
) -> anyhow::Result<Vec<pb::Import>> {
    let out = pages::collect_all(client, request).await?;
    let ids: BTreeSet<&str> = out.iter().map(|i| i.id.as_str()).collect();
    anyhow::ensure!(ids.len() == out.len(), "an import was listed twice");
    Ok(out)
}

fn steps(import: &pb::Import) -> Vec<(String, Option<String>)> {
    import
        .timeline
        .iter()
        .map(|e| (e.kind.clone(), e.actor.as_ref().map(|a| a.id.clone())))
        .collect()
}

fn expected_steps(steps: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    steps
        .iter()
        .map(|(k, a)| (k.to_string(), a.map(str::to_string)))
        .collect()
}

fn file<'a>(import: &'a pb::Import, name: &str) -> anyhow::Result<&'a pb::ImportFile> {
    import
        .files
        .iter()
        .find(|f| f.name == name)
        .with_context(|| format!("import {} has no file {name}", import.id))
}

/// What a listed import must show about one of its files.
struct ExpectedFile {
    name: &'static str,
    import_type: &'static str,
    bytes: Vec<u8>,
    rows: i64,
    /// `None` where the API does not say (the files of a stopped draft).
    state: Option<pb::FileState>,
    /// (created, updated + unchanged, failed); `None` when created and
    /// updated depend on earlier imports (only imported and failed are fixed).
    outcome: Option<(i64, i64, i64)>,
    imported: i64,
}

struct Expected {
    label: &'static str,
    organization_id: &'static str,
    organization_name: &'static str,
    requester: &'static str,
    state: pb::ImportState,
    files: Vec<ExpectedFile>,
    timeline: Vec<(&'static str, Option<&'static str>)>,
}

fn check_import(import: &pb::Import, e: &Expected) -> anyhow::Result<()> {
    let label = e.label;
    assert_eq!(state(import), e.state, "{label}: state");
    assert_eq!(import.organization_id, e.organization_id, "{label}");
    assert_eq!(import.organization_name, e.organization_name, "{label}");
    let by = import.requested_by.clone().context("requested_by")?;
    assert_eq!(
        (by.id.as_str(), by.name, by.email),
        (
            e.requester,
            format!("User {}", e.requester),
            format!("{}@passare.com", e.requester)
        ),
        "{label}: requester"
    );
    assert_eq!(import.files.len(), e.files.len(), "{label}: files");
    for ef in &e.files {
        let f = file(import, ef.name)?;
        assert_eq!(f.import_type, ef.import_type, "{label} {}", ef.name);
        assert_eq!(f.sha256, sha256_hex(&ef.bytes), "{label} {}", ef.name);
        assert_eq!(f.size_bytes, ef.bytes.len() as i64, "{label} {}", ef.name);
        assert_eq!(f.row_count, ef.rows, "{label} {}", ef.name);
        if let Some(want) = ef.state {
            assert_eq!(
                pb::FileState::try_from(f.state).ok(),
                Some(want),
                "{label} {}",
                ef.name
            );
        }
        let p = f.progress.unwrap_or_default();
        assert_eq!(
            (p.rows_total, p.rows_imported, p.rows_failed),
            (ef.rows, ef.imported, ef.outcome.map_or(0, |o| o.2)),
            "{label} {}: {p:?}",
            ef.name
        );
        if let Some((created, kept, failed)) = ef.outcome {
            assert_eq!(
                (
                    p.rows_created,
                    p.rows_updated + p.rows_unchanged,
                    p.rows_failed
                ),
                (created, kept, failed),
                "{label} {}: {p:?}",
                ef.name
            );
            assert_eq!(
                p.rows_processed,
                if ef.imported + failed > 0 { ef.rows } else { 0 },
                "{label} {}",
                ef.name
            );
        }
    }
    assert_eq!(
        steps(import),
        expected_steps(&e.timeline),
        "{label}: timeline"
    );
    let mut last = None;
    for step in &import.timeline {
        let at = time_of(step.time.as_ref())?;
        assert!(
            last.is_none_or(|l| l <= at),
            "{label}: timeline out of order"
        );
        last = Some(at);
        if let Some(actor) = &step.actor {
            assert_eq!(
                (actor.name.clone(), actor.email.clone()),
                (
                    format!("User {}", actor.id),
                    format!("{}@passare.com", actor.id)
                ),
                "{label}: actor of {}",
                step.kind
            );
        }
    }
    Ok(())
}

fn rolodex(rows: &[&str]) -> Vec<u8> {
    let mut out = String::from("name,category,phone,email\n");
    for r in rows {
        out.push_str(r);
        out.push('\n');
    }
    out.into_bytes()
}

fn imports_request() -> pb::ListImportsRequest {
    pb::ListImportsRequest {
        page_size: 50,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_answers_what_was_imported_into_an_organization_by_whom_and_what_failed()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        in_process_workers: 0,
        sweep_secs: 2,
        ..Options::default()
    })
    .await?;
    env.organization(2001).await?;
    let mut alice = env.client_as(&ALICE).await?;
    let mut bob = env.client_as(&BOB).await?;
    let mut labels = Labels::default();
    let worker = env.start_worker().await?;
    let valid_rows = pb::FailurePolicy::ImportValidRows;

    // I1: Alice imports 30 cases into 1042.
    let i1_cases = cases_csv(30, 101)?;
    let (i1, _) = files::draft_with_files(
        &mut alice,
        1042,
        valid_rows,
        &[NewFile::new(
            "riverside-cases.csv",
            "cases",
            i1_cases.clone(),
        )],
    )
    .await?;
    labels.add(&i1, "I1");
    start(&mut alice, &i1).await?;
    assert_eq!(
        state(&wait_terminal(&mut alice, &i1).await?),
        pb::ImportState::Completed
    );

    // I2: Bob imports a rolodex into 1042 with one failing row.
    let i2_rolodex = rolodex(&[
        "St. Mark's Church,church,(212) 555-0142,office@stmarks.example",
        "Greenlawn Cemetery,cemetery,,",
        "Sunny Acres,spaceport,,",
    ]);
    let (i2, _) = files::draft_with_files(
        &mut bob,
        1042,
        valid_rows,
        &[NewFile::new(
            "bob-vendors.csv",
            "rolodex",
            i2_rolodex.clone(),
        )],
    )
    .await?;
    labels.add(&i2, "I2");
    start(&mut bob, &i2).await?;
    assert_eq!(
        state(&wait_terminal(&mut bob, &i2).await?),
        pb::ImportState::CompletedWithErrors
    );

    let t1 = moment().await;

    // I3: Alice imports cases and a rolodex into 2001.
    let i3_cases = cases_csv(20, 102)?;
    let i3_rolodex = rolodex(&[
        "Bloom Florist,florist,,",
        "Hillcrest Crematory,crematory,(937) 555-0100,",
    ]);
    let (i3, _) = files::draft_with_files(
        &mut alice,
        2001,
        valid_rows,
        &[
            NewFile::new("cases-2001.csv", "cases", i3_cases.clone()),
            NewFile::new("vendors-2001.csv", "rolodex", i3_rolodex.clone()),
        ],
    )
    .await?;
    labels.add(&i3, "I3");
    start(&mut alice, &i3).await?;
    assert_eq!(
        state(&wait_terminal(&mut alice, &i3).await?),
        pb::ImportState::Completed
    );

    // I4: Bob leaves a rolodex draft in 2001.
    let i4_rolodex = rolodex(&["Grace Chapel,church,,"]);
    let (i4, _) = files::draft_with_files(
        &mut bob,
        2001,
        valid_rows,
        &[NewFile::new(
            "bob-contacts.csv",
            "rolodex",
            i4_rolodex.clone(),
        )],
    )
    .await?;
    labels.add(&i4, "I4");

    let t2 = moment().await;

    // I5: Alice uploads cases to 1042 and stops the draft.
    let i5_cases = cases_csv(5, 103)?;
    let (i5, _) = files::draft_with_files(
        &mut alice,
        1042,
        valid_rows,
        &[NewFile::new("wrong-org.csv", "cases", i5_cases.clone())],
    )
    .await?;
    labels.add(&i5, "I5");
    let stopped = stop(&mut alice, &i5, "uploaded to the wrong organization").await?;
    assert_eq!(state(&stopped), pb::ImportState::Stopped);

    // With no worker running, two imports wait: I6 (Bob, 2001) and I7 (Alice, 1042).
    worker.stop().await?;
    let i6_cases = cases_csv(10, 104)?;
    let (i6, _) = files::draft_with_files(
        &mut bob,
        2001,
        valid_rows,
        &[NewFile::new("held-cases.csv", "cases", i6_cases.clone())],
    )
    .await?;
    labels.add(&i6, "I6");
    // No worker runs to analyse them: analysed here, they queue at once.
    env.analyse_now(&i6).await?;
    assert_eq!(state(&start(&mut bob, &i6).await?), pb::ImportState::Queued);
    let i7_cases = cases_csv(10, 105)?;
    let (i7, _) = files::draft_with_files(
        &mut alice,
        1042,
        valid_rows,
        &[NewFile::new("more-cases.csv", "cases", i7_cases.clone())],
    )
    .await?;
    labels.add(&i7, "I7");
    env.analyse_now(&i7).await?;
    assert_eq!(
        state(&start(&mut alice, &i7).await?),
        pb::ImportState::Queued
    );
    let by_state = |s: pb::ImportState| pb::ListImportsRequest {
        state: s as i32,
        ..imports_request()
    };
    assert_eq!(
        labels.of(&list_all(&mut alice, by_state(pb::ImportState::Queued)).await?),
        vec!["I7", "I6"]
    );
    assert!(
        list_all(&mut alice, by_state(pb::ImportState::Paused))
            .await?
            .is_empty()
    );

    // Pausing 2001 while I6 is queued shows it PAUSED, no longer QUEUED.
    pause(&mut bob, Some(2001), "the client is re-sending the file").await?;
    assert_eq!(
        labels.of(&list_all(&mut alice, by_state(pb::ImportState::Queued)).await?),
        vec!["I7"]
    );
    let paused = list_all(&mut alice, by_state(pb::ImportState::Paused)).await?;
    assert_eq!(labels.of(&paused), vec!["I6"]);
    let held_by = paused[0].pause.clone().context("the pause is shown")?;
    assert_eq!(
        (
            held_by.organization_id.as_str(),
            held_by.reason.as_str(),
            held_by.paused_by.map(|u| u.email)
        ),
        (
            "2001",
            "the client is re-sending the file",
            Some("bob-9@passare.com".to_string())
        )
    );

    // A worker again: I7 completes, I6 stays held.
    let _worker = env.start_worker().await?;
    assert_eq!(
        state(&wait_terminal(&mut alice, &i7).await?),
        pb::ImportState::Completed
    );
    let held = get(&mut bob, &i6).await?;
    assert_eq!(state(&held), pb::ImportState::Paused);
    assert_eq!(chunks_done(&held), 0);

    // Everything, newest first, with what each import shows.
    let all = list_all(&mut alice, imports_request()).await?;
    assert_eq!(
        labels.of(&all),
        vec!["I7", "I6", "I5", "I4", "I3", "I2", "I1"]
    );
    for pair in all.windows(2) {
        assert!(
            time_of(pair[0].create_time.as_ref())? > time_of(pair[1].create_time.as_ref())?,
            "create_time descending"
        );
    }
    let riverside = "Riverside Funeral Home";
    let org2001 = "Organization 2001";
    let done_steps = |who: &'static str, last: &'static str| {
        vec![
            ("created", Some(who)),
            ("file_added", Some(who)),
            ("analyzed", Some(who)),
            ("queued", Some(who)),
            ("started", None),
            (last, None),
        ]
    };
    let mut i3_steps = done_steps("alice-7", "completed");
    i3_steps.insert(2, ("file_added", Some("alice-7")));
    let expected = [
        Expected {
            label: "I7",
            organization_id: "1042",
            organization_name: riverside,
            requester: "alice-7",
            state: pb::ImportState::Completed,
            files: vec![ExpectedFile {
                name: "more-cases.csv",
                import_type: "cases",
                bytes: i7_cases,
                rows: 10,
                state: Some(pb::FileState::Completed),
                outcome: None,
                imported: 10,
            }],
            timeline: done_steps("alice-7", "completed"),
        },
        Expected {
            label: "I6",
            organization_id: "2001",
            organization_name: org2001,
            requester: "bob-9",
            state: pb::ImportState::Paused,
            files: vec![ExpectedFile {
                name: "held-cases.csv",
                import_type: "cases",
                bytes: i6_cases,
                rows: 10,
                state: Some(pb::FileState::Queued),
                outcome: Some((0, 0, 0)),
                imported: 0,
            }],
            timeline: vec![
                ("created", Some("bob-9")),
                ("file_added", Some("bob-9")),
                ("analyzed", Some("bob-9")),
                ("queued", Some("bob-9")),
                ("paused", Some("bob-9")),
            ],
        },
        Expected {
            label: "I5",
            organization_id: "1042",
            organization_name: riverside,
            requester: "alice-7",
            state: pb::ImportState::Stopped,
            files: vec![ExpectedFile {
                name: "wrong-org.csv",
                import_type: "cases",
                bytes: i5_cases,
                rows: 5,
                state: None,
                outcome: Some((0, 0, 0)),
                imported: 0,
            }],
            timeline: vec![
                ("created", Some("alice-7")),
                ("file_added", Some("alice-7")),
                ("stopped", Some("alice-7")),
            ],
        },
        Expected {
            label: "I4",
            organization_id: "2001",
            organization_name: org2001,
            requester: "bob-9",
            state: pb::ImportState::Draft,
            files: vec![ExpectedFile {
                name: "bob-contacts.csv",
                import_type: "rolodex",
                bytes: i4_rolodex,
                rows: 1,
                state: Some(pb::FileState::Ready),
                outcome: Some((0, 0, 0)),
                imported: 0,
            }],
            timeline: vec![("created", Some("bob-9")), ("file_added", Some("bob-9"))],
        },
        Expected {
            label: "I3",
            organization_id: "2001",
            organization_name: org2001,
            requester: "alice-7",
            state: pb::ImportState::Completed,
            files: vec![
                ExpectedFile {
                    name: "cases-2001.csv",
                    import_type: "cases",
                    bytes: i3_cases,
                    rows: 20,
                    state: Some(pb::FileState::Completed),
                    outcome: Some((20, 0, 0)),
                    imported: 20,
                },
                ExpectedFile {
                    name: "vendors-2001.csv",
                    import_type: "rolodex",
                    bytes: i3_rolodex,
                    rows: 2,
                    state: Some(pb::FileState::Completed),
                    outcome: Some((2, 0, 0)),
                    imported: 2,
                },
            ],
            timeline: i3_steps,
        },
        Expected {
            label: "I2",
            organization_id: "1042",
            organization_name: riverside,
            requester: "bob-9",
            state: pb::ImportState::CompletedWithErrors,
            files: vec![ExpectedFile {
                name: "bob-vendors.csv",
                import_type: "rolodex",
                bytes: i2_rolodex,
                rows: 3,
                state: Some(pb::FileState::CompletedWithErrors),
                outcome: Some((2, 0, 1)),
                imported: 2,
            }],
            timeline: done_steps("bob-9", "completed_with_errors"),
        },
        Expected {
            label: "I1",
            organization_id: "1042",
            organization_name: riverside,
            requester: "alice-7",
            state: pb::ImportState::Completed,
            files: vec![ExpectedFile {
                name: "riverside-cases.csv",
                import_type: "cases",
                bytes: i1_cases,
                rows: 30,
                state: Some(pb::FileState::Completed),
                outcome: Some((30, 0, 0)),
                imported: 30,
            }],
            timeline: done_steps("alice-7", "completed"),
        },
    ];
    for (import, e) in all.iter().zip(&expected) {
        check_import(import, e)?;
    }
    // What failed, and why: the failing row of I2 is named with the import.
    let i2_view = &all[5];
    let problems = &i2_view.files[0].problems;
    assert_eq!(
        problems
            .iter()
            .map(|p| (p.row, p.column.as_str(), p.value.as_str()))
            .collect::<Vec<_>>(),
        vec![(3, "category", "spaceport")]
    );
    let stopped_view = &all[2];
    assert_eq!(
        stopped_view.stop_reason,
        "uploaded to the wrong organization"
    );
    assert_eq!(
        stopped_view.stopped_by.as_ref().map(|u| u.id.as_str()),
        Some("alice-7")
    );
    assert_eq!(
        stopped_view.timeline.last().map(|s| s.detail.as_str()),
        Some("uploaded to the wrong organization")
    );
    assert_eq!(
        all[5].timeline.last().map(|s| s.detail.as_str()),
        Some("2 rows imported, 1 failed")
    );

    // Each filter alone.
    let q = |f: &dyn Fn(&mut pb::ListImportsRequest)| {
        let mut r = imports_request();
        f(&mut r);
        r
    };
    let cases_of: Vec<(pb::ListImportsRequest, Vec<&str>, &str)> = vec![
        (
            q(&|r| r.organization_id = "1042".into()),
            vec!["I7", "I5", "I2", "I1"],
            "organization 1042",
        ),
        (
            q(&|r| r.organization_id = "2001".into()),
            vec!["I6", "I4", "I3"],
            "organization 2001",
        ),
        (
            q(&|r| r.import_type = "cases".into()),
            vec!["I7", "I6", "I5", "I3", "I1"],
            "type cases",
        ),
        (
            q(&|r| r.import_type = "rolodex".into()),
            vec!["I4", "I3", "I2"],
            "type rolodex",
        ),
        (
            q(&|r| r.import_type = "payments".into()),
            vec![],
            "type payments",
        ),
        (
            q(&|r| r.requested_by = "alice-7".into()),
            vec!["I7", "I5", "I3", "I1"],
            "requested by alice's id",
        ),
        (
            q(&|r| r.requested_by = "BOB-9@Passare.COM".into()),
            vec!["I6", "I4", "I2"],
            "requested by bob's e-mail in another case",
        ),
        (
            q(&|r| r.requested_by = "bob-9@passare.com".into()),
            vec!["I6", "I4", "I2"],
            "requested by bob's e-mail",
        ),
        (
            q(&|r| r.requested_by = "nobody@passare.com".into()),
            vec![],
            "requested by nobody",
        ),
        (
            q(&|r| r.create_time_after = Some(ts(t1))),
            vec!["I7", "I6", "I5", "I4", "I3"],
            "created at or after t1",
        ),
        (
            q(&|r| r.create_time_before = Some(ts(t1))),
            vec!["I2", "I1"],
            "created before t1",
        ),
        (
            q(&|r| {
                r.create_time_after = Some(ts(t1));
                r.create_time_before = Some(ts(t2));
            }),
            vec!["I4", "I3"],
            "created in [t1, t2)",
        ),
    ];
    let states = [
        (pb::ImportState::Draft, vec!["I4"]),
        (pb::ImportState::Queued, vec![]),
        (pb::ImportState::Running, vec![]),
        (pb::ImportState::Completed, vec!["I7", "I3", "I1"]),
        (pb::ImportState::CompletedWithErrors, vec!["I2"]),
        (pb::ImportState::Failed, vec![]),
        (pb::ImportState::Stopped, vec!["I5"]),
        (pb::ImportState::Paused, vec!["I6"]),
    ];
    for (request, want, what) in cases_of {
        let got = list_all(&mut alice, request).await?;
        assert_eq!(labels.of(&got), want, "{what}");
    }
    for (s, want) in states {
        let got = list_all(&mut alice, by_state(s)).await?;
        assert_eq!(labels.of(&got), want, "state {s:?}");
        for i in &got {
            assert_eq!(state(i), s, "every import listed for {s:?} shows it");
        }
    }
    // create_time_after is inclusive, create_time_before exclusive.
    let i3_created = all[4].create_time;
    assert_eq!(
        labels.of(&list_all(&mut alice, q(&|r| r.create_time_after = i3_created)).await?),
        vec!["I7", "I6", "I5", "I4", "I3"]
    );
    assert_eq!(
        labels.of(&list_all(&mut alice, q(&|r| r.create_time_before = i3_created)).await?),
        vec!["I2", "I1"]
    );

    // Filters combined.
    let combined: Vec<(pb::ListImportsRequest, Vec<&str>, &str)> = vec![
        (
            q(&|r| {
                r.organization_id = "1042".into();
                r.import_type = "cases".into();
                r.requested_by = "alice-7".into();
            }),
            vec!["I7", "I5", "I1"],
            "1042 + cases + alice",
        ),
        (
            q(&|r| {
                r.organization_id = "2001".into();
                r.import_type = "rolodex".into();
                r.state = pb::ImportState::Draft as i32;
            }),
            vec!["I4"],
            "2001 + rolodex + draft",
        ),
        (
            q(&|r| {
                r.organization_id = "1042".into();
                r.requested_by = "bob-9@passare.com".into();
                r.state = pb::ImportState::CompletedWithErrors as i32;
            }),
            vec!["I2"],
            "1042 + bob + completed with errors",
        ),
        (
            q(&|r| {
                r.requested_by = "alice-7".into();
                r.organization_id = "2001".into();
                r.state = pb::ImportState::Completed as i32;
            }),
            vec!["I3"],
            "alice + 2001 + completed",
        ),
        (
            q(&|r| {
                r.create_time_after = Some(ts(t1));
                r.create_time_before = Some(ts(t2));
                r.import_type = "rolodex".into();
            }),
            vec!["I4", "I3"],
            "[t1, t2) + rolodex",
        ),
        (
            q(&|r| {
                r.create_time_after = Some(ts(t1));
                r.requested_by = "bob-9".into();
            }),
            vec!["I6", "I4"],
            "after t1 + bob",
        ),
        (
            q(&|r| {
                r.organization_id = "1042".into();
                r.create_time_before = Some(ts(t2));
            }),
            vec!["I2", "I1"],
            "1042 + before t2",
        ),
        (
            q(&|r| {
                r.organization_id = "2001".into();
                r.state = pb::ImportState::Paused as i32;
                r.requested_by = "bob-9".into();
                r.import_type = "cases".into();
            }),
            vec!["I6"],
            "2001 + paused + bob + cases",
        ),
        (
            q(&|r| {
                r.organization_id = "1042".into();
                r.state = pb::ImportState::Paused as i32;
            }),
            vec![],
            "1042 + paused",
        ),
        (
            q(&|r| {
                r.import_type = "rolodex".into();
                r.state = pb::ImportState::Completed as i32;
                r.create_time_before = Some(ts(t1));
            }),
            vec![],
            "rolodex + completed + before t1",
        ),
    ];
    for (request, want, what) in combined {
        let got = list_all(&mut alice, request).await?;
        assert_eq!(labels.of(&got), want, "{what}");
    }

    // Paging by two: no duplicates, no gaps, and the token is a cursor that
    // an import created between two requests does not move.
    let by_two = pb::ListImportsRequest {
        page_size: 2,
        ..Default::default()
    };
    let first = list_page(&mut alice, by_two.clone()).await?;
    assert_eq!(labels.of(&first.imports), vec!["I7", "I6"]);
    assert!(!first.next_page_token.is_empty());
    let i8 = files::create_draft(&mut alice, 1042, valid_rows).await?;
    labels.add(&i8, "I8");
    let rest = pages::pages(
        &mut alice,
        pb::ListImportsRequest {
            page_token: first.next_page_token.clone(),
            ..by_two.clone()
        },
    )
    .await?;
    // The same token gives the same page, asked again once the whole list
    // has been read.
    for page in &rest {
        let request = pb::ListImportsRequest {
            page_token: page.token.clone(),
            ..by_two.clone()
        };
        let again = list_page(&mut alice, request).await?;
        assert_eq!(labels.of(&again.imports), labels.of(&page.items));
        assert_eq!(again.next_page_token, page.next_page_token);
    }
    let mut seen = vec![labels.of(&first.imports)];
    seen.extend(rest.iter().map(|p| labels.of(&p.items)));
    assert_eq!(
        seen,
        vec![
            vec!["I7", "I6"],
            vec!["I5", "I4"],
            vec!["I3", "I2"],
            vec!["I1"]
        ]
    );
    let fresh = list_page(&mut alice, by_two.clone()).await?;
    assert_eq!(labels.of(&fresh.imports), vec!["I8", "I7"]);
    // Paging a filtered list.
    let filtered = pages::pages(
        &mut alice,
        pb::ListImportsRequest {
            page_size: 2,
            requested_by: "alice-7".into(),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(
        filtered
            .iter()
            .map(|p| labels.of(&p.items))
            .collect::<Vec<_>>(),
        vec![vec!["I8", "I7"], vec!["I5", "I3"], vec!["I1"]]
    );

    // Bad requests.
    let bad_requests = [
        (q(&|r| r.page_token = "zz".into()), "page_token zz"),
        (
            q(&|r| r.page_token = "76317c6e6f74".into()),
            "page_token of hex garbage",
        ),
        (q(&|r| r.state = 99), "state 99"),
        (q(&|r| r.import_type = "spaceships".into()), "import_type"),
        (q(&|r| r.page_size = -1), "page_size -1"),
        (
            q(&|r| r.organization_id = "not-an-org".into()),
            "organization_id",
        ),
    ];
    for (request, what) in bad_requests {
        let refused = list_page(&mut alice, request)
            .await
            .err()
            .with_context(|| format!("{what} was accepted"))?;
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{what}");
    }

    // A plain user of 1042 sees 1042's history only.
    let mut plain = env.client_as(&PLAIN).await?;
    assert_eq!(
        labels.of(&list_all(&mut plain, imports_request()).await?),
        vec!["I8", "I7", "I5", "I2", "I1"]
    );
    let hidden = list_page(
        &mut plain,
        pb::ListImportsRequest {
            organization_id: "2001".into(),
            ..imports_request()
        },
    )
    .await
    .err()
    .context("another organization's history is hidden")?;
    assert_eq!(hidden.code(), tonic::Code::NotFound);
    env.finish().await
}

/// One audit event as the test expects it.
struct ExpectedEvent {
    action: &'static str,
    actor: &'static str,
    organization_id: &'static str,
    import_id: String,
    /// The x-request-id sent; `None` when the call sent none (the server
    /// then makes one up).
    request_id: Option<&'static str>,
    details: serde_json::Value,
}

async fn audit_page(
    client: &mut Client,
    request: pb::ListAuditEventsRequest,
) -> Result<pb::ListAuditEventsResponse, tonic::Status> {
    Ok(client.list_audit_events(request).await?.into_inner())
}

/// Every page of a ListAuditEvents query; fails on a repeated event.
async fn audit_all(
    client: &mut Client,
    request: pb::ListAuditEventsRequest,
) -> anyhow::Result<Vec<pb::AuditEvent>> {
    let out = pages::collect_all(client, request).await?;
    let ids: BTreeSet<&str> = out.iter().map(|e| e.id.as_str()).collect();
    anyhow::ensure!(ids.len() == out.len(), "an event was listed twice");
    Ok(out)
}

/// (action, actor) of each event, for comparing lists.
fn who_did(events: &[pb::AuditEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e.action.clone(),
                e.actor.as_ref().map(|a| a.id.clone()).unwrap_or_default(),
            )
        })
        .collect()
}

async fn upload_with_request_id(
    client: &mut Client,
    import_id: &str,
    name: &str,
    import_type: &str,
    bytes: &[u8],
    request_id: Option<&str>,
) -> anyhow::Result<pb::ImportFile> {
    let messages = vec![
        pb::UploadFileRequest {
            payload: Some(pb::upload_file_request::Payload::Header(pb::FileHeader {
                import_id: import_id.into(),
                file_name: name.into(),
                import_type: import_type.into(),
                declared_size_bytes: bytes.len() as i64,
                ..Default::default()
            })),
        },
        pb::UploadFileRequest {
            payload: Some(pb::upload_file_request::Payload::Chunk(bytes.to_vec())),
        },
    ];
    client
        .upload_file(with_request_id(tokio_stream::iter(messages), request_id)?)
        .await
        .map_err(client::describe)?
        .into_inner()
        .file
        .context("no file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_changing_call_is_in_the_audit_log() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    env.organization(2001).await?;
    let mut admin = env.client().await?;
    let mut carol = env.client_as(&CAROL).await?;
    let t_a = moment().await;

    // The admin builds, checks and runs an import of 1042.
    let create_request_id = uuid::Uuid::new_v4().to_string();
    let create_x = pb::CreateImportRequest {
        organization_id: "1042".into(),
        failure_policy: pb::FailurePolicy::ImportValidRows as i32,
        note: "March conversion".into(),
        request_id: create_request_id.clone(),
    };
    let x = admin
        .create_import(with_request_id(create_x.clone(), Some("req-create-x"))?)
        .await?
        .into_inner()
        .import
        .context("no import")?
        .id;
    // A retry of the same creation returns the same import and changes nothing.
    let retried = admin
        .create_import(with_request_id(create_x, Some("req-create-x-retry"))?)
        .await?
        .into_inner()
        .import
        .context("no import")?;
    assert_eq!(retried.id, x);
    let cases = cases_csv(10, 7)?;
    let cases_file = upload_with_request_id(
        &mut admin,
        &x,
        "march-cases.csv",
        "cases",
        &cases,
        Some("req-upload-cases"),
    )
    .await?;
    let vendors = rolodex(&["Grace Chapel,church,,"]);
    let vendors_file =
        upload_with_request_id(&mut admin, &x, "vendors.csv", "rolodex", &vendors, None).await?;
    admin
        .remove_file(with_request_id(
            pb::RemoveFileRequest {
                import_id: x.clone(),
                file_id: vendors_file.id.clone(),
            },
            Some("req-remove-vendors"),
        )?)
        .await?;
    admin
        .analyze_import(with_request_id(
            pb::AnalyzeImportRequest {
                import_id: x.clone(),
            },
            Some("req-analyze-x"),
        )?)
        .await?;
    files::wait_analysis(&mut admin, &x).await?;
    admin
        .start_import(with_request_id(
            pb::StartImportRequest {
                import_id: x.clone(),
                failure_policy: 0,
            },
            Some("req-start-x"),
        )?)
        .await?;
    assert_eq!(
        state(&wait_terminal(&mut admin, &x).await?),
        pb::ImportState::Completed
    );
    // Calls that change nothing, or fail, are not state-changing calls.
    start(&mut admin, &x).await?;
    let refused = admin
        .stop_import(with_request_id(
            pb::StopImportRequest {
                import_id: x.clone(),
                reason: "too late".into(),
            },
            Some("req-refused-stop"),
        )?)
        .await
        .err()
        .context("a completed import cannot be stopped")?;
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let t_b = moment().await;

    // Carol creates an import of 2001, uploads to it and stops it.
    let y = files::create_draft(&mut carol, 2001, pb::FailurePolicy::StopOnFirstError).await?;
    let y_file = upload_with_request_id(
        &mut carol,
        &y,
        "contacts.csv",
        "rolodex",
        &vendors,
        Some("req-upload-y"),
    )
    .await?;
    carol
        .stop_import(with_request_id(
            pb::StopImportRequest {
                import_id: y.clone(),
                reason: "duplicate of an earlier import".into(),
            },
            Some("req-stop-y"),
        )?)
        .await?;
    // Stopping it again returns it unchanged.
    stop(&mut carol, &y, "again").await?;
    let t_c = moment().await;

    // The pause switch: one organization, every organization, and back.
    admin
        .pause_imports(with_request_id(
            pb::PauseImportsRequest {
                organization_id: "1042".into(),
                reason: "month-end close".into(),
            },
            Some("req-pause-1042"),
        )?)
        .await?;
    carol
        .pause_imports(with_request_id(
            pb::PauseImportsRequest {
                organization_id: String::new(),
                reason: "database maintenance".into(),
            },
            Some("req-pause-all"),
        )?)
        .await?;
    admin
        .resume_imports(with_request_id(
            pb::ResumeImportsRequest {
                organization_id: String::new(),
            },
            Some("req-resume-all"),
        )?)
        .await?;
    carol
        .resume_imports(with_request_id(
            pb::ResumeImportsRequest {
                organization_id: "1042".into(),
            },
            None,
        )?)
        .await?;
    let t_d = moment().await;

    let upload_details = |f: &pb::ImportFile, import_type: &str, bytes: &[u8], rows: i64| {
        serde_json::json!({
            "file_id": f.id,
            "file_name": f.name,
            "import_type": import_type,
            "size_bytes": bytes.len(),
            "sha256": sha256_hex(bytes),
            "rows": rows,
            "state": "ready",
        })
    };
    let expected = vec![
        ExpectedEvent {
            action: "resume_imports",
            actor: "carol-3",
            organization_id: "1042",
            import_id: String::new(),
            request_id: None,
            details: serde_json::json!({ "lifted": "month-end close", "organizations_woken": 0 }),
        },
        ExpectedEvent {
            action: "resume_imports",
            actor: "admin-1",
            organization_id: "",
            import_id: String::new(),
            request_id: Some("req-resume-all"),
            details: serde_json::json!({ "lifted": "database maintenance", "organizations_woken": 0 }),
        },
        ExpectedEvent {
            action: "pause_imports",
            actor: "carol-3",
            organization_id: "",
            import_id: String::new(),
            request_id: Some("req-pause-all"),
            details: serde_json::json!({ "reason": "database maintenance", "scope": "every organization" }),
        },
        ExpectedEvent {
            action: "pause_imports",
            actor: "admin-1",
            organization_id: "1042",
            import_id: String::new(),
            request_id: Some("req-pause-1042"),
            details: serde_json::json!({ "reason": "month-end close", "scope": "organization 1042" }),
        },
        ExpectedEvent {
            action: "stop_import",
            actor: "carol-3",
            organization_id: "2001",
            import_id: y.clone(),
            request_id: Some("req-stop-y"),
            details: serde_json::json!({ "reason": "duplicate of an earlier import" }),
        },
        ExpectedEvent {
            action: "upload_file",
            actor: "carol-3",
            organization_id: "2001",
            import_id: y.clone(),
            request_id: Some("req-upload-y"),
            details: upload_details(&y_file, "rolodex", &vendors, 1),
        },
        ExpectedEvent {
            action: "create_import",
            actor: "carol-3",
            organization_id: "2001",
            import_id: y.clone(),
            request_id: None,
            details: serde_json::json!({
                "failure_policy": "stop_on_first_error",
                "note": "",
                "request_id": null,
            }),
        },
        ExpectedEvent {
            action: "start_import",
            actor: "admin-1",
            organization_id: "1042",
            import_id: x.clone(),
            request_id: Some("req-start-x"),
            details: serde_json::json!({ "failure_policy": "import_valid_rows", "chunks": 1 }),
        },
        ExpectedEvent {
            action: "analyze_import",
            actor: "admin-1",
            organization_id: "1042",
            import_id: x.clone(),
            request_id: Some("req-analyze-x"),
            details: serde_json::json!({ "files": 1, "rows": 10 }),
        },
        ExpectedEvent {
            action: "remove_file",
            actor: "admin-1",
            organization_id: "1042",
            import_id: x.clone(),
            request_id: Some("req-remove-vendors"),
            details: serde_json::json!({ "file_id": vendors_file.id }),
        },
        ExpectedEvent {
            action: "upload_file",
            actor: "admin-1",
            organization_id: "1042",
            import_id: x.clone(),
            request_id: None,
            details: upload_details(&vendors_file, "rolodex", &vendors, 1),
        },
        ExpectedEvent {
            action: "upload_file",
            actor: "admin-1",
            organization_id: "1042",
            import_id: x.clone(),
            request_id: Some("req-upload-cases"),
            details: upload_details(&cases_file, "cases", &cases, 10),
        },
        ExpectedEvent {
            action: "create_import",
            actor: "admin-1",
            organization_id: "1042",
            import_id: x.clone(),
            request_id: Some("req-create-x"),
            details: serde_json::json!({
                "failure_policy": "import_valid_rows",
                "note": "March conversion",
                "request_id": create_request_id,
            }),
        },
    ];

    let everything = pb::ListAuditEventsRequest {
        page_size: 100,
        ..Default::default()
    };
    let events = audit_all(&mut admin, everything.clone()).await?;
    assert_eq!(
        who_did(&events),
        expected
            .iter()
            .map(|e| (e.action.to_string(), e.actor.to_string()))
            .collect::<Vec<_>>(),
        "every state-changing call once, newest first"
    );
    let mut generated = BTreeSet::new();
    let mut previous: Option<(i64, DateTime<Utc>)> = None;
    for (e, want) in events.iter().zip(&expected) {
        let what = format!("{} by {}", want.action, want.actor);
        let actor = e.actor.clone().context("actor")?;
        assert_eq!(
            (actor.id.as_str(), actor.name, actor.email),
            (
                want.actor,
                format!("User {}", want.actor),
                format!("{}@passare.com", want.actor)
            ),
            "{what}"
        );
        assert_eq!(e.organization_id, want.organization_id, "{what}");
        assert_eq!(e.import_id, want.import_id, "{what}");
        match want.request_id {
            Some(sent) => assert_eq!(e.request_id, sent, "{what}"),
            None => {
                // The server made one up: a UUID of its own.
                assert!(
                    uuid::Uuid::parse_str(&e.request_id).is_ok(),
                    "{what}: request_id {:?}",
                    e.request_id
                );
                assert!(generated.insert(e.request_id.clone()), "{what}");
            }
        }
        let details: serde_json::Value =
            serde_json::from_str(&e.details).with_context(|| format!("{what}: details"))?;
        let shown = details.as_object().context("details is an object")?;
        for (key, value) in want.details.as_object().context("expected details")? {
            assert_eq!(shown.get(key), Some(value), "{what}: details {key}");
        }
        let at = time_of(e.time.as_ref())?;
        assert!(t_a <= at && at <= t_d, "{what}: time {at}");
        let id: i64 = e.id.parse()?;
        if let Some((before_id, before_at)) = previous {
            assert!(id < before_id && at <= before_at, "{what}: newest first");
        }
        previous = Some((id, at));
    }
    let analyzed = serde_json::from_str::<serde_json::Value>(&events[8].details)?;
    assert_eq!(analyzed["rows"], 10, "{analyzed}");

    // Filters.
    let q = |f: &dyn Fn(&mut pb::ListAuditEventsRequest)| {
        let mut r = everything.clone();
        f(&mut r);
        r
    };
    let pick = |indexes: &[usize]| -> Vec<(String, String)> {
        indexes
            .iter()
            .map(|&i| who_did(&events[i..=i])[0].clone())
            .collect()
    };
    let ids_of = |list: &[pb::AuditEvent]| list.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    let event_ids = |indexes: &[usize]| {
        indexes
            .iter()
            .map(|&i| events[i].id.clone())
            .collect::<Vec<_>>()
    };
    let first_y_event = events[6].time;
    let filters: Vec<(pb::ListAuditEventsRequest, Vec<usize>, &str)> = vec![
        (
            q(&|r| r.organization_id = "1042".into()),
            vec![0, 3, 7, 8, 9, 10, 11, 12],
            "organization 1042",
        ),
        (
            q(&|r| r.organization_id = "2001".into()),
            vec![4, 5, 6],
            "organization 2001",
        ),
        (
            q(&|r| r.actor = "carol-3".into()),
            vec![0, 2, 4, 5, 6],
            "actor carol by id",
        ),
        (
            q(&|r| r.actor = "carol-3@passare.com".into()),
            vec![0, 2, 4, 5, 6],
            "actor carol by e-mail",
        ),
        (
            q(&|r| r.actor = "admin-1".into()),
            vec![1, 3, 7, 8, 9, 10, 11, 12],
            "actor admin by id",
        ),
        (
            q(&|r| r.action = "upload_file".into()),
            vec![5, 10, 11],
            "action upload_file",
        ),
        (
            q(&|r| r.action = "pause_imports".into()),
            vec![2, 3],
            "action pause_imports",
        ),
        (
            q(&|r| r.import_id = x.clone()),
            vec![7, 8, 9, 10, 11, 12],
            "import x",
        ),
        (q(&|r| r.import_id = y.clone()), vec![4, 5, 6], "import y"),
        (
            q(&|r| {
                r.time_after = Some(ts(t_b));
                r.time_before = Some(ts(t_c));
            }),
            vec![4, 5, 6],
            "time in [t_b, t_c)",
        ),
        (
            q(&|r| r.time_after = Some(ts(t_c))),
            vec![0, 1, 2, 3],
            "time after t_c",
        ),
        (
            q(&|r| r.time_before = Some(ts(t_b))),
            vec![7, 8, 9, 10, 11, 12],
            "time before t_b",
        ),
        (
            q(&|r| r.time_after = first_y_event),
            vec![0, 1, 2, 3, 4, 5, 6],
            "time_after is inclusive",
        ),
        (
            q(&|r| r.time_before = first_y_event),
            vec![7, 8, 9, 10, 11, 12],
            "time_before is exclusive",
        ),
        (
            q(&|r| {
                r.actor = "carol-3".into();
                r.action = "pause_imports".into();
            }),
            vec![2],
            "carol + pause_imports",
        ),
        (
            q(&|r| {
                r.organization_id = "1042".into();
                r.action = "resume_imports".into();
            }),
            vec![0],
            "1042 + resume_imports",
        ),
        (
            q(&|r| {
                r.import_id = x.clone();
                r.action = "upload_file".into();
                r.time_before = Some(ts(t_b));
            }),
            vec![10, 11],
            "x + upload_file + before t_b",
        ),
        (
            q(&|r| {
                r.actor = "admin-1".into();
                r.organization_id = "2001".into();
            }),
            vec![],
            "admin + 2001",
        ),
        (q(&|r| r.actor = "nobody".into()), vec![], "unknown actor"),
    ];
    for (request, want, what) in filters {
        let got = audit_all(&mut admin, request).await?;
        assert_eq!(who_did(&got), pick(&want), "{what}");
        assert_eq!(ids_of(&got), event_ids(&want), "{what}");
    }
    // Not audited: the creation retried, the no-op start, the refused stop
    // and the repeated stop.
    for sent in ["req-create-x-retry", "req-refused-stop"] {
        assert!(
            events.iter().all(|e| e.request_id != sent),
            "{sent} is in the audit log"
        );
    }

    // Paging: by four, then a filtered list by three.
    let by_four = pages::pages(
        &mut admin,
        pb::ListAuditEventsRequest {
            page_size: 4,
            ..Default::default()
        },
    )
    .await?;
    let pages: Vec<Vec<String>> = by_four.iter().map(|p| ids_of(&p.items)).collect();
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![4, 4, 4, 1]
    );
    assert_eq!(pages.concat(), ids_of(&events));
    let by_three = pages::pages(
        &mut admin,
        pb::ListAuditEventsRequest {
            page_size: 3,
            organization_id: "1042".into(),
            ..Default::default()
        },
    )
    .await?;
    let pages: Vec<Vec<String>> = by_three.iter().map(|p| ids_of(&p.items)).collect();
    assert_eq!(pages.concat(), event_ids(&[0, 3, 7, 8, 9, 10, 11, 12]));
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 2]
    );
    for (bad, what) in [
        (q(&|r| r.page_token = "zz".into()), "page_token"),
        (q(&|r| r.import_id = "not-a-uuid".into()), "import_id"),
        (q(&|r| r.organization_id = "x".into()), "organization_id"),
        (q(&|r| r.page_size = -5), "page_size"),
    ] {
        let refused = audit_page(&mut admin, bad)
            .await
            .err()
            .with_context(|| format!("{what} was accepted"))?;
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{what}");
    }

    // Developers read the log; a plain user may not.
    let mut developer = env.client_as(&DEVELOPER).await?;
    assert_eq!(
        ids_of(&audit_all(&mut developer, everything.clone()).await?),
        ids_of(&events)
    );
    let mut plain = env.client_as(&PLAIN).await?;
    for request in [
        everything.clone(),
        q(&|r| r.organization_id = "1042".into()),
    ] {
        let denied = audit_page(&mut plain, request)
            .await
            .err()
            .context("a plain user read the audit log")?;
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    }
    env.finish().await
}

/// Every file under `dir`, as paths relative to it, sorted.
fn files_under(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir)?.display().to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Row-level results of an import: (row errors, row edits, chunk failures).
async fn row_results(env: &TestEnv, import_id: &str) -> anyhow::Result<(i64, i64, i64)> {
    let mut out = [0i64; 3];
    for (n, table) in ["row_errors", "row_edits", "chunk_failures"]
        .iter()
        .enumerate()
    {
        out[n] = count(
            &env.db,
            &format!("SELECT count(*) FROM {table} WHERE import_id = '{import_id}'"),
        )
        .await?;
    }
    Ok((out[0], out[1], out[2]))
}

/// The summary of a file that must survive the purge.
fn file_summary(
    f: &pb::ImportFile,
) -> (String, String, String, i64, i64, i32, Option<pb::Progress>) {
    (
        f.id.clone(),
        f.name.clone(),
        f.sha256.clone(),
        f.size_bytes,
        f.row_count,
        f.state,
        f.progress,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_uploaded_files_and_row_results_but_keeps_the_summary()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    env.organization(2001).await?;
    let mut client = env.client().await?;
    let valid_rows = pb::FailurePolicy::ImportValidRows;
    let storage = env.config.storage_dir.clone();

    // P: a Windows-1252 cases file (stored with a UTF-8 conversion) and a
    // rolodex, with failing rows in both; a fix, a retry (retry files), and
    // an edit waiting for the next retry.
    let legacy = "case_number,deceased_first_name,deceased_last_name,date_of_birth,date_of_death,location_name\n\
                  L1,Jos\u{e9},Garc\u{ed}a,1950-01-01,2020-01-01,Main Chapel\n\
                  L2,Ren\u{e9}e,Dubois,not a date,2020-01-01,Main Chapel\n\
                  L3,Zo\u{eb},Lee,1951-02-02,2021-03-03,north chapel\n\
                  L4,Ana,Cruz,1952-03-03,2022-04-04,Nowhere Chapel\n";
    let (legacy_bytes, _, _) = encoding_rs::WINDOWS_1252.encode(legacy);
    let legacy_bytes = legacy_bytes.into_owned();
    let vendors = rolodex(&[
        "St. Mark's Church,church,,",
        "Greenlawn Cemetery,cemetery,,",
        "Sunny Acres,spaceport,,",
    ]);
    let (p, p_files) = files::draft_with_files(
        &mut client,
        1042,
        valid_rows,
        &[
            NewFile::new("legacy-cases.csv", "cases", legacy_bytes.clone())
                .encoding("windows-1252"),
            NewFile::new("vendors.csv", "rolodex", vendors.clone()),
        ],
    )
    .await?;
    let (legacy_file, vendors_file) = (p_files[0].id.clone(), p_files[1].id.clone());
    start(&mut client, &p).await?;
    let first = wait_terminal(&mut client, &p).await?;
    assert_eq!(state(&first), pb::ImportState::CompletedWithErrors);
    assert_eq!(
        first
            .progress
            .as_ref()
            .map(|p| (p.rows_created, p.rows_failed)),
        Some((4, 3))
    );
    update_row(&mut client, &p, &vendors_file, 3, &[("category", "vendor")]).await?;
    let retried = client
        .retry_failed_rows(pb::RetryFailedRowsRequest {
            import_id: p.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(retried.rows_retried, 3);
    let second = wait_terminal(&mut client, &p).await?;
    assert_eq!(state(&second), pb::ImportState::CompletedWithErrors);
    assert_eq!(second.attempt, 2);
    assert_eq!(
        second
            .progress
            .as_ref()
            .map(|p| (p.rows_created, p.rows_failed)),
        Some((5, 2))
    );
    update_row(
        &mut client,
        &p,
        &legacy_file,
        2,
        &[("date_of_birth", "1950-05-05")],
    )
    .await?;
    // A recorded failed attempt at one of its chunks.
    sqlx::query(
        "INSERT INTO chunk_failures (chunk_id, import_id, file_id, organization_id, chunk_seq,
                first_row, last_row, attempt, error_kind, transient, message, worker_host,
                worker_pid, outcome, retry_at, queued_at)
         SELECT id, import_id, file_id, organization_id, seq, first_row,
                first_row + row_count - 1, 1, 'database_busy', true,
                'too many connections', 'worker-a', 4242, 'retry_scheduled', now(), queued_at
           FROM chunks WHERE import_id = $1::uuid ORDER BY id LIMIT 1",
    )
    .bind(&p)
    .execute(env.db.pool())
    .await?;
    let p_results = row_results(&env, &p).await?;
    assert!(
        p_results.0 >= 2 && p_results.1 >= 1 && p_results.2 == 1,
        "P has row errors, edits and a chunk failure: {p_results:?}"
    );
    let p_dir = storage.join("imports").join(&p);
    let mut p_stored = vec![
        legacy_file.clone(),
        format!("{legacy_file}.retry-2.csv"),
        format!("{legacy_file}.utf8.csv"),
        vendors_file.clone(),
        format!("{vendors_file}.retry-2.csv"),
    ];
    p_stored.sort();
    // A retry file's name ends in a suffix unique to the call that wrote it.
    let stored_now: Vec<String> = files_under(&p_dir)?
        .into_iter()
        .map(|name| match name.split_once(".retry-2-") {
            Some((stem, rest)) if rest.ends_with(".csv") => format!("{stem}.retry-2.csv"),
            _ => name,
        })
        .collect();
    assert_eq!(stored_now, p_stored, "P's stored files");
    let p_audit_before = audit_all(
        &mut client,
        pb::ListAuditEventsRequest {
            import_id: p.clone(),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(
        who_did(&p_audit_before)
            .iter()
            .map(|(a, _)| a.as_str())
            .collect::<Vec<_>>(),
        vec![
            "update_rows",
            "retry_failed_rows",
            "update_rows",
            "start_import",
            "upload_file",
            "upload_file",
            "create_import"
        ]
    );

    // D: a draft with a file, abandoned.
    let (d, d_files) = files::draft_with_files(
        &mut client,
        1042,
        valid_rows,
        &[NewFile::new("abandoned.csv", "cases", cases_csv(5, 3)?)],
    )
    .await?;
    let d_dir = storage.join("imports").join(&d);
    assert_eq!(files_under(&d_dir)?, vec![d_files[0].id.clone()]);

    // Q: queued long ago under a pause: not ended, so not due.
    pause(&mut client, Some(2001), "waiting for the client").await?;
    let (q, _) = files::draft_with_files(
        &mut client,
        2001,
        valid_rows,
        &[NewFile::new("held.csv", "cases", cases_csv(5, 4)?)],
    )
    .await?;
    assert_eq!(
        state(&start(&mut client, &q).await?),
        pb::ImportState::Paused
    );
    let q_dir = storage.join("imports").join(&q);
    let q_stored = files_under(&q_dir)?;
    assert_eq!(q_stored.len(), 1);

    // R: a recent import with errors, and a recent draft: not due.
    let (r, r_files) = files::draft_with_files(
        &mut client,
        1042,
        valid_rows,
        &[NewFile::new(
            "recent-vendors.csv",
            "rolodex",
            vendors.clone(),
        )],
    )
    .await?;
    start(&mut client, &r).await?;
    assert_eq!(
        state(&wait_terminal(&mut client, &r).await?),
        pb::ImportState::CompletedWithErrors
    );
    let (r2, _) = files::draft_with_files(
        &mut client,
        1042,
        valid_rows,
        &[NewFile::new("recent-draft.csv", "cases", cases_csv(3, 5)?)],
    )
    .await?;
    let r_dir = storage.join("imports").join(&r);
    let r2_dir = storage.join("imports").join(&r2);
    let r_stored = files_under(&r_dir)?;
    let r2_stored = files_under(&r2_dir)?;
    assert_eq!((r_stored.len(), r2_stored.len()), (1, 1));
    let r_before = get(&mut client, &r).await?;
    let r_results = row_results(&env, &r).await?;
    assert_eq!(r_results, (1, 0, 0));

    // Make P and D old, and Q too (it never ended).
    for (sql, id) in [
        (
            "UPDATE imports SET finished_at = now() - interval '100 days' WHERE id = $1::uuid",
            &p,
        ),
        (
            "UPDATE imports SET created_at = now() - interval '100 days' WHERE id = $1::uuid",
            &d,
        ),
        (
            "UPDATE imports SET created_at = now() - interval '100 days' WHERE id = $1::uuid",
            &q,
        ),
    ] {
        let done = sqlx::query(sql).bind(id).execute(env.db.pool()).await?;
        assert_eq!(done.rows_affected(), 1);
    }
    // P as it is before the purge, ended 100 days ago.
    let p_before = get(&mut client, &p).await?;
    let ended = time_of(p_before.end_time.as_ref())?;
    assert!(Utc::now() - ended > chrono::Duration::days(99), "{ended}");

    let purge_started = Utc::now();
    let purged = tokio::time::timeout(Duration::from_secs(60), service::purge_due(&env.config, 90))
        .await
        .context("purge_due took longer than 60 s")??;
    let purge_ended = Utc::now();
    assert_eq!(
        purged, 2,
        "P and D are due; Q, R and the recent draft are not"
    );

    // P: files and row-level results gone, the summary stays.
    assert_eq!(files_under(&p_dir)?, Vec::<String>::new());
    assert_eq!(row_results(&env, &p).await?, (0, 0, 0));
    let p_after = get(&mut client, &p).await?;
    assert_eq!(state(&p_after), pb::ImportState::CompletedWithErrors);
    assert_eq!(p_after.attempt, 2);
    assert_eq!(p_after.progress, p_before.progress);
    assert_eq!(p_after.end_time, p_before.end_time);
    assert_eq!(
        p_after.files.iter().map(file_summary).collect::<Vec<_>>(),
        p_before.files.iter().map(file_summary).collect::<Vec<_>>()
    );
    let legacy_after = file(&p_after, "legacy-cases.csv")?;
    assert_eq!(
        (
            legacy_after.sha256.as_str(),
            legacy_after.row_count,
            legacy_after.encoding.as_str()
        ),
        (sha256_hex(&legacy_bytes).as_str(), 4, "windows-1252")
    );
    assert_eq!(
        legacy_after
            .progress
            .as_ref()
            .map(|p| (p.rows_created, p.rows_failed)),
        Some((2, 2))
    );
    assert_eq!(file(&p_after, "vendors.csv")?.sha256, sha256_hex(&vendors));
    let purged_at = time_of(p_after.results_purge_time.as_ref())?;
    assert!(
        purge_started - chrono::Duration::seconds(1) <= purged_at
            && purged_at <= purge_ended + chrono::Duration::seconds(1),
        "results_purge_time {purged_at}"
    );
    assert_eq!(
        p_after.timeline[..p_after.timeline.len() - 1],
        p_before.timeline[..],
        "the timeline stays"
    );
    let last = p_after.timeline.last().context("timeline")?;
    assert_eq!(
        (last.kind.as_str(), last.actor.is_none()),
        ("results_purged", true)
    );
    assert!(last.detail.contains("90 days"), "{}", last.detail);
    assert_eq!(
        ids_of_events(
            &audit_all(
                &mut client,
                pb::ListAuditEventsRequest {
                    import_id: p.clone(),
                    ..Default::default()
                },
            )
            .await?
        ),
        ids_of_events(&p_audit_before),
        "the audit log stays"
    );
    for kind in [pb::ResultKind::FailedRows, pb::ResultKind::WrittenRows] {
        let refused = download(&mut client, &p, &legacy_file, kind)
            .await
            .err()
            .with_context(|| format!("{kind:?} of a purged import was served"))?;
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{kind:?}");
        assert_eq!(
            reason(&refused).as_deref(),
            Some("RESULTS_PURGED"),
            "{kind:?}"
        );
    }
    let refused = client
        .retry_failed_rows(pb::RetryFailedRowsRequest {
            import_id: p.clone(),
        })
        .await
        .err()
        .context("a purged import was retried")?;
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&refused).as_deref(), Some("RESULTS_PURGED"));
    let refused = update_row(
        &mut client,
        &p,
        &legacy_file,
        4,
        &[("location_name", "Main Chapel")],
    )
    .await
    .err()
    .context("rows of a purged import were edited")?;
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&refused).as_deref(), Some("RESULTS_PURGED"));

    // D: ended stopped, saying why; its file is gone, its summary stays.
    assert_eq!(files_under(&d_dir)?, Vec::<String>::new());
    let d_after = get(&mut client, &d).await?;
    assert_eq!(state(&d_after), pb::ImportState::Stopped);
    assert!(
        d_after.stop_reason.contains("files were deleted"),
        "{:?}",
        d_after.stop_reason
    );
    assert!(d_after.stopped_by.is_none(), "the service stopped it");
    assert!(d_after.results_purge_time.is_some());
    assert!(d_after.end_time.is_some());
    assert_eq!(
        d_after
            .files
            .iter()
            .map(|f| (f.id.clone(), f.sha256.clone(), f.row_count))
            .collect::<Vec<_>>(),
        vec![(d_files[0].id.clone(), d_files[0].sha256.clone(), 5)]
    );
    assert_eq!(
        d_after
            .timeline
            .last()
            .map(|s| (s.kind.as_str(), s.actor.is_none())),
        Some(("results_purged", true))
    );
    assert_eq!(
        state(&start(&mut client, &d).await?),
        pb::ImportState::Stopped,
        "a purged draft never starts"
    );

    // Q, R and the recent draft are untouched.
    let q_after = get(&mut client, &q).await?;
    assert_eq!(state(&q_after), pb::ImportState::Paused);
    assert!(q_after.results_purge_time.is_none());
    assert_eq!(files_under(&q_dir)?, q_stored);
    assert_eq!(files_under(&r_dir)?, r_stored);
    assert_eq!(files_under(&r2_dir)?, r2_stored);
    assert_eq!(row_results(&env, &r).await?, r_results);
    let r_after = get(&mut client, &r).await?;
    assert!(r_after.results_purge_time.is_none());
    assert_eq!(r_after.timeline, r_before.timeline);
    let failed_rows = download(&mut client, &r, &r_files[0].id, pb::ResultKind::FailedRows)
        .await
        .map_err(client::describe)?;
    assert!(
        String::from_utf8_lossy(&failed_rows.bytes).contains("Sunny Acres"),
        "the recent import's results are still served"
    );
    let r2_after = get(&mut client, &r2).await?;
    assert_eq!(state(&r2_after), pb::ImportState::Draft);
    assert!(r2_after.results_purge_time.is_none());

    // Nothing more is due.
    assert_eq!(service::purge_due(&env.config, 90).await?, 0);
    // Checked last, after the environment is gone: the draft ended STOPPED
    // by the retention job must say when (Import.stop_time).
    let stop_time_shown = d_after.stop_time.is_some();
    env.finish().await?;
    assert!(
        stop_time_shown,
        "the draft ended STOPPED by retention has no stop_time: {d_after:?}"
    );
    Ok(())
}

fn ids_of_events(events: &[pb::AuditEvent]) -> Vec<String> {
    events.iter().map(|e| e.id.clone()).collect()
}

/// (id, name) of the organizations a query finds, page by page.
async fn organizations(
    client: &mut Client,
    query: &str,
    page_size: i32,
) -> anyhow::Result<Vec<Vec<(String, String)>>> {
    let request = pb::ListOrganizationsRequest {
        query: query.into(),
        page_size,
        page_token: String::new(),
    };
    Ok(pages::pages(client, request)
        .await?
        .into_iter()
        .map(|p| p.items.into_iter().map(|o| (o.id, o.name)).collect())
        .collect())
}

/// The ids of every organization a query finds (all pages).
async fn found(client: &mut Client, query: &str) -> anyhow::Result<Vec<String>> {
    Ok(organizations(client, query, 0)
        .await?
        .concat()
        .into_iter()
        .map(|(id, _)| id)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_organization_picker_finds_organizations_by_name_or_id() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    env.organization(2001).await?;
    for (id, name) in [
        (5001, "Hillside Memorial Chapel"),
        (5002, "Riverbend Cremation Services"),
        (5003, "OAKWOOD FUNERAL HOME"),
        (5004, "Oak Grove Cemetery"),
        (5005, "Oak Grove Cemetery"),
        (5006, "Église Saint-Pierre Funérailles"),
        (5007, "Smith | Sons Funeral Services"),
    ] {
        passare_imports_store::organizations::ensure_demo(
            &mut *env.db.conn().await?,
            id,
            name,
            generate::DEMO_SETUP,
        )
        .await?;
    }
    let mut admin = env.client().await?;

    // By name, then id.
    let everything = organizations(&mut admin, "", 500).await?;
    assert_eq!(everything.len(), 1, "one page");
    let everything = everything.concat();
    let ascii: Vec<&str> = everything
        .iter()
        .filter(|(id, _)| id != "5006")
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(
        ascii,
        vec![
            "5001", "5004", "5005", "5003", "2001", "5002", "1042", "5007"
        ]
    );
    assert_eq!(everything.len(), 9);
    assert!(everything.contains(&(
        "5006".to_string(),
        "Église Saint-Pierre Funérailles".to_string()
    )));
    assert!(everything.contains(&("1042".to_string(), "Riverside Funeral Home".to_string())));

    // Part of a name in any case, or an exact id.
    let queries: [(&str, Vec<&str>); 14] = [
        ("river", vec!["5002", "1042"]),
        ("RIVERSIDE", vec!["1042"]),
        ("  river  ", vec!["5002", "1042"]),
        ("funeral", vec!["5003", "1042", "5007"]),
        ("oak grove", vec!["5004", "5005"]),
        ("OaK", vec!["5004", "5005", "5003"]),
        ("ÉGLISE", vec!["5006"]),
        ("funérailles", vec!["5006"]),
        ("| sons", vec!["5007"]),
        ("5003", vec!["5003"]),
        ("1042", vec!["1042"]),
        ("2001", vec!["2001"]),
        ("500", vec![]),
        ("crematorium", vec![]),
    ];
    for (query, want) in queries {
        assert_eq!(found(&mut admin, query).await?, want, "query {query:?}");
    }

    // Paging: by two over everything, by one through equal names.
    let by_two = organizations(&mut admin, "", 2).await?;
    assert_eq!(
        by_two.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![2, 2, 2, 2, 1]
    );
    assert_eq!(by_two.concat(), everything);
    let by_one = organizations(&mut admin, "oak", 1).await?;
    assert_eq!(
        by_one
            .iter()
            .map(|p| p.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        vec![vec!["5004"], vec!["5005"], vec!["5003"]]
    );
    let refused = admin
        .list_organizations(pb::ListOrganizationsRequest {
            query: String::new(),
            page_size: 2,
            page_token: "not a token".into(),
        })
        .await
        .err()
        .context("a forged page token was accepted")?;
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    // A plain user of 1042 sees 1042 only, whatever the query.
    let mut plain = env.client_as(&PLAIN).await?;
    for (query, want) in [
        ("", vec!["1042"]),
        ("river", vec!["1042"]),
        ("1042", vec!["1042"]),
        ("oak", vec![]),
        ("2001", vec![]),
        ("5002", vec![]),
    ] {
        assert_eq!(
            found(&mut plain, query).await?,
            want,
            "plain user, {query:?}"
        );
    }
    // A user of no organization who is not staff sees none; a developer all.
    let mut stranger = env
        .client_as(&User {
            id: "stranger-1",
            super_admin: false,
            developer: false,
            org: None,
        })
        .await?;
    assert!(found(&mut stranger, "").await?.is_empty());
    let mut developer = env.client_as(&DEVELOPER).await?;
    assert_eq!(
        organizations(&mut developer, "", 500).await?.concat(),
        everything
    );
    env.finish().await
}
