//! Record events: a service bound to the records exchange receives exactly
//! one event per record an import created or updated — none for unchanged
//! rows, none for failed rows — with routing keys by organization, type and
//! outcome, the changed columns with their new values (sensitive ones
//! masked), and stable ids; an all-or-nothing import that failed and was
//! rolled back leaves it nothing to apply, one that completed delivers its
//! events once it completed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use passare_imports_integration_tests::subscriber::{Delivered, Subscriber};
use passare_imports_integration_tests::*;
use passare_imports_proto::events::v1 as ev;
use passare_imports_proto::v1 as pb;

const ORG: i64 = 1042;
const WITHIN: Duration = Duration::from_secs(30);
const QUIET: Duration = Duration::from_millis(1_500);

fn of_import<'a>(got: &'a [Delivered], id: &str) -> Vec<&'a Delivered> {
    got.iter().filter(|d| d.event.import_id == id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_one_event_per_record_created_or_updated() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 1_000,
        ..Options::default()
    })
    .await?;
    let everything = Subscriber::bind(&env, &format!("{ORG}.#")).await?;
    let updates = Subscriber::bind(&env, "*.cases.updated").await?;
    let other_org = Subscriber::bind(&env, "2001.#").await?;
    let mut client = env.client().await?;

    // 2,500 new cases, two of them failing: 2,498 created events.
    let mut rows = generated_rows(2_500, 21);
    rows[10][5] = "not-a-date".into();
    rows[2_000][5] = "not-a-date".into();
    let (first, file) = env
        .draft_with_file(
            &mut client,
            ORG,
            pb::FailurePolicy::ImportValidRows,
            "cases.csv",
            &cases_csv_of(&rows),
        )
        .await?;
    start(&mut client, &first).await?;
    wait_terminal(&mut client, &first).await?;
    let got = everything.collect(2_498, WITHIN, QUIET).await?;
    assert_eq!(
        got.len(),
        2_498,
        "one event per record created, none for failed rows"
    );
    let ids: BTreeSet<&str> = got.iter().map(|d| d.event.event_id.as_str()).collect();
    assert_eq!(ids.len(), got.len(), "every event has its own id");
    let sample = &got[0];
    assert_eq!(sample.routing_key, format!("{ORG}.cases.created"));
    assert_eq!(sample.message_id, sample.batch_id);
    let batches: BTreeSet<&str> = got.iter().map(|d| d.batch_id.as_str()).collect();
    assert_eq!(batches.len(), 3, "one message per chunk write and outcome");
    assert_eq!(sample.event.outcome, ev::RecordOutcome::Created as i32);
    assert_eq!(sample.event.file_id, file.id);
    assert_eq!(sample.event.key.len(), 1);
    assert_eq!(sample.event.key[0].column, "case_number");
    let columns: BTreeSet<&str> = sample
        .event
        .changes
        .iter()
        .map(|c| c.column.as_str())
        .collect();
    assert!(
        columns.contains("deceased_last_name") && columns.contains("date_of_death"),
        "a created record carries every column: {columns:?}"
    );
    let rows_with_events: BTreeSet<i64> = got.iter().map(|d| d.event.row).collect();
    assert_eq!(rows_with_events.len(), 2_498);

    // The same file again: nothing changed, no event.
    let (same, _) = env
        .draft_with_file(
            &mut client,
            ORG,
            pb::FailurePolicy::ImportValidRows,
            "cases.csv",
            &cases_csv_of(&rows),
        )
        .await?;
    start(&mut client, &same).await?;
    wait_terminal(&mut client, &same).await?;

    // Ten rows renamed: ten updated events carrying only that column. Then
    // the same ten renamed again by an all-or-nothing import, which keeps
    // their before-images and takes the changed columns from them.
    let mut renamed = rows.clone();
    for (round, (policy, mark)) in [
        (pb::FailurePolicy::ImportValidRows, 'x'),
        (pb::FailurePolicy::StopOnFirstError, 'y'),
    ]
    .into_iter()
    .enumerate()
    {
        for r in renamed.iter_mut().skip(100).take(10) {
            r[1] = format!("{}{mark}", r[1]);
        }
        // The all-or-nothing file leaves out the two failing rows.
        let file: Vec<CaseValues> = match policy {
            pb::FailurePolicy::StopOnFirstError => renamed
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 10 && *i != 2_000)
                .map(|(_, r)| r.clone())
                .collect(),
            _ => renamed.clone(),
        };
        let (changed, _) = env
            .draft_with_file(&mut client, ORG, policy, "cases.csv", &cases_csv_of(&file))
            .await?;
        start(&mut client, &changed).await?;
        let done = wait_terminal(&mut client, &changed).await?;
        assert_ne!(state(&done), pb::ImportState::Failed, "{done:?}");
        let later = everything.collect(10, WITHIN, QUIET).await?;
        if round == 0 {
            assert!(
                of_import(&later, &same).is_empty(),
                "an unchanged re-import emits nothing"
            );
        }
        let updated = of_import(&later, &changed);
        assert_eq!(updated.len(), 10, "{policy:?}: {later:?}");
        for d in &updated {
            assert_eq!(d.routing_key, format!("{ORG}.cases.updated"));
            let changes: BTreeMap<&str, Option<&str>> = d
                .event
                .changes
                .iter()
                .map(|c| (c.column.as_str(), c.value.as_deref()))
                .collect();
            assert_eq!(
                changes.keys().copied().collect::<Vec<_>>(),
                vec!["deceased_first_name"],
                "{policy:?}"
            );
            assert!(changes["deceased_first_name"].is_some_and(|v| v.ends_with(mark)));
        }
        let by_outcome = updates.collect(10, WITHIN, QUIET).await?;
        assert_eq!(
            by_outcome.len(),
            10,
            "a binding by outcome gets only the updates"
        );
    }
    assert!(
        other_org
            .collect(0, Duration::ZERO, QUIET)
            .await?
            .is_empty()
    );

    for s in [everything, updates, other_org] {
        s.close().await?;
    }
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_import_leaves_subscribers_nothing_to_apply() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 500,
        ..Options::default()
    })
    .await?;
    let subscriber = Subscriber::bind(&env, "#").await?;
    let mut client = env.client().await?;
    // Five chunks are written before row 2,700 fails and the import rolls back.
    let (id, _) = env
        .started_with_a_late_failure(
            &mut client,
            ORG,
            pb::FailurePolicy::StopOnFirstError,
            &cases_csv(3_000, 22)?,
            2_700,
        )
        .await?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(state(&done), pb::ImportState::Failed);
    assert!(done.rollback_time.is_some());
    let got = subscriber.collect(0, Duration::from_secs(3), QUIET).await?;
    assert!(
        of_import(&got, &id).is_empty(),
        "no event of a write that was undone: {} arrived",
        of_import(&got, &id).len()
    );
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM record_events WHERE import_id = $1::uuid")
            .bind(&id)
            .fetch_one(&mut *env.db.conn().await?)
            .await?;
    assert_eq!(left, 0, "the held events were dropped");

    // An all-or-nothing import that completes lets its held events go.
    let whole = env
        .generated_draft(
            &mut client,
            ORG,
            pb::FailurePolicy::StopOnFirstError,
            1_200,
            23,
        )
        .await?;
    start(&mut client, &whole).await?;
    assert_eq!(
        state(&wait_terminal(&mut client, &whole).await?),
        pb::ImportState::Completed
    );
    let released = subscriber.collect(1_200, WITHIN, QUIET).await?;
    assert_eq!(of_import(&released, &whole).len(), 1_200);
    subscriber.close().await?;
    env.finish().await
}
