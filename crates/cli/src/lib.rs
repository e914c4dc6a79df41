//! Client-side tools of the `passare-imports` command, shared with the
//! integration tests: the API client (upload, watch), operations on running
//! imports (stop, pause, failures), synthetic data, and the benchmark.

pub mod allocator;
pub mod bench;
pub mod client;
pub mod dead_letters;
pub mod generate;
pub mod load;
pub mod ops;
pub mod queues;
pub mod web_client;
