//! The pure core of Passare Imports: what an import is, the catalog of import
//! types, how a file is scanned and split into chunks, and how a chunk's rows
//! become typed Arrow columns ready to load. No I/O beyond `std::io` readers and writers,
//! no gRPC, no database types.

pub mod analysis;
pub mod catalog;
pub mod chunk;
pub mod copy;
pub mod file;
pub mod messages;
pub mod model;
pub mod results;
pub mod transform;
pub mod values;

pub use model::*;
