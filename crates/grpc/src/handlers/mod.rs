//! The ImportService handlers, one module per resource. The service table
//! in `lib.rs` says who may call each RPC and authorizes the call; a handler
//! receives the [`Call`](crate::auth::Call) and the message, converts the
//! message, calls a use case of `passare-imports-app` and converts the
//! answer back. The streaming RPCs authorize in their handler.

pub mod control;
pub mod drafts;
pub mod history;
pub mod monitor;
pub mod profiles;
pub mod reads;
pub mod results;
pub mod uploads;
