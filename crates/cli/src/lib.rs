//! Client-side tools of the `passare-imports` command, shared with the
//! integration tests: the API client (upload, watch), synthetic data, and the
//! benchmark.

pub mod bench;
pub mod client;
pub mod generate;
