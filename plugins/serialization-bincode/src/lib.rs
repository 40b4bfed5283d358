//! bincode 2.x serialization for `rpc-core`, registered under the name `bincode`.
//!
//! Linking this crate is all it takes: add it as a dependency and write
//! `use rpc_serialization_bincode as _;` once so the linker keeps it, then select it with
//! `serialization=bincode`. It is compact and fast, but not self-describing (field names are
//! not on the wire): consumer and provider must agree on every type exactly, and a
//! command-line generic call cannot use it. bincode's upstream is unmaintained, so the version
//! is pinned and msgpack stays the default.
//!
//! Decoding is bounded: a length prefix that claims more than [`LIMIT`] bytes is refused
//! before anything is allocated.

#![forbid(unsafe_code)]

use std::sync::Arc;

use rpc_core::serialize::{ids, DeserializeSink, Serialization};
use rpc_core::{Result, RpcError};
use serde::de::{DeserializeSeed, Error as _};

/// The largest value this serialization decodes, matching the default frame `payload` limit.
pub const LIMIT: usize = 8 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// bincode 2 in its standard configuration (varint integers, little endian).
#[derive(Debug, Default, Clone, Copy)]
pub struct Bincode;

struct Seed<'a, 's>(&'a mut DeserializeSink<'s>);

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        (self.0)(&mut <dyn erased_serde::Deserializer>::erase(d)).map_err(D::Error::custom)
    }
}

impl Serialization for Bincode {
    fn id(&self) -> u8 {
        ids::BINCODE
    }

    fn self_describing(&self) -> bool {
        false
    }

    fn serialize(&self, value: &dyn erased_serde::Serialize, out: &mut Vec<u8>) -> Result<()> {
        bincode::serde::encode_into_std_write(value, out, config())
            .map(|_| ())
            .map_err(|e| RpcError::codec(format!("bincode encode: {e}")))
    }

    fn deserialize(&self, bytes: &[u8], sink: &mut DeserializeSink<'_>) -> Result<()> {
        let ((), read) = bincode::serde::seed_decode_from_slice(Seed(sink), bytes, config())
            .map_err(|e| RpcError::codec(format!("bincode decode: {e}")))?;
        if read != bytes.len() {
            return Err(RpcError::codec(format!(
                "bincode decode: {} bytes left over after the value",
                bytes.len() - read
            )));
        }
        Ok(())
    }
}

rpc_core::register!(dyn Serialization, "bincode", || Arc::new(Bincode));

#[cfg(test)]
mod tests {
    use super::*;
    use rpc_core::serialize::decode;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Order {
        id: u64,
        items: Vec<String>,
        note: Option<String>,
    }

    #[test]
    fn round_trips() {
        let o = Order {
            id: 7,
            items: vec!["a".into(), "b".into()],
            note: None,
        };
        let mut out = Vec::new();
        Bincode.serialize(&o, &mut out).expect("encode");
        assert_eq!(decode::<Order>(&Bincode, &out).expect("decode"), o);
    }

    #[test]
    fn huge_length_prefix_is_refused_without_allocating() {
        // A Vec<u8> claiming u64::MAX elements (varint 0xFF + 8 bytes).
        let mut bytes = vec![0xFF];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        let e = decode::<Vec<u8>>(&Bincode, &bytes).expect_err("too large");
        assert_eq!(e.kind(), rpc_core::ErrorKind::Codec);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut out = Vec::new();
        Bincode.serialize(&1u32, &mut out).expect("encode");
        out.push(0);
        assert!(decode::<u32>(&Bincode, &out).is_err());
    }
}
