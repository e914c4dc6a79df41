//! Files made to take the service down: workbooks that declare billions of
//! strings or cells, inflate a thousandfold or nest XML thousands deep are
//! refused with an error naming the limit and its setting, and the server
//! serves the next upload; a large Windows-1252 file is converted with
//! memory that does not grow with it (the peak is printed), and a conversion
//! stops at its configured size.

use std::time::{Duration, Instant};

use passare_imports_cli::client::Client;
use passare_imports_integration_tests::files::{self, NewFile};
use passare_imports_integration_tests::workbooks::Parts;
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;

/// An upload's outcome, bounded in time.
async fn upload(
    client: &mut Client,
    import_id: &str,
    file: NewFile,
) -> anyhow::Result<pb::ImportFile> {
    Ok(tokio::time::timeout(
        Duration::from_secs(120),
        files::upload(client, import_id, &file),
    )
    .await??)
}

/// The problems of a refused file, joined.
fn refusal(f: &pb::ImportFile) -> String {
    f.problems
        .iter()
        .map(|p| p.reason.as_str())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_workbooks_are_refused_naming_the_limit_and_the_server_keeps_serving()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    env.organization(7).await?;
    let mut client = env.client().await?;
    let import_id =
        files::create_draft(&mut client, 7, pb::FailurePolicy::StopOnFirstError).await?;

    let mut counts = Parts::cases(2);
    counts.sst_attributes = r#"count="4000000000000" uniqueCount="4000000000000""#.into();
    let mut dimension = Parts::cases(2);
    dimension.before_data = r#"<dimension ref="A1:XFD1048576"/>"#.into();
    let mut bomb = Parts::cases(2);
    // 64 MiB of one character deflate to about 64 KiB.
    bomb.after_data = format!("<!--{}-->", "a".repeat(64 * 1024 * 1024));
    let mut deep = Parts::cases(2);
    deep.after_data = format!(
        "<extLst>{}{}</extLst>",
        "<x>".repeat(100_000),
        "</x>".repeat(100_000)
    );
    let hostile = [
        (
            "declared shared strings",
            counts,
            "IMPORTS_XLSX_MAX_SHARED_STRINGS",
        ),
        ("declared dimension", dimension, "IMPORTS_XLSX_MAX_CELLS"),
        (
            "decompression bomb",
            bomb,
            "IMPORTS_XLSX_MAX_COMPRESSION_RATIO",
        ),
        ("deep XML", deep, "IMPORTS_XLSX_MAX_XML_DEPTH"),
    ];
    for (i, (what, parts, key)) in hostile.into_iter().enumerate() {
        let bytes = parts.write()?;
        println!("{what}: a workbook of {} bytes", bytes.len());
        let f = upload(
            &mut client,
            &import_id,
            NewFile::new(&format!("hostile-{i}.xlsx"), "cases", bytes),
        )
        .await?;
        assert_eq!(f.state, pb::FileState::Invalid as i32, "{what}: {f:?}");
        let reason = refusal(&f);
        assert!(reason.contains(key), "{what}: {reason}");
        assert!(reason.contains("beyond the limit of"), "{what}: {reason}");
        println!("{what}: {reason}");

        // The same server reads the next, valid workbook.
        let good = upload(
            &mut client,
            &import_id,
            NewFile::new(&format!("good-{i}.xlsx"), "cases", Parts::cases(3).write()?),
        )
        .await?;
        assert_eq!(
            good.state,
            pb::FileState::Ready as i32,
            "after {what}: {good:?}"
        );
        assert_eq!(good.row_count, 3, "after {what}");
    }
    env.finish().await
}

/// This process's peak resident memory (VmHWM), in KiB. The service runs
/// in the test's process, so this is the server's peak.
fn peak_rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/self/status"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_windows_1252_file_converts_with_bounded_memory() -> anyhow::Result<()> {
    const ROWS: u64 = 4_600_000;
    let env = TestEnv::start(Options::default()).await?;
    env.organization(7).await?;
    let mut client = env.client().await?;
    let import_id =
        files::create_draft(&mut client, 7, pb::FailurePolicy::StopOnFirstError).await?;

    // Rows in Windows-1252 (é is the single byte 0xE9), generated as they are sent.
    let header = b"case_number,deceased_first_name,deceased_last_name\n".to_vec();
    let row = |i: u64| {
        let mut r = format!("C{i:09},Ren").into_bytes();
        r.extend_from_slice(b"\xE9e,M\xFCller-Lef\xE8vre de la Fontaine\n");
        r
    };
    let size = header.len() as u64 + (1..=ROWS).map(|i| row(i).len() as u64).sum::<u64>();
    let before = peak_rss_kib()?;
    let mut file_header = NewFile::new("big-1252.csv", "cases", Vec::new()).header(&import_id);
    file_header.declared_size_bytes = size as i64;
    let head = pb::UploadFileRequest {
        payload: Some(pb::upload_file_request::Payload::Header(file_header)),
    };
    let batches = (0..ROWS / 10_000).map(move |b| {
        let mut chunk = if b == 0 { header.clone() } else { Vec::new() };
        for i in b * 10_000 + 1..=(b + 1) * 10_000 {
            chunk.extend_from_slice(&row(i));
        }
        pb::UploadFileRequest {
            payload: Some(pb::upload_file_request::Payload::Chunk(chunk)),
        }
    });
    let started = Instant::now();
    let messages = tokio_stream::iter(std::iter::once(head).chain(batches));
    let f = tokio::time::timeout(Duration::from_secs(900), client.upload_file(messages))
        .await??
        .into_inner()
        .file
        .ok_or_else(|| anyhow::anyhow!("UploadFile returned no file"))?;
    let elapsed = started.elapsed();
    assert_eq!(f.state, pb::FileState::Ready as i32, "{:?}", f.problems);
    assert_eq!(f.row_count, ROWS as i64);
    assert_eq!(f.encoding, "windows-1252");
    let peak = peak_rss_kib()?;
    println!(
        "windows-1252 file of {} MiB ({ROWS} rows) stored, converted and scanned in {:.1}s; peak RSS of the process serving it: {} MiB (before the upload {} MiB)",
        size / (1024 * 1024),
        elapsed.as_secs_f64(),
        peak / 1024,
        before / 1024
    );
    // Holding the upload or its conversion whole would take more than the file.
    assert!(
        peak * 1024 < size,
        "peak RSS {peak} KiB is not below the file's {size} bytes"
    );
    env.finish().await
}

fn small_conversions(config: &mut Config) {
    config.max_converted_bytes = 4_096;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_stops_at_the_configured_size() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        configure: Some(small_conversions),
        ..Options::default()
    })
    .await?;
    env.organization(7).await?;
    let mut client = env.client().await?;
    let import_id =
        files::create_draft(&mut client, 7, pb::FailurePolicy::StopOnFirstError).await?;
    let mut text = b"case_number,deceased_first_name,deceased_last_name\n".to_vec();
    let small = text.len();
    for i in 1..=400 {
        text.extend_from_slice(format!("C{i},Ren").as_bytes());
        text.extend_from_slice(b"\xE9e,M\xFCller\n");
    }
    let f = upload(
        &mut client,
        &import_id,
        NewFile::new("big.csv", "cases", text.clone()),
    )
    .await?;
    assert_eq!(f.state, pb::FileState::Invalid as i32, "{f:?}");
    let reason = refusal(&f);
    assert!(
        reason.contains("IMPORTS_MAX_CONVERTED_BYTES") && reason.contains("4096"),
        "{reason}"
    );
    // A file whose conversion fits is read by the same server.
    text.truncate(small);
    text.extend_from_slice(b"C1,Ren\xE9e,M\xFCller\n");
    let f = upload(
        &mut client,
        &import_id,
        NewFile::new("small.csv", "cases", text),
    )
    .await?;
    assert_eq!(f.state, pb::FileState::Ready as i32, "{f:?}");
    assert_eq!(f.encoding, "windows-1252");
    env.finish().await
}
