//! Analysis as background work: AnalyzeImport returns with the job queued,
//! a worker runs it with its progress in the import, StartImport refuses
//! while it runs, and a worker killed in the middle of an analysis leaves it
//! to another worker, which finishes it.

use std::time::Duration;

use futures::StreamExt;
use passare_imports_integration_tests::files::{self, NewFile};
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use tonic_types::StatusExt;

fn job_state(import: &pb::Import) -> pb::AnalysisJobState {
    import
        .analysis_job
        .as_ref()
        .and_then(|j| pb::AnalysisJobState::try_from(j.state).ok())
        .unwrap_or(pb::AnalysisJobState::Unspecified)
}

fn big_cases(rows: u64) -> anyhow::Result<NewFile> {
    Ok(NewFile::new(
        "cases.csv",
        "cases",
        fixtures::cases_csv(rows, 11)?,
    ))
}

/// AnalyzeImport returns before the report exists (no worker runs yet, so
/// the job stays queued and StartImport is refused); once a worker runs,
/// WatchImport shows the job running with rows checked, then done with the
/// report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_runs_in_a_worker_and_its_progress_is_watched() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 200,
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let (id, _) = files::draft_with_files(
        &mut client,
        1042,
        pb::FailurePolicy::ImportValidRows,
        &[big_cases(6_000)?],
    )
    .await?;
    let answer = client
        .analyze_import(pb::AnalyzeImportRequest {
            import_id: id.clone(),
        })
        .await?
        .into_inner();
    let queued = answer.import.clone().unwrap_or_default();
    let refused = start(&mut client, &id).await.err();
    let mut watch = client
        .watch_import(pb::WatchImportRequest {
            import_id: id.clone(),
        })
        .await?
        .into_inner();
    let worker = env.start_worker().await?;
    let mut seen = Vec::new();
    let done = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(event) = watch.next().await {
            let import = event?.import.unwrap_or_default();
            let job = import.analysis_job.clone().unwrap_or_default();
            seen.push((job_state(&import), job.rows_done, job.rows_total));
            if job_state(&import) == pb::AnalysisJobState::Done {
                return Ok::<_, anyhow::Error>(Some(import));
            }
        }
        Ok(None)
    })
    .await??;
    drop(watch);
    let started = start(&mut client, &id).await;
    worker.stop().await?;
    env.finish().await?;

    assert!(
        answer.report.is_none(),
        "the report came with AnalyzeImport"
    );
    assert_eq!(job_state(&queued), pb::AnalysisJobState::Queued);
    assert!(queued.analysis.is_none(), "a report before any worker ran");
    let refused = refused.expect("StartImport while the analysis waits");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        refused.get_details_error_info().map(|i| i.reason),
        Some("ANALYSIS_RUNNING".into()),
        "{refused:?}"
    );
    let running: Vec<_> = seen
        .iter()
        .filter(|(s, done, _)| *s == pb::AnalysisJobState::Running && *done > 0)
        .collect();
    assert!(
        running.iter().any(|(_, done, total)| done < total),
        "no progress seen while running: {seen:?}"
    );
    let done = done.expect("the watch ended before the analysis was done");
    let report = done.analysis.expect("DONE without the report");
    assert_eq!(report.files.first().map(|f| f.rows), Some(6_000));
    assert_eq!(
        done.analysis_job.map(|j| (j.rows_done, j.rows_total)),
        Some((6_000, 6_000))
    );
    assert!(
        started.is_ok(),
        "StartImport after the analysis: {started:?}"
    );
    Ok(())
}

/// A worker process SIGKILLed while it analyses: its job is taken over by
/// another worker once the lease has passed, and the analysis completes with
/// the same report an undisturbed analysis gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analysis_whose_worker_is_killed_still_completes() -> anyhow::Result<()> {
    fn short_lease(config: &mut passare_imports_app::config::Config) {
        config.analysis_lease_secs = 2;
    }
    let mut env = TestEnv::start(Options {
        chunk_rows: 100,
        in_process_workers: 0,
        configure: Some(short_lease),
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let (id, _) = files::draft_with_files(
        &mut client,
        1042,
        pb::FailurePolicy::ImportValidRows,
        &[big_cases(40_000)?],
    )
    .await?;
    let first = env.spawn_worker_process()?;
    files::request_analysis(&mut client, &id).await?;
    let running = wait_until(&mut client, &id, Duration::from_secs(60), |i| {
        job_state(i) == pb::AnalysisJobState::Running
            && i.analysis_job.as_ref().is_some_and(|j| j.rows_done > 0)
    })
    .await?;
    env.kill_worker_process(first)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let orphaned = get(&mut client, &id).await?;
    let second = env.spawn_worker_process()?;
    let report = files::wait_analysis(&mut client, &id).await?;
    let done = get(&mut client, &id).await?;
    // The same files analysed again, undisturbed, give the same report.
    let again = files::analyze(&mut client, &id).await?;
    env.terminate_worker_process(second)?;
    env.finish().await?;

    let rows_at = |i: &pb::Import| i.analysis_job.as_ref().map_or(0, |j| j.rows_done);
    assert!(
        rows_at(&running) < 40_000,
        "the analysis was over before the kill"
    );
    assert_eq!(job_state(&orphaned), pb::AnalysisJobState::Running);
    assert!(
        orphaned.analysis.is_none(),
        "a report from the killed worker"
    );
    assert_eq!(job_state(&done), pb::AnalysisJobState::Done);
    assert_eq!(report.files.first().map(|f| f.rows), Some(40_000));
    let comparable = |mut r: pb::AnalysisReport| {
        r.analyze_time = None;
        r.duration_ms = 0;
        r
    };
    assert_eq!(comparable(report), comparable(again));
    Ok(())
}
