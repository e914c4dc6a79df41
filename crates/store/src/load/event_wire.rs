//! A `RecordEvent` written in protobuf straight from borrowed parts: the
//! chunk's own strings and ids formatted on the stack, instead of an owned
//! message of some thirty `String`s per record that prost would encode and
//! then drop (a quarter of the worker's time during a load of new records).
//! The bytes are those prost writes for the same message: proto3 leaves a
//! field out at its default (empty string, zero), writes a set `optional`
//! field even when empty, writes every element of a repeated message and a
//! set message field even when empty, and writes fields in number order. The
//! tests compare both encodings.

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// A record event's fields (see `record_event.proto`).
pub(super) struct EventParts<'a> {
    pub event_id: &'a str,
    pub organization_id: &'a str,
    pub import_type: &'a str,
    /// Key column and value.
    pub key: &'a [(&'a str, &'a str)],
    pub outcome: i32,
    pub import_id: &'a str,
    pub file_id: &'a str,
    pub row: i64,
    pub attempt: i32,
    /// Column and value (`None`: no value).
    pub changes: &'a [(&'a str, Option<&'a str>)],
    /// Seconds and nanoseconds since the epoch.
    pub commit_time: (i64, i32),
}

fn text_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        set_text_len(tag, s)
    }
}

fn set_text_len(tag: u32, s: &str) -> usize {
    key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
}

fn put_text(tag: u32, s: &str, out: &mut Vec<u8>) {
    if !s.is_empty() {
        put_set_text(tag, s, out);
    }
}

fn put_set_text(tag: u32, s: &str, out: &mut Vec<u8>) {
    put_length(tag, s.len(), out);
    out.extend_from_slice(s.as_bytes());
}

/// int32 and int64 are varints of the value's 64-bit two's complement.
fn int_len(tag: u32, v: i64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(v as u64)
    }
}

fn put_int(tag: u32, v: i64, out: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::Varint, out);
        encode_varint(v as u64, out);
    }
}

fn put_length(tag: u32, len: usize, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

fn message_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn key_part_len((column, value): &(&str, &str)) -> usize {
    text_len(1, column) + text_len(2, value)
}

fn change_len((column, value): &(&str, Option<&str>)) -> usize {
    text_len(1, column) + value.map_or(0, |v| set_text_len(2, v))
}

fn timestamp_len((seconds, nanos): (i64, i32)) -> usize {
    int_len(1, seconds) + int_len(2, i64::from(nanos))
}

impl EventParts<'_> {
    /// The length of the event's encoding.
    fn len(&self) -> usize {
        text_len(1, self.event_id)
            + text_len(2, self.organization_id)
            + text_len(3, self.import_type)
            + self
                .key
                .iter()
                .map(|k| message_len(4, key_part_len(k)))
                .sum::<usize>()
            + int_len(5, i64::from(self.outcome))
            + text_len(6, self.import_id)
            + text_len(7, self.file_id)
            + int_len(8, self.row)
            + int_len(9, i64::from(self.attempt))
            + self
                .changes
                .iter()
                .map(|c| message_len(10, change_len(c)))
                .sum::<usize>()
            + message_len(11, timestamp_len(self.commit_time))
    }

    /// Appends the event as field `tag` of its batch (a `RecordEventBatch`'s
    /// `events` are field 2).
    pub(super) fn put(&self, tag: u32, out: &mut Vec<u8>) {
        put_length(tag, self.len(), out);
        put_text(1, self.event_id, out);
        put_text(2, self.organization_id, out);
        put_text(3, self.import_type, out);
        for k in self.key {
            put_length(4, key_part_len(k), out);
            put_text(1, k.0, out);
            put_text(2, k.1, out);
        }
        put_int(5, i64::from(self.outcome), out);
        put_text(6, self.import_id, out);
        put_text(7, self.file_id, out);
        put_int(8, self.row, out);
        put_int(9, i64::from(self.attempt), out);
        for c in self.changes {
            put_length(10, change_len(c), out);
            put_text(1, c.0, out);
            if let Some(v) = c.1 {
                put_set_text(2, v, out);
            }
        }
        let (seconds, nanos) = self.commit_time;
        put_length(11, timestamp_len(self.commit_time), out);
        put_int(1, seconds, out);
        put_int(2, i64::from(nanos), out);
    }
}

#[cfg(test)]
mod tests {
    use passare_imports_proto::events::v1 as ev;
    use prost::Message;

    use super::*;

    /// The same event as prost's message.
    fn message(p: &EventParts<'_>) -> ev::RecordEvent {
        ev::RecordEvent {
            event_id: p.event_id.into(),
            organization_id: p.organization_id.into(),
            import_type: p.import_type.into(),
            key: p
                .key
                .iter()
                .map(|(column, value)| ev::KeyPart {
                    column: (*column).into(),
                    value: (*value).into(),
                })
                .collect(),
            outcome: p.outcome,
            import_id: p.import_id.into(),
            file_id: p.file_id.into(),
            row: p.row,
            attempt: p.attempt,
            changes: p
                .changes
                .iter()
                .map(|(column, value)| ev::ColumnValue {
                    column: (*column).into(),
                    value: value.map(Into::into),
                })
                .collect(),
            commit_time: Some(prost_types::Timestamp {
                seconds: p.commit_time.0,
                nanos: p.commit_time.1,
            }),
        }
    }

    fn both(p: &EventParts<'_>) {
        let mut ours = Vec::new();
        p.put(2, &mut ours);
        let mut theirs = Vec::new();
        prost::encoding::message::encode(2, &message(p), &mut theirs);
        assert_eq!(ours, theirs);
        let batch = ev::RecordEventBatch::decode(&ours[..]).expect("a batch");
        assert_eq!(batch.events, vec![message(p)]);
    }

    #[test]
    fn an_event_is_written_as_prost_writes_it() {
        let long = "x".repeat(300);
        both(&EventParts {
            event_id: "0190f0c4-7e2a-8b9c-a1d2-3e4f5a6b7c8d",
            organization_id: "1042",
            import_type: "cases",
            key: &[("case_number", "C-1"), ("part", "")],
            outcome: 1,
            import_id: "i",
            file_id: "f",
            row: 2,
            attempt: 1,
            changes: &[
                ("deceased_first_name", Some("Ada")),
                ("notes", Some("")),
                ("ssn", None),
                ("long", Some(&long)),
                ("", Some("é")),
            ],
            commit_time: (1_795_000_000, 123_456_789),
        });
    }

    #[test]
    fn defaults_and_extremes_are_written_as_prost_writes_them() {
        both(&EventParts {
            event_id: "",
            organization_id: "",
            import_type: "",
            key: &[],
            outcome: 0,
            import_id: "",
            file_id: "",
            row: 0,
            attempt: 0,
            changes: &[],
            commit_time: (0, 0),
        });
        both(&EventParts {
            event_id: "e",
            organization_id: "-1",
            import_type: "t",
            key: &[("", "")],
            outcome: 2,
            import_id: "i",
            file_id: "f",
            row: i64::MAX,
            attempt: -1,
            changes: &[("c", None)],
            commit_time: (-62_135_596_800, 999_999_999),
        });
    }
}
