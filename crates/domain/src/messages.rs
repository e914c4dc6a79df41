//! What travels through the broker: versioned, tagged payloads, so that
//! workers of two releases can share a queue during a rolling deploy. A
//! message only says which work to look at; the database row is the truth.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What the broker carries for one chunk. The database row of the chunk is the
/// truth; the message only says which chunk to load. Versioned so that workers
/// of two releases can share a queue during a rolling deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum ChunkMessage {
    #[serde(rename = "1")]
    V1 {
        chunk_id: i64,
        import_id: Uuid,
        file_id: Uuid,
        organization_id: i64,
        seq: u32,
    },
}

/// A notice that an organization has chunks waiting in its queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum OrgReady {
    #[serde(rename = "1")]
    V1 {
        organization_id: i64,
        /// The organization's count of ended drains when the notice was
        /// published (after the work it announces was committed). A worker
        /// drops a notice whose count is below the current one: a drain has
        /// ended since, and announced the organization again if work was
        /// left. Absent in notices of earlier releases: never dropped.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        turn: Option<i64>,
    },
}

impl OrgReady {
    pub fn new(organization_id: i64, turn: Option<i64>) -> Self {
        Self::V1 {
            organization_id,
            turn,
        }
    }

    pub fn organization_id(&self) -> i64 {
        match self {
            Self::V1 {
                organization_id, ..
            } => *organization_id,
        }
    }

    pub fn turn(&self) -> Option<i64> {
        match self {
            Self::V1 { turn, .. } => *turn,
        }
    }
}

/// A chunk the workers gave up on, as published to the dead-letter queue
/// (`{prefix}.dead`) for inspection: which chunk, after how many attempts,
/// and the last error. The import itself fails or continues by its policy;
/// `ListChunkFailures` has every attempt in detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum DeadChunk {
    #[serde(rename = "1")]
    V1 {
        chunk: ChunkMessage,
        attempts: u32,
        error_kind: String,
        message: String,
        worker: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_message_is_tagged_with_its_version() {
        let m = ChunkMessage::V1 {
            chunk_id: 7,
            import_id: Uuid::nil(),
            file_id: Uuid::nil(),
            organization_id: 42,
            seq: 3,
        };
        let json = serde_json::to_string(&m).unwrap_or_default();
        assert!(json.contains("\"version\":\"1\""), "{json}");
        let back: ChunkMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn a_notice_of_an_earlier_release_reads_without_a_turn() {
        let old: OrgReady = serde_json::from_str(r#"{"version":"1","organization_id":9}"#).unwrap();
        assert_eq!(old, OrgReady::new(9, None));
        let json = serde_json::to_string(&OrgReady::new(9, Some(4))).unwrap_or_default();
        assert_eq!(json, r#"{"version":"1","organization_id":9,"turn":4}"#);
        let back: OrgReady = serde_json::from_str(&json).unwrap();
        assert_eq!((back.organization_id(), back.turn()), (9, Some(4)));
    }
}
