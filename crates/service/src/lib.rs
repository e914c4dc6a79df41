//! The Passare Imports service: the ImportService gRPC API, the chunk worker,
//! configuration and identity. Binaries and tests start it through
//! [`server::serve`] and [`worker::Worker::run`].

pub mod analysis;
pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod convert;
pub mod error;
pub mod events;
pub mod results;
pub mod retention;
pub mod server;
pub mod worker;

pub use app::App;
pub use config::Config;
