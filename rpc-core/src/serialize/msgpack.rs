//! MessagePack through rmp-serde, the default serialization.

use std::io::Cursor;
use std::sync::Arc;

use rmp_serde::decode::ReadReader;
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
        let mut ser = rmp_serde::Serializer::new(out).with_struct_map();
        erased_serde::serialize(value, &mut ser).map_err(|e| codec_err("msgpack encode", e))
    }

    fn deserialize(&self, bytes: &[u8], sink: &mut DeserializeSink<'_>) -> Result<()> {
        read(bytes, |de| {
            sink(&mut <dyn erased_serde::Deserializer>::erase(de))
        })
    }
}

impl MsgPack {
    /// Decodes one value straight into `T`, without erasing its type (no allocation per
    /// value); the same format and checks as [`Serialization::deserialize`].
    pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        read(bytes, |de| T::deserialize(de))
    }
}

/// Runs `f` on a deserializer over `bytes`, then refuses bytes left over after the value.
fn read<T, E: std::fmt::Display>(
    bytes: &[u8],
    f: impl FnOnce(&mut rmp_serde::Deserializer<ReadReader<Cursor<&[u8]>>>) -> Result<T, E>,
) -> Result<T> {
    let mut de = rmp_serde::Deserializer::new(Cursor::new(bytes));
    let value = f(&mut de).map_err(|e| codec_err("msgpack decode", e))?;
    let left = bytes.len() as u64 - de.position();
    if left != 0 {
        return Err(codec_err(
            "msgpack decode",
            format!("{left} bytes left over after the value"),
        ));
    }
    Ok(value)
}

crate::register!(dyn Serialization, "msgpack", || Arc::new(MsgPack));
