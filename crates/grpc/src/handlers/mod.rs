//! The ImportService handlers, one module per resource. Each handler
//! declares who may call it (`authorize(&request, Access::…)`), converts
//! the request, calls a use case of `passare-imports-app` and converts the
//! answer back.

pub mod control;
pub mod drafts;
pub mod history;
pub mod reads;
pub mod results;
pub mod uploads;
