//! MessagePack through rmp-serde, the default serialization.

use std::sync::Arc;

use rmp_serde::decode::ReadRefReader;
use serde::de::DeserializeOwned;

use super::{codec_err, ids, DeserializeSink, Serialization};
use crate::error::Result;

/// MessagePack with structs written as maps (field names on the wire), so schemas can evolve.
#[derive(Debug, Default, Clone, Copy)]
pub struct MsgPack;

impl Serialization for MsgPack {
    fn id(&self) -> u8 {
        ids::MSGPACK
    }

    fn self_describing(&self) -> bool {
        true
    }

    fn serialize(&self, value: &dyn erased_serde::Serialize, out: &mut Vec<u8>) -> Result<()> {
        MsgPack::encode(&value, out)
    }

    fn deserialize(&self, bytes: &[u8], sink: &mut DeserializeSink<'_>) -> Result<()> {
        read(bytes, |de| {
            sink(&mut <dyn erased_serde::Deserializer>::erase(de))
        })
    }
}

impl MsgPack {
    /// Appends `value` encoded as its own type (no erased call per field); the one place
    /// that sets this format's options, so the erased path writes the same bytes.
    pub(crate) fn encode<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        let mut ser = rmp_serde::Serializer::new(out).with_struct_map();
        value
            .serialize(&mut ser)
            .map_err(|e| codec_err("msgpack encode", e))
    }

    /// Decodes one value straight into `T`, without erasing its type (no allocation per
    /// value); the same format and checks as [`Serialization::deserialize`].
    pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        read(bytes, |de| T::deserialize(de))
    }
}

/// Runs `f` on a deserializer over `bytes`, refusing bytes left over after the value.
///
/// The deserializer reads the slice in place: strings and byte arrays are handed to the
/// visitor from `bytes`, and nothing is allocated to read through.
fn read<'de, T, E: std::fmt::Display>(
    bytes: &'de [u8],
    f: impl FnOnce(&mut rmp_serde::Deserializer<ReadRefReader<'de, [u8]>>) -> Result<T, E>,
) -> Result<T> {
    // A malformed or truncated value is left for the deserializer to describe.
    if let Some(len) = value_len(bytes).filter(|&len| len < bytes.len()) {
        return Err(codec_err(
            "msgpack decode",
            format!("{} bytes left over after the value", bytes.len() - len),
        ));
    }
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    f(&mut de).map_err(|e| codec_err("msgpack decode", e))
}

/// The length of the MessagePack value at the start of `bytes`, from its markers and length
/// fields alone; `None` when it is malformed or runs past the end. One pass, no recursion:
/// it counts the values still to skip, and each value takes at least one byte, so a count
/// past the bytes left is refused at once.
fn value_len(bytes: &[u8]) -> Option<usize> {
    let mut at = 0usize;
    let mut pending = 1usize;
    let len_at = |at: usize, n: usize| -> Option<usize> {
        let field = bytes.get(at..at.checked_add(n)?)?;
        Some(field.iter().fold(0usize, |v, &b| v << 8 | usize::from(b)))
    };
    while pending > 0 {
        let marker = *bytes.get(at)?;
        pending -= 1;
        // (bytes taken by marker and length fields, payload bytes, values inside)
        let (head, data, inner) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0, 0),
            0x80..=0x8f => (1, 0, 2 * usize::from(marker & 0x0f)),
            0x90..=0x9f => (1, 0, usize::from(marker & 0x0f)),
            0xa0..=0xbf => (1, usize::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (2, len_at(at + 1, 1)?, 0),
            0xc5 | 0xda => (3, len_at(at + 1, 2)?, 0),
            0xc6 | 0xdb => (5, len_at(at + 1, 4)?, 0),
            // ext: length, type byte, data
            0xc7 => (3, len_at(at + 1, 1)?, 0),
            0xc8 => (4, len_at(at + 1, 2)?, 0),
            0xc9 => (6, len_at(at + 1, 4)?, 0),
            0xca => (5, 0, 0),
            0xcb => (9, 0, 0),
            0xcc | 0xd0 => (2, 0, 0),
            0xcd | 0xd1 => (3, 0, 0),
            0xce | 0xd2 => (5, 0, 0),
            0xcf | 0xd3 => (9, 0, 0),
            // fixext 1, 2, 4, 8, 16: type byte and data
            0xd4 => (3, 0, 0),
            0xd5 => (4, 0, 0),
            0xd6 => (6, 0, 0),
            0xd7 => (10, 0, 0),
            0xd8 => (18, 0, 0),
            0xdc => (3, 0, len_at(at + 1, 2)?),
            0xdd => (5, 0, len_at(at + 1, 4)?),
            0xde => (3, 0, 2usize.checked_mul(len_at(at + 1, 2)?)?),
            0xdf => (5, 0, 2usize.checked_mul(len_at(at + 1, 4)?)?),
            // 0xc1 is never used.
            _ => return None,
        };
        at = at.checked_add(head)?.checked_add(data)?;
        pending = pending.checked_add(inner)?;
        if at > bytes.len() || pending > bytes.len() - at {
            return None;
        }
    }
    Some(at)
}

crate::register!(dyn Serialization, "msgpack", || Arc::new(MsgPack));

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Bytes written as MessagePack `bin`.
    #[derive(Debug, PartialEq)]
    struct Blob(Vec<u8>);

    impl serde::Serialize for Blob {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    impl<'de> serde::Deserialize<'de> for Blob {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Blob;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<Blob, E> {
                    Ok(Blob(v.to_vec()))
                }
            }
            d.deserialize_bytes(V)
        }
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Sample {
        small: u8,
        wide: u64,
        negative: i64,
        real: f64,
        single: f32,
        flag: Option<bool>,
        names: Vec<String>,
        blob: Blob,
        table: BTreeMap<String, i32>,
    }

    fn sample(text: usize, blob: usize, entries: usize) -> Sample {
        Sample {
            small: 7,
            wide: u64::MAX - 3,
            negative: -70_000,
            real: 1.5,
            single: -0.25,
            flag: None,
            names: vec!["x".repeat(text), String::new(), "é".repeat(3)],
            blob: Blob(vec![9; blob]),
            table: (0..entries)
                .map(|i| (format!("k{i}"), -(i as i32)))
                .collect(),
        }
    }

    #[test]
    fn value_len_matches_what_the_encoder_wrote() {
        // fixstr/str8/str16/str32, bin8/bin16/bin32, fixmap/map16, fixarray/array16.
        for (text, blob, entries) in [
            (0, 0, 0),
            (31, 255, 15),
            (200, 300, 16),
            (70_000, 70_000, 70),
        ] {
            let value = sample(text, blob, entries);
            let bytes = rmp_serde::to_vec_named(&value).expect("encode");
            assert_eq!(
                value_len(&bytes),
                Some(bytes.len()),
                "text {text}, blob {blob}"
            );
            let back: Sample = MsgPack::decode(&bytes).expect("decode");
            assert_eq!(back, value);
        }
        for v in [0i64, -1, -33, 127, 128, -129, 65_536, i64::MIN, i64::MAX] {
            let bytes = rmp_serde::to_vec(&v).expect("encode");
            assert_eq!(value_len(&bytes), Some(bytes.len()), "{v}");
        }
    }

    #[test]
    fn bytes_after_the_value_are_refused_and_truncation_is_described() {
        let mut bytes = rmp_serde::to_vec_named(&sample(3, 3, 3)).expect("encode");
        bytes.extend_from_slice(&[0xc0, 0xc0]);
        let e = MsgPack::decode::<Sample>(&bytes).expect_err("left over");
        assert!(e.to_string().contains("2 bytes left over"), "{e}");
        bytes.truncate(bytes.len() - 10);
        assert_eq!(value_len(&bytes), None);
        let e = MsgPack::decode::<Sample>(&bytes).expect_err("truncated");
        assert!(e.to_string().contains("msgpack decode"), "{e}");
    }

    #[test]
    fn a_huge_announced_count_is_refused_without_scanning() {
        // An array32 of 4 billion elements in five bytes, and a map32 likewise.
        assert_eq!(value_len(&[0xdd, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(value_len(&[0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0]), None);
        // 0xc1 is not a marker.
        assert_eq!(value_len(&[0xc1]), None);
        assert!(MsgPack::decode::<Vec<u8>>(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
