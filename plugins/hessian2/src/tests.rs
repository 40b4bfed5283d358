//! Golden bytes from Java's Caucho Hessian 4.0.38 `Hessian2Output`, compact-form boundaries,
//! malformed input and serde round trips.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::{decode, encode, from_slice, to_vec, Decoder, Encoder, Value};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `bytes` decodes to `value` and `value` encodes to `bytes`.
fn golden(bytes_hex: &str, value: Value) {
    let bytes = hex(bytes_hex);
    assert_eq!(
        decode(&bytes).expect("decode"),
        value,
        "decoding {bytes_hex}"
    );
    assert_eq!(
        to_hex(&encode(&value).expect("encode")),
        to_hex(&bytes),
        "encoding {value:?}"
    );
}

fn s(v: &str) -> Value {
    Value::string(v)
}

// ----- golden values ---------------------------------------------------------------------

#[test]
fn golden_scalars() {
    golden("ba", Value::Int(42));
    golden("d586a0", Value::Int(100000));
    golden("f82a", Value::Long(42));
    golden("4c0000010000000000", Value::Long(1 << 40));
    golden("5f000005dc", Value::Double(1.5));
    golden("54", Value::Bool(true));
    golden("23010203", Value::Binary(vec![1, 2, 3]));
    golden(&format!("3028{}", "61".repeat(40)), s(&"a".repeat(40)));
    golden("02c3a9e4b8ad", s("é中"));
    golden("4e", Value::Null);
}

#[test]
fn golden_scalars_through_serde() {
    assert_eq!(to_hex(&to_vec(&42i32).unwrap()), "ba");
    assert_eq!(to_hex(&to_vec(&100000i32).unwrap()), "d586a0");
    assert_eq!(to_hex(&to_vec(&42i64).unwrap()), "f82a");
    assert_eq!(
        to_hex(&to_vec(&(1i64 << 40)).unwrap()),
        "4c0000010000000000"
    );
    assert_eq!(to_hex(&to_vec(&1.5f64).unwrap()), "5f000005dc");
    assert_eq!(to_hex(&to_vec(&true).unwrap()), "54");
    assert_eq!(
        to_hex(&to_vec(serde_bytes::Bytes::new(&[1, 2, 3])).unwrap()),
        "23010203"
    );
    assert_eq!(to_hex(&to_vec("é中").unwrap()), "02c3a9e4b8ad");
    assert_eq!(from_slice::<i32>(&hex("d586a0")).unwrap(), 100000);
    assert_eq!(
        from_slice::<i64>(&hex("4c0000010000000000")).unwrap(),
        1 << 40
    );
    assert_eq!(from_slice::<f64>(&hex("5f000005dc")).unwrap(), 1.5);
    assert_eq!(
        from_slice::<serde_bytes::ByteBuf>(&hex("23010203"))
            .unwrap()
            .as_ref(),
        &[1, 2, 3]
    );
    assert_eq!(from_slice::<String>(&hex("02c3a9e4b8ad")).unwrap(), "é中");
}

#[test]
fn golden_array_list() {
    golden("7a910161", Value::list(vec![Value::Int(1), s("a")]));
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(rename = "Golden$Person")]
struct Person {
    name: String,
    age: i32,
}

const PERSON_TWICE: &str =
    "430d476f6c64656e24506572736f6e92046e616d65036167656003616e6eba6003616e6eba";

#[test]
fn golden_pojo_written_twice_shares_the_class_definition() {
    let ann = Person {
        name: "ann".into(),
        age: 42,
    };
    let mut e = Encoder::new();
    e.serialize(&ann).unwrap();
    e.serialize(&ann).unwrap();
    assert_eq!(to_hex(e.as_bytes()), PERSON_TWICE);

    let bytes = hex(PERSON_TWICE);
    let mut d = Decoder::new(&bytes);
    assert_eq!(d.deserialize::<Person>().unwrap(), ann);
    assert_eq!(d.deserialize::<Person>().unwrap(), ann);
    assert!(d.is_empty());

    let obj = Value::Object {
        class: "Golden$Person".into(),
        fields: vec![("name".into(), s("ann")), ("age".into(), Value::Int(42))],
    };
    let mut d = Decoder::new(&bytes);
    assert_eq!(d.read_value().unwrap(), obj);
    assert_eq!(d.read_value().unwrap(), obj);
    assert!(d.is_empty());
    let mut e = Encoder::new();
    e.write_value(&obj).unwrap();
    e.write_value(&obj).unwrap();
    assert_eq!(to_hex(e.as_bytes()), PERSON_TWICE);
}

const REQUEST_FRAME: &str = "dabbc20000000000000000000000008b05322e302e32136f72672e6578616d706c652e4772656574657205312e302e30056772656574124c6a6176612f6c616e672f537472696e673b03616e6e480470617468136f72672e6578616d706c652e4772656574657209696e74657266616365136f72672e6578616d706c652e477265657465720776657273696f6e05312e302e300567726f7570005a";

#[test]
fn golden_dubbo_request_body() {
    let frame = hex(REQUEST_FRAME);
    assert_eq!(frame.len(), 16 + 0x8b);
    let body = &frame[16..];
    let mut d = Decoder::new(body);
    let mut values = Vec::new();
    while !d.is_empty() {
        values.push(d.read_value().unwrap());
    }
    let attachments = Value::map(vec![
        (s("path"), s("org.example.Greeter")),
        (s("interface"), s("org.example.Greeter")),
        (s("version"), s("1.0.0")),
        (s("group"), s("")),
    ]);
    let expected = vec![
        s("2.0.2"),
        s("org.example.Greeter"),
        s("1.0.0"),
        s("greet"),
        s("Ljava/lang/String;"),
        s("ann"),
        attachments,
    ];
    assert_eq!(values, expected);

    let mut e = Encoder::new();
    for v in &values {
        e.write_value(v).unwrap();
    }
    assert_eq!(to_hex(e.as_bytes()), to_hex(body));

    // The same body through serde, as the RPC layer reads it.
    let mut d = Decoder::new(body);
    let head: Vec<String> = (0..5).map(|_| d.deserialize::<String>().unwrap()).collect();
    assert_eq!(head[3], "greet");
    assert_eq!(d.deserialize::<String>().unwrap(), "ann");
    let att: HashMap<String, String> = d.deserialize().unwrap();
    assert_eq!(att["interface"], "org.example.Greeter");
    assert_eq!(att["group"], "");
    assert!(d.is_empty());
}

#[test]
fn golden_dubbo_response_bodies() {
    let with_attachments = hex("940968656c6c6f20616e6e4805647562626f05322e302e325a");
    let mut d = Decoder::new(&with_attachments);
    assert_eq!(d.read_value().unwrap(), Value::Int(4));
    assert_eq!(d.read_value().unwrap(), s("hello ann"));
    assert_eq!(
        d.read_value().unwrap(),
        Value::map(vec![(s("dubbo"), s("2.0.2"))])
    );
    assert!(d.is_empty());
    let mut e = Encoder::new();
    e.serialize(&4i32).unwrap();
    e.serialize("hello ann").unwrap();
    e.serialize(&BTreeMap::from([("dubbo", "2.0.2")])).unwrap();
    assert_eq!(e.into_bytes(), with_attachments);

    let null_with_attachments = hex("954805647562626f05322e302e325a");
    let mut d = Decoder::new(&null_with_attachments);
    assert_eq!(d.deserialize::<i32>().unwrap(), 5);
    let att: HashMap<String, String> = d.deserialize().unwrap();
    assert_eq!(att["dubbo"], "2.0.2");
    assert!(d.is_empty());
    let mut e = Encoder::new();
    e.write_int(5);
    e.write_value(&Value::map(vec![(s("dubbo"), s("2.0.2"))]))
        .unwrap();
    assert_eq!(e.into_bytes(), null_with_attachments);

    // Heartbeat bodies and the error-status body.
    golden("4e", Value::Null);
    golden("04626f6f6d", s("boom"));
}
