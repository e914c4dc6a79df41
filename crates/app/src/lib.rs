//! The use cases of Passare Imports, free of gRPC: what a caller may do and
//! what each call does — drafts and uploads, analysis, starting, stopping
//! and pausing, results and retries, history — with the configuration,
//! identity and errors they share. The gRPC adapter (`passare-imports-grpc`)
//! authorizes, converts and calls these; the worker
//! (`passare-imports-worker`) shares the configuration and retention.

pub mod analysis;
pub mod analysis_jobs;
pub mod app;
pub mod archive;
pub mod config;
pub mod control;
pub mod dead_letters;
mod dead_queue;
pub mod error;
pub mod events;
pub mod history;
pub mod identity;
pub mod imports;
pub mod limits;
pub mod monitor;
pub mod observability;
pub mod profiles;
pub mod results;
pub mod retention;
pub mod start;
pub mod uploads;
pub mod views;

pub use app::App;
pub use config::Config;
pub use error::ApiError;
pub use identity::{Access, Caller};
