//! Test harness of the integration tests (`tests/it`). Each test gets its own
//! PostgreSQL database, its own queue prefix and its own storage directory,
//! and starts the real server, workers and gateway against the real
//! PostgreSQL and RabbitMQ on this machine. Split by concern:
//!
//! - `test_env`: a test's world ([`TestEnv`], [`Options`]): built, torn down;
//! - `service`: the one seam to the service crate (app, workers, tokens,
//!   migrations, retention);
//! - `processes`: `passare-imports work` child processes, SIGTERM and SIGKILL;
//! - `clients` and `calls`: users, tokens, clients, and the RPCs tests repeat;
//! - `pages`: one collector for every paged list RPC;
//! - `fixtures` and `files`: generated Cases files and drafts of any type;
//! - `records` and `assertions`: what the database recorded, and checks over it;
//! - `moments`: chunk writes in flight, cut connections, a held drain lease;
//! - `broker`: the test's queues (ready notices, purges, dead letters);
//! - `resumable`: the resumable upload in parts, and its stored parts;
//! - `tenants`: many organizations, each with a small import;
//! - `proxy`: a TCP proxy the test cuts and restores (a storage outage).
//!
//! Tests `use passare_imports_integration_tests::*`; `files`, `pages`,
//! `broker`, `resumable` and `tenants` are used by their module name.

pub mod assertions;
pub mod broker;
pub mod calls;
pub mod clients;
pub mod files;
pub mod fixtures;
pub mod moments;
pub mod pages;
pub mod processes;
pub mod proxy;
pub mod records;
pub mod resumable;
pub mod scrapes;
pub mod service;
pub mod subscriber;
pub mod table_lock;
pub mod tenants;
pub mod test_env;
pub mod workbooks;

pub use assertions::*;
pub use calls::*;
pub use clients::*;
pub use fixtures::*;
pub use moments::*;
pub use processes::binary;
pub use records::*;
pub use service::{Claims, Config, InProcessWorker};
pub use test_env::*;
