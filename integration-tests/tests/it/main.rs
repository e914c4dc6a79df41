//! The integration tests, one test binary with a module per area. Every test
//! starts its own world (database, queue prefix, storage directory; see the
//! harness in `src/`) and runs the real server, workers and gateway against
//! the PostgreSQL and RabbitMQ of this machine.
//!
//! `broker_restart` stops the machine's RabbitMQ: `scripts/test.sh` leaves it
//! out of the main run (`-E 'not test(/^broker_restart::/)'`) and runs it
//! alone afterwards.

mod access;
mod analysis;
mod analysis_budget;
mod analysis_jobs;
mod archive;
mod broker_restart;
mod browser;
mod control;
mod crash;
mod dead_letters;
mod discovery;
mod fairness;
mod faults;
mod formats;
mod gateway_uploads;
mod grpc_web;
mod history;
mod hostile_files;
mod import_flow;
mod limits;
mod many_hosts;
mod many_workers;
mod metrics;
mod monitor;
mod ordering;
mod orphans;
mod policies;
mod profiles;
mod record_events;
mod recovery;
mod results;
mod rollback;
mod row_hashes;
mod samples;
mod shutdown;
mod storage_faults;
mod stored_checks;
mod tenants;
mod tokens;
mod traces;
mod uploads;
