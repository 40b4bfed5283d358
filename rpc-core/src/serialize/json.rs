//! JSON through serde_json: readable, and what a command-line generic caller writes.

use std::sync::Arc;

use super::{codec_err, ids, DeserializeSink, Serialization};
use crate::error::Result;

/// JSON text.
#[derive(Debug, Default, Clone, Copy)]
pub struct Json;

impl Serialization for Json {
    fn id(&self) -> u8 {
        ids::JSON
    }

    fn self_describing(&self) -> bool {
        true
    }

    fn serialize(&self, value: &dyn erased_serde::Serialize, out: &mut Vec<u8>) -> Result<()> {
        let mut ser = serde_json::Serializer::new(out);
        erased_serde::serialize(value, &mut ser).map_err(|e| codec_err("json encode", e))
    }

    fn deserialize(&self, bytes: &[u8], sink: &mut DeserializeSink<'_>) -> Result<()> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        sink(&mut <dyn erased_serde::Deserializer>::erase(&mut de))
            .map_err(|e| codec_err("json decode", e))?;
        de.end().map_err(|e| codec_err("json decode", e))
    }
}

crate::register!(dyn Serialization, "json", || Arc::new(Json));
