//! The object-storage phase of `bench` (`--storage s3`): the same file
//! imported again by services whose file store is an S3 bucket
//! (`IMPORTS_STORAGE=s3`; endpoint, region and credentials from the
//! `IMPORTS_S3_*` or AWS variables of the benchmark's environment, which
//! its child processes inherit), each run under a prefix of its own. It
//! prints the upload, the load (start → completed) and the end-to-end time
//! next to the local directory's.

use std::path::Path;
use std::time::Duration;

use super::{BenchArgs, Figures, Services, journey};

/// Where the file store of a benchmark run is.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BenchStorage {
    /// The local directory only (under `--workdir`).
    #[default]
    Local,
    /// The local directory, then an S3 bucket, side by side.
    S3,
}

/// The figures of the single import on S3.
pub(super) struct StorageFigures {
    bucket: String,
    prefix: String,
    s3: Figures,
}

/// Imports the benchmark's file again with the file store in S3.
pub(super) async fn run(args: &BenchArgs, csv: &Path) -> anyhow::Result<StorageFigures> {
    let bucket = args.s3_bucket.clone();
    let prefix = format!("bench/{}", uuid::Uuid::new_v4().simple());
    if args.s3_create_bucket {
        let endpoint = std::env::var("IMPORTS_S3_ENDPOINT").unwrap_or_default();
        passare_imports_storage::create_bucket_unsigned(&endpoint, &bucket).await?;
    }
    let settings = [
        ("IMPORTS_STORAGE", "s3"),
        ("IMPORTS_S3_BUCKET", bucket.as_str()),
        ("IMPORTS_S3_PREFIX", prefix.as_str()),
    ];
    let services = Services::start_with(args, &[], &settings).await?;
    let mut api = services.client().await?;
    let s3 = journey(args, &mut api, csv).await?;
    drop(services);
    Ok(StorageFigures { bucket, prefix, s3 })
}

impl StorageFigures {
    pub(super) fn json(&self, local: &Figures) -> serde_json::Value {
        let side = |f: &Figures| {
            serde_json::json!({
                "upload_s": f.uploaded.as_secs_f64(),
                "start_to_completed_s": (f.end_to_end - f.uploaded).as_secs_f64(),
                "end_to_end_s": f.end_to_end.as_secs_f64(),
            })
        };
        serde_json::json!({
            "bucket": self.bucket,
            "prefix": self.prefix,
            "local": side(local),
            "s3": side(&self.s3),
        })
    }

    pub(super) fn print(&self, rows: u64, local: &Figures) {
        let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
        let load = |f: &Figures| f.end_to_end - f.uploaded;
        println!(
            "file store               local          s3 (bucket {}, prefix {})",
            self.bucket, self.prefix
        );
        println!(
            "  upload                 {:<14} {}",
            secs(local.uploaded),
            secs(self.s3.uploaded)
        );
        println!(
            "  start → completed      {:<14} {}",
            secs(load(local)),
            secs(load(&self.s3))
        );
        println!(
            "  end to end             {:<14} {}  ({:.0} rows/s on s3)",
            secs(local.end_to_end),
            secs(self.s3.end_to_end),
            rows as f64 / self.s3.end_to_end.as_secs_f64()
        );
        println!(
            "ratio s3 / local load    {:.2}",
            load(&self.s3).as_secs_f64() / load(local).as_secs_f64()
        );
    }
}
