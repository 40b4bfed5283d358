//! MessagePack through rmp-serde, the default serialization.

use std::sync::Arc;

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
        let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
        sink(&mut <dyn erased_serde::Deserializer>::erase(&mut de))
            .map_err(|e| codec_err("msgpack decode", e))?;
        let left = bytes.len() as u64 - de.position();
        if left != 0 {
            return Err(codec_err(
                "msgpack decode",
                format!("{left} bytes left over after the value"),
            ));
        }
        Ok(())
    }
}

crate::register!(dyn Serialization, "msgpack", || Arc::new(MsgPack));
