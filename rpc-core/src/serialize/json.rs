//! JSON through serde_json: readable, and what a command-line generic caller writes.

use std::sync::Arc;

use serde::de::DeserializeOwned;

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
        Json::encode(&value, out)
    }

    fn deserialize(&self, bytes: &[u8], sink: &mut DeserializeSink<'_>) -> Result<()> {
        read(bytes, |de| {
            sink(&mut <dyn erased_serde::Deserializer>::erase(de))
        })
    }
}

impl Json {
    /// Appends `value` encoded as its own type; the one place that sets this format's options.
    pub(crate) fn encode<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        let mut ser = serde_json::Serializer::new(out);
        value
            .serialize(&mut ser)
            .map_err(|e| codec_err("json encode", e))
    }

    /// Decodes one value straight into `T`, without erasing its type; the same checks as
    /// [`Serialization::deserialize`].
    pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        read(bytes, |de| T::deserialize(de))
    }
}

/// Runs `f` on a deserializer over `bytes`, then refuses anything but whitespace after it.
fn read<T, E: std::fmt::Display>(
    bytes: &[u8],
    f: impl FnOnce(&mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>) -> Result<T, E>,
) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = f(&mut de).map_err(|e| codec_err("json decode", e))?;
    de.end().map_err(|e| codec_err("json decode", e))?;
    Ok(value)
}

crate::register!(dyn Serialization, "json", || Arc::new(Json));
