//! Feeds arbitrary bytes to the Hessian 2.0 decoder: as one value (`decode`), as consecutive
//! values sharing class definitions (a `Decoder`, as a Dubbo body is read), and through serde
//! into a struct and into consecutive typed values. It must never panic, and a value it
//! decodes (without cyclic back-references) must encode and decode back to itself.
//!
//! Run with `cargo +nightly fuzz run hessian_decoder` from `rpc-core/`.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use rpc_hessian2::{decode, encode, from_slice, Decoder, Limits, Value};
use serde::Deserialize;

/// A Java-style value class with fields of most kinds.
#[derive(Deserialize, Debug)]
#[serde(rename = "com.example.Person")]
#[allow(dead_code)]
struct Person {
    name: String,
    age: i32,
    id: Option<i64>,
    score: f64,
    tags: Vec<String>,
    attrs: HashMap<String, Option<i32>>,
    #[serde(with = "serde_bytes")]
    avatar: Vec<u8>,
    friend: Option<Box<Person>>,
    color: Option<Color>,
}

#[derive(Deserialize, Debug)]
#[serde(rename = "com.example.Color")]
#[allow(dead_code)]
enum Color {
    #[serde(rename = "RED")]
    Red,
    #[serde(rename = "BLUE")]
    Blue,
}

fn has_ref(v: &Value) -> bool {
    match v {
        Value::Ref(_) => true,
        Value::List { items, .. } => items.iter().any(has_ref),
        Value::Map { entries, .. } => entries.iter().any(|(k, v)| has_ref(k) || has_ref(v)),
        Value::Object { fields, .. } => fields.iter().any(|(_, v)| has_ref(v)),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = decode(data) {
        if !has_ref(&v) {
            let bytes = encode(&v).expect("a decoded value encodes");
            // Back-references were expanded into copies, so the re-encoding may hold more
            // lists, maps and objects than the input did, and refer to its type names where
            // the input spelled them out.
            let limits = Limits {
                max_refs: usize::MAX,
                max_ref_expansion: usize::MAX,
                ..Limits::default()
            };
            let mut again = Decoder::with_limits(&bytes, limits);
            assert_eq!(again.read_value().expect("our encoding decodes"), v);
            again.end().expect("nothing after the value");
        }
    }

    let mut d = Decoder::new(data);
    while !d.is_empty() {
        let before = d.position();
        if d.read_value().is_err() {
            break;
        }
        assert!(d.position() > before, "a value takes at least one byte");
    }

    let _ = from_slice::<Person>(data);
    let _ = from_slice::<Vec<Option<Person>>>(data);
    let _ = from_slice::<serde::de::IgnoredAny>(data);

    let mut d = Decoder::new(data);
    let _ = d.deserialize::<String>();
    let _ = d.deserialize::<i64>();
    let _ = d.deserialize::<Person>();
    let _ = d.deserialize::<HashMap<String, String>>();
});
