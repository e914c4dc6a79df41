//! Types generated from `proto/passare/imports/v1` (the API) and
//! `proto/passare/imports/events/v1` (record events). This crate holds no logic:
//! conversions between these types and the domain live in the service crate.

#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("passare.imports.v1");

    /// Encoded `FileDescriptorSet` of the API, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(
        env!("OUT_DIR"),
        "/passare_imports_v1_descriptor.bin"
    ));
}

/// The record events other services consume (docs/record-events.md).
pub mod events {
    pub mod v1 {
        tonic::include_proto!("passare.imports.events.v1");
    }
}
