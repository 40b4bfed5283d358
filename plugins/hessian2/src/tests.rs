//! Golden bytes from Java's Caucho Hessian 4.0.38 `Hessian2Output`, compact-form boundaries,
//! malformed input and serde round trips.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::{
    decode, encode, from_slice, from_slice_with_limits, from_value, to_value, to_vec, to_writer,
    Decoder, Encoder, ErrorKind, Limits, Value,
};

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

// ----- compact-form boundaries -----------------------------------------------------------

fn enc(v: &Value) -> String {
    to_hex(&encode(v).unwrap())
}

fn roundtrip(v: &Value) -> Vec<u8> {
    let bytes = encode(v).unwrap();
    assert_eq!(&decode(&bytes).unwrap(), v, "round trip of {v:?}");
    bytes
}

#[test]
fn int_boundaries() {
    let cases: &[(i32, &str)] = &[
        (0, "90"),
        (-16, "80"),
        (47, "bf"),
        (-17, "c7ef"),
        (48, "c830"),
        (-2048, "c000"),
        (2047, "cfff"),
        (-2049, "d3f7ff"),
        (2048, "d40800"),
        (-262144, "d00000"),
        (262143, "d7ffff"),
        (-262145, "49fffbffff"),
        (262144, "4900040000"),
        (i32::MIN, "4980000000"),
        (i32::MAX, "497fffffff"),
    ];
    for (v, h) in cases {
        assert_eq!(enc(&Value::Int(*v)), *h, "int {v}");
        roundtrip(&Value::Int(*v));
    }
}

#[test]
fn long_boundaries() {
    let cases: &[(i64, &str)] = &[
        (0, "e0"),
        (-8, "d8"),
        (15, "ef"),
        (-9, "f7f7"),
        (16, "f810"),
        (-2048, "f000"),
        (2047, "ffff"),
        (-2049, "3bf7ff"),
        (2048, "3c0800"),
        (-262144, "380000"),
        (262143, "3fffff"),
        (-262145, "59fffbffff"),
        (262144, "5900040000"),
        (i64::from(i32::MIN), "5980000000"),
        (i64::from(i32::MAX), "597fffffff"),
        (i64::from(i32::MAX) + 1, "4c0000000080000000"),
        (i64::from(i32::MIN) - 1, "4cffffffff7fffffff"),
        (i64::MIN, "4c8000000000000000"),
        (i64::MAX, "4c7fffffffffffffff"),
    ];
    for (v, h) in cases {
        assert_eq!(enc(&Value::Long(*v)), *h, "long {v}");
        roundtrip(&Value::Long(*v));
    }
}

#[test]
fn double_forms() {
    let cases: &[(f64, &str)] = &[
        (0.0, "5b"),
        (-0.0, "5b"),
        (1.0, "5c"),
        (127.0, "5d7f"),
        (-128.0, "5d80"),
        (128.0, "5e0080"),
        (-129.0, "5eff7f"),
        (32767.0, "5e7fff"),
        (-32768.0, "5e8000"),
        (1.5, "5f000005dc"),
        (-2.5, "5ffffff63c"),
        (1e300, "447e37e43c8800759c"),
        (f64::NAN, "447ff8000000000000"),
        (f64::INFINITY, "447ff0000000000000"),
    ];
    for (v, h) in cases {
        assert_eq!(enc(&Value::Double(*v)), *h, "double {v}");
        roundtrip(&Value::Double(*v));
    }
    // 32768.0 is no longer a short; it is 32768000 thousandths.
    assert_eq!(enc(&Value::Double(32768.0)), "5f01f40000");
    // 0.0001 is not a whole number of thousandths.
    assert!(enc(&Value::Double(0.0001)).starts_with("44"));
    for v in [
        0.001,
        0.1,
        2.675,
        -1e-3,
        1e9,
        2147483.647,
        2147483.648,
        1e-300,
        f64::MIN_POSITIVE,
    ] {
        roundtrip(&Value::Double(v));
    }
    // Java's long form of small values reads fine.
    assert_eq!(
        decode(&hex("443ff8000000000000")).unwrap(),
        Value::Double(1.5)
    );
}

#[test]
fn date_forms() {
    // Whole minutes: 'K' + 32-bit minutes; otherwise 'J' + 64-bit millis.
    assert_eq!(enc(&Value::Date(60_000)), "4b00000001");
    assert_eq!(enc(&Value::Date(-60_000)), "4bffffffff");
    assert_eq!(enc(&Value::Date(1)), "4a0000000000000001");
    assert_eq!(
        enc(&Value::Date(i64::from(i32::MAX) * 60_000 + 60_000)),
        "4a0000753000000000"
    );
    for v in [
        0,
        1,
        60_000,
        1_700_000_000_000,
        1_700_000_040_000,
        i64::MIN,
        i64::MAX,
    ] {
        roundtrip(&Value::Date(v));
    }
    assert_eq!(from_slice::<i64>(&hex("4b00000002")).unwrap(), 120_000);
}

fn string_header(v: &str) -> String {
    let h = enc(&s(v));
    h[..h.len().min(6)].to_owned()
}

#[test]
fn string_lengths_and_chunks() {
    assert_eq!(enc(&s("")), "00");
    assert!(string_header(&"a".repeat(31)).starts_with("1f61"));
    assert!(string_header(&"a".repeat(32)).starts_with("302061"));
    assert!(string_header(&"a".repeat(1023)).starts_with("33ff61"));
    assert!(string_header(&"a".repeat(1024)).starts_with("530400"));
    assert!(string_header(&"a".repeat(32768)).starts_with("538000"));
    for n in [
        0, 1, 31, 32, 1023, 1024, 32767, 32768, 32769, 65536, 100_000,
    ] {
        let v = "a".repeat(n);
        let bytes = roundtrip(&s(&v));
        assert_eq!(from_slice::<String>(&bytes).unwrap(), v);
    }
    // 32769 units: one 'R' chunk of 0x8000 units and a 1-unit final chunk.
    let bytes = encode(&s(&"a".repeat(32769))).unwrap();
    assert_eq!(to_hex(&bytes[..3]), "528000");
    assert_eq!(to_hex(&bytes[3 + 32768..]), "0161");
    // 3 chunks: 0x8000 + 0x8000 + 1000 units (the last in the 2-byte-header form).
    let bytes = encode(&s(&"é".repeat(2 * 32768 + 1000))).unwrap();
    assert_eq!(to_hex(&bytes[..3]), "528000");
    let second = 3 + 2 * 32768;
    assert_eq!(to_hex(&bytes[second..second + 3]), "528000");
    let last = second + 3 + 2 * 32768;
    assert_eq!(to_hex(&bytes[last..last + 2]), "33e8");
}

#[test]
fn non_bmp_characters_count_two_units_and_are_written_as_cesu8() {
    // U+1F600 = surrogates D83D DE00, each a 3-byte sequence.
    golden("02eda0bdedb880", s("😀"));
    golden("0361eda0bdedb880", s("a😀"));
    // 4-byte UTF-8 (as some non-Java writers send it) is read too.
    assert_eq!(decode(&hex("02f09f9880")).unwrap(), s("😀"));
    assert_eq!(from_slice::<String>(&hex("02f09f9880")).unwrap(), "😀");
    // A chunk never ends between the two halves of a pair: 32767 'a' then the emoji.
    let mut text = "a".repeat(32767);
    text.push('😀');
    text.push('b');
    let bytes = roundtrip(&s(&text));
    assert_eq!(to_hex(&bytes[..3]), "527fff");
    assert_eq!(to_hex(&bytes[3 + 32767..]), "03eda0bdedb88062");
    // A pair split across chunks by another writer is joined again.
    let split = hex("5200 01 eda0bd 01 edb880");
    assert_eq!(decode(&split).unwrap(), s("😀"));
    // Long strings of emoji.
    for n in [15, 16, 511, 512, 16384, 16385, 40000] {
        roundtrip(&s(&"😀".repeat(n)));
    }
}

#[test]
fn binary_lengths_and_chunks() {
    assert_eq!(enc(&Value::Binary(vec![])), "20");
    assert_eq!(&enc(&Value::Binary(vec![7; 15]))[..2], "2f");
    assert_eq!(&enc(&Value::Binary(vec![7; 16]))[..4], "3410");
    assert_eq!(&enc(&Value::Binary(vec![7; 1023]))[..4], "37ff");
    assert_eq!(&enc(&Value::Binary(vec![7; 1024]))[..6], "420400");
    assert_eq!(&enc(&Value::Binary(vec![7; 32768]))[..6], "428000");
    let bytes = encode(&Value::Binary(vec![7; 32769])).unwrap();
    assert_eq!(to_hex(&bytes[..3]), "418000");
    assert_eq!(to_hex(&bytes[3 + 32768..]), "2107");
    for n in [0, 15, 16, 1023, 1024, 8189, 32768, 32769, 100_000] {
        let v: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let bytes = roundtrip(&Value::Binary(v.clone()));
        assert_eq!(
            from_slice::<serde_bytes::ByteBuf>(&bytes)
                .unwrap()
                .into_vec(),
            v
        );
    }
    // Java's chunking at its buffer size (8189 + 8189 + rest).
    let mut java = vec![0x41, 0x1f, 0xfd];
    java.extend(std::iter::repeat_n(1u8, 8189));
    java.extend([0x23, 1, 1, 1]);
    assert_eq!(decode(&java).unwrap(), Value::Binary(vec![1; 8192]));
}

#[test]
fn list_forms() {
    let ints = |n: i32| (0..n).map(Value::Int).collect::<Vec<_>>();
    assert_eq!(enc(&Value::list(vec![])), "78");
    assert_eq!(enc(&Value::list(ints(7))), "7f90919293949596");
    assert_eq!(
        enc(&Value::list(ints(8))),
        "589890919293949596 97".replace(' ', "")
    );
    // Typed lists: the type once, then a type reference.
    let typed = |n| Value::List {
        type_name: Some("[int".into()),
        items: ints(n),
    };
    let mut e = Encoder::new();
    e.write_value(&typed(2)).unwrap();
    e.write_value(&typed(8)).unwrap();
    assert_eq!(
        to_hex(e.as_bytes()),
        "7204 5b696e74 9091 56 90 98 9091929394959697".replace(' ', "")
    );
    let bytes = e.into_bytes();
    let mut d = Decoder::new(&bytes);
    assert_eq!(d.read_value().unwrap(), typed(2));
    assert_eq!(d.read_value().unwrap(), typed(8));
    assert!(d.is_empty());
    // Variable-length lists, as other writers send them.
    assert_eq!(
        decode(&hex("57 9192 5a")).unwrap(),
        Value::list(ints(3)[1..].to_vec())
    );
    assert_eq!(
        decode(&hex("55 0473657421 91 5a")).unwrap(),
        Value::List {
            type_name: Some("set!".into()),
            items: vec![Value::Int(1)]
        }
    );
    assert_eq!(
        from_slice::<Vec<i32>>(&hex("57 9192 5a")).unwrap(),
        vec![1, 2]
    );
    assert_eq!(
        from_slice::<Vec<i32>>(&hex("58 92 9192")).unwrap(),
        vec![1, 2]
    );
    assert_eq!(
        from_slice::<Vec<i32>>(&hex("72 04 5b696e74 9192")).unwrap(),
        vec![1, 2]
    );
}

#[test]
fn map_forms() {
    let typed = Value::Map {
        type_name: Some("java.util.TreeMap".into()),
        entries: vec![(Value::Int(1), s("x"))],
    };
    let bytes = roundtrip(&typed);
    assert_eq!(to_hex(&bytes[..2]), "4d11");
    let m: BTreeMap<i32, String> = from_slice(&bytes).unwrap();
    assert_eq!(m[&1], "x");
    roundtrip(&Value::map(vec![]));
    roundtrip(&Value::map(vec![(Value::Null, Value::list(vec![]))]));
}

#[test]
fn many_classes_use_the_long_instance_form() {
    let obj = |i: usize| Value::Object {
        class: format!("C{i}"),
        fields: vec![("v".into(), Value::Int(i as i32))],
    };
    let mut e = Encoder::new();
    for i in 0..20 {
        e.write_value(&obj(i)).unwrap();
    }
    for i in (0..20).rev() {
        e.write_value(&obj(i)).unwrap();
    }
    let bytes = e.into_bytes();
    // The 17th definition (index 16) is instantiated with 'O' + int 16.
    let c16 = hex("4303433136 91 0176 4fa0 a0");
    assert!(bytes.windows(c16.len()).any(|w| w == c16.as_slice()));
    let mut d = Decoder::new(&bytes);
    for i in (0..20).chain((0..20).rev()) {
        assert_eq!(d.read_value().unwrap(), obj(i));
    }
    assert!(d.is_empty());
}

#[test]
fn back_references_are_resolved_as_copies() {
    // [ {"a": 1}, Q#1 ]: the list is reference 0, the map 1.
    let bytes = hex("7a 48 0161 91 5a 51 91");
    let m = Value::map(vec![(s("a"), Value::Int(1))]);
    assert_eq!(decode(&bytes).unwrap(), Value::list(vec![m.clone(), m]));
    let v: Vec<HashMap<String, i32>> = from_slice(&bytes).unwrap();
    assert_eq!(v, vec![HashMap::from([("a".into(), 1)]); 2]);
    // References span the values of one decoder: object, then Q#0 as the next value.
    let mut body = hex(PERSON_TWICE);
    body.extend(hex("5190"));
    let mut d = Decoder::new(&body);
    let first: Person = d.deserialize().unwrap();
    let _: Person = d.deserialize().unwrap();
    assert_eq!(d.deserialize::<Person>().unwrap(), first);
    assert!(d.is_empty());
    // A reference inside a referenced value (nested class definition and type name inside
    // the span) is expanded again without redefining anything.
    let nested = hex("7a 71 04 5b696e74 43 0150 91 0178 60 93 51 91");
    let inner = Value::List {
        type_name: Some("[int".into()),
        items: vec![Value::Object {
            class: "P".into(),
            fields: vec![("x".into(), Value::Int(3))],
        }],
    };
    assert_eq!(
        decode(&nested).unwrap(),
        Value::list(vec![inner.clone(), inner])
    );
}

#[derive(Deserialize, Debug, PartialEq)]
struct JavaException {
    #[serde(rename = "detailMessage")]
    detail_message: Option<String>,
}

#[test]
fn cycles_become_value_refs() {
    // A Throwable whose cause is itself (how Java leaves `cause` unset).
    let bytes = hex("43 1a 6a6176612e6c616e672e52756e74696d65457863657074696f6e 92 0d 64657461696c4d657373616765 05 6361757365 60 04 626f6f6d 5190");
    let v = decode(&bytes).unwrap();
    assert_eq!(
        v,
        Value::Object {
            class: "java.lang.RuntimeException".into(),
            fields: vec![
                ("detailMessage".into(), s("boom")),
                ("cause".into(), Value::Ref(0)),
            ],
        }
    );
    assert_eq!(v.get("detailMessage").and_then(Value::as_str), Some("boom"));
    assert_eq!(encode(&v).unwrap(), bytes);
    // serde: the cyclic field can be skipped, not materialized.
    let e: JavaException = from_slice(&bytes).unwrap();
    assert_eq!(e.detail_message.as_deref(), Some("boom"));
    let err = from_slice::<HashMap<String, Option<String>>>(&bytes).unwrap_err();
    assert!(err.to_string().contains("cycle"), "{err}");
    // Writing a reference to something not written is refused.
    assert!(encode(&Value::Ref(0)).is_err());
}

// ----- malformed input -------------------------------------------------------------------

/// Decoding `bytes` fails with `kind`, a message containing `needle`, at `offset`.
fn bad(bytes_hex: &str, kind: ErrorKind, needle: &str, offset: usize) {
    let bytes = hex(bytes_hex);
    let err = decode(&bytes).unwrap_err();
    assert_eq!(err.kind(), kind, "{bytes_hex}: {err}");
    assert!(err.message().contains(needle), "{bytes_hex}: {err}");
    assert_eq!(err.offset(), Some(offset), "{bytes_hex}: {err}");
    assert!(err
        .to_string()
        .contains(&format!("at byte offset {offset}")));
    // The serde path reports the same problem.
    let err = from_slice::<serde::de::IgnoredAny>(&bytes).unwrap_err();
    assert!(
        err.message().contains(needle) || kind == ErrorKind::InvalidData,
        "serde {bytes_hex}: {err}"
    );
}

#[test]
fn truncated_input() {
    use ErrorKind::UnexpectedEof as Eof;
    bad("", Eof, "input ends inside a value", 0);
    bad("49 0000", Eof, "an int", 1);
    bad("4c 00", Eof, "a long", 1);
    bad("44 3ff8", Eof, "a double", 1);
    bad("c8", Eof, "an int", 1);
    bad(
        "03 6161",
        ErrorKind::InvalidData,
        "string length 3 exceeds the 2 bytes left",
        0,
    );
    bad("7a 91", Eof, "a value", 2);
    bad("48 91 92", Eof, "no end marker 'Z'", 3);
    bad(
        "43 01",
        ErrorKind::InvalidData,
        "string length 1 exceeds the 0 bytes left",
        1,
    );
    bad("01 c3", Eof, "input ends inside a UTF-8 sequence", 2);
    bad(
        "43 0150 91",
        ErrorKind::InvalidData,
        "class field count 1 exceeds the 0 bytes left",
        3,
    );
}

#[test]
fn lying_lengths_do_not_allocate() {
    use ErrorKind::InvalidData as Bad;
    bad(
        "53 ffff 616161",
        Bad,
        "string length 65535 exceeds the 3 bytes left",
        0,
    );
    bad("52 ffff 61", Bad, "string length 65535 exceeds", 0);
    bad(
        "42 ffff 01",
        Bad,
        "binary length 65535 exceeds the 1 bytes left",
        0,
    );
    // A 2^31-1 element list and class with 2^31-1 fields in 10 bytes.
    bad(
        "58 49 7fffffff 9191",
        Bad,
        "list length 2147483647 exceeds the 2 bytes left",
        1,
    );
    bad(
        "56 0161 49 7fffffff 91",
        Bad,
        "list length 2147483647 exceeds",
        3,
    );
    bad(
        "43 0150 49 7fffffff 90",
        Bad,
        "class field count 2147483647 exceeds",
        3,
    );
    bad("58 49 ffffffff", Bad, "negative list length -1", 1);
    // Chunks after the first are checked too.
    bad("52 0001 61 53 ffff", Bad, "string length 65535 exceeds", 4);
}

#[test]
fn wrong_tags() {
    use ErrorKind::UnexpectedTag as Tag;
    bad(
        "40",
        Tag,
        "unknown tag 0x40 ('@') where a value was expected",
        0,
    );
    bad("45", Tag, "unknown tag 0x45 ('E')", 0);
    bad("5a", Tag, "unexpected end marker 'Z'", 0);
    bad("7a 91 5a", Tag, "unexpected end marker 'Z'", 2);
    bad(
        "58 05",
        Tag,
        "expected an int (list length), found tag 0x05",
        1,
    );
    bad(
        "43 91",
        Tag,
        "expected a class name string, found tag 0x91",
        1,
    );
    bad(
        "43 0150 91 92",
        Tag,
        "expected a field name string in class P",
        4,
    );
    bad(
        "52 0001 61 91",
        Tag,
        "expected the next string chunk, found tag 0x91",
        4,
    );
    bad("41 0001 61 91", Tag, "expected the next binary chunk", 4);
    bad(
        "72 4e",
        Tag,
        "expected a type name, found tag 0x4e ('N')",
        1,
    );
}

#[test]
fn undefined_references() {
    use ErrorKind::InvalidData as Bad;
    bad("60", Bad, "undefined class definition #0 (0 defined)", 0);
    bad("4f 95", Bad, "undefined class definition #5", 1);
    bad("51 90", Bad, "undefined reference Q#0 (only 0 lists", 1);
    bad("79 51 95", Bad, "undefined reference Q#5 (only 1 lists", 2);
    bad("51 8f", Bad, "negative reference index -1", 1);
    bad(
        "72 95 91 92",
        Bad,
        "undefined type reference #5 (0 type names defined)",
        1,
    );
}

#[test]
fn bad_text() {
    use ErrorKind::InvalidData as Bad;
    bad("01 ff", Bad, "invalid UTF-8 lead byte 0xff", 1);
    bad("01 c3 41", Bad, "is not a continuation", 1);
    bad("01 eda0bd", Bad, "unpaired UTF-16 surrogate", 1);
    bad("02 edb880 61", Bad, "unpaired UTF-16 surrogate", 1);
    bad("02 eda0bd 61", Bad, "unpaired UTF-16 surrogate", 1);
    bad("01 f09f9880", Bad, "crosses the string length", 1);
    bad("02 f4908080", Bad, "invalid 4-byte UTF-8 sequence", 1);
}

#[test]
fn limits() {
    // 129 nested lists.
    let deep = format!("{}90", "79".repeat(129));
    bad(
        &deep,
        ErrorKind::LimitExceeded,
        "nesting deeper than 128 levels",
        128,
    );
    let ok = format!("{}90", "79".repeat(128));
    assert!(decode(&hex(&ok)).is_ok());
    let shallow = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    let err =
        from_slice_with_limits::<Vec<Vec<Vec<i32>>>>(&hex("79 79 79 90"), shallow).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded);
    let few_classes = Limits {
        max_class_defs: 1,
        ..Limits::default()
    };
    let two = hex("43 0141 90 60 43 0142 90 61");
    let mut d = Decoder::with_limits(&two, few_classes);
    assert!(d.read_value().is_ok());
    let err = d.read_value().unwrap_err();
    assert!(
        err.message().contains("more than 1 class definitions"),
        "{err}"
    );

    // A reference bomb: list k holds two references to list k-1; 40 levels would expand
    // to 2^40 copies.
    let mut bomb = vec![0x58, 0x90 + 41, 0x79, 0x91];
    for k in 1..=40u8 {
        bomb.extend([0x7a, 0x51, 0x90 + k, 0x51, 0x90 + k]);
    }
    // (Its copies would also be more values than a message may build: that bound is
    // lifted here to see this one.)
    let unbounded_values = Limits {
        max_values: usize::MAX,
        ..Limits::default()
    };
    let err = Decoder::with_limits(&bomb, unbounded_values)
        .read_value()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded);
    assert!(
        err.message()
            .contains("back-references expand to more than"),
        "{err}"
    );
    assert_eq!(decode(&bomb).unwrap_err().kind(), ErrorKind::LimitExceeded);
    let err = from_slice::<Vec<serde::de::IgnoredAny>>(&bomb);
    assert!(err.is_ok(), "skipping does not expand references");
    let err = from_slice::<Vec<Vec<Vec<Vec<Vec<Vec<serde::de::IgnoredAny>>>>>>>(&bomb);
    assert!(err.is_err());
}

/// Every value `read_value` builds costs the same memory however small its encoding: how
/// many one message may build is bounded; reading into Rust types or skipping is not.
#[test]
fn values_built_per_message_are_bounded() {
    let few = Limits {
        max_values: 1000,
        ..Limits::default()
    };
    // A list of 999 nulls is 1000 values; one more null is over.
    let list = |n: u16| {
        let mut b = vec![b'X', 0xd4];
        b.extend(n.to_be_bytes());
        b.extend(std::iter::repeat_n(b'N', usize::from(n)));
        b
    };
    assert!(Decoder::with_limits(&list(999), few).read_value().is_ok());
    let err = Decoder::with_limits(&list(1000), few)
        .read_value()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded, "{err}");
    assert!(err.message().contains("more than 1000 values"), "{err}");
    let over = list(1000);
    let mut d = Decoder::with_limits(&over, few);
    d.skip_value().expect("skipping builds nothing");
    assert!(from_slice_with_limits::<Vec<Option<i32>>>(&over, few).is_ok());
}

/// A few bytes that refer to a long class or type name defined once: each reference copies
/// the name into the value, so a 6 KB message would build 4 MB. The copies count against
/// `max_ref_expansion`, as a back-reference's do.
#[test]
fn names_copied_per_reference_count_against_the_expansion_limit() {
    let long = |b: &mut Vec<u8>| {
        b.extend([b'S', 0x07, 0xd0]);
        b.extend([b'a'; 2000]);
    };
    let one_mib = Limits {
        max_ref_expansion: 1 << 20,
        ..Limits::default()
    };
    // A class of a 2000-byte name and no fields, then a list of 2000 instances (one byte each).
    let mut objects = vec![b'C'];
    long(&mut objects);
    objects.extend([0x90, b'X', 0xcf, 0xd0]);
    objects.extend([0x60; 2000]);
    let err = Decoder::with_limits(&objects, one_mib)
        .read_value()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded, "{err}");
    assert!(err.message().contains("class names"), "{err}");
    // Skipping, or reading into a Rust type, copies no names: nothing to bound.
    let mut d = Decoder::with_limits(&objects, one_mib);
    d.skip_value().expect("skipped");
    assert!(d.is_empty());
    assert!(from_slice_with_limits::<serde::de::IgnoredAny>(&objects, one_mib).is_ok());
    // The same instances under a limit they fit: every one is read, with its class.
    let roomy = Limits {
        max_ref_expansion: 8 << 20,
        ..Limits::default()
    };
    match Decoder::with_limits(&objects, roomy).read_value() {
        Ok(Value::List { items, .. }) => {
            assert_eq!(items.len(), 2000);
            assert!(matches!(&items[1999], Value::Object { class, .. } if class.len() == 2000));
        }
        other => panic!("{other:?}"),
    }

    // A typed list of a 2000-byte type name, then 2000 empty lists referring to that type.
    let mut types = vec![b'X', 0xcf, 0xd1, 0x70];
    long(&mut types);
    for _ in 0..2000 {
        types.extend([0x70, 0x90]);
    }
    let err = Decoder::with_limits(&types, one_mib)
        .read_value()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded, "{err}");
    // Here skipping copies the type name too (it is a part of each list's header).
    let err = Decoder::with_limits(&types, one_mib)
        .skip_value()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded, "{err}");
}

#[test]
fn trailing_bytes_and_type_mismatches() {
    let err = decode(&hex("91 92")).unwrap_err();
    assert!(err.message().contains("1 trailing bytes"), "{err}");
    assert_eq!(err.offset(), Some(1));
    let err = from_slice::<i32>(&hex("05 68656c6c6f")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Custom);
    assert!(err.to_string().contains("invalid type: string"), "{err}");
    assert_eq!(err.offset(), Some(0));
    // A long that does not fit the Rust integer.
    let err = from_slice::<i32>(&hex("4c0000010000000000")).unwrap_err();
    assert!(err.to_string().contains("1099511627776"), "{err}");
    // A fixed list longer than the tuple.
    let err = from_slice::<(i32, i32)>(&hex("7b 91 92 93")).unwrap_err();
    assert!(err.to_string().contains("more elements"), "{err}");
    // u64 above i64::MAX cannot be written.
    let err = to_vec(&u64::MAX).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.message().contains("above i64::MAX"), "{err}");
    assert_eq!(
        to_hex(&to_vec(&(i64::MAX as u64)).unwrap()),
        "4c7fffffffffffffff"
    );
}

// ----- serde round trips -----------------------------------------------------------------

fn serde_roundtrip<T>(v: &T) -> Vec<u8>
where
    T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    let bytes = to_vec(v).unwrap();
    let back: T = from_slice(&bytes).unwrap();
    assert_eq!(&back, v);
    // The dynamic value reads the same bytes and writes them back identically.
    let value = decode(&bytes).unwrap();
    assert_eq!(encode(&value).unwrap(), bytes, "{value:?}");
    assert_eq!(to_value(v).unwrap(), value);
    assert_eq!(&from_value::<T>(&value).unwrap(), v);
    bytes
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(rename = "com.example.Address")]
struct Address {
    street: String,
    zip: Option<u32>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(rename = "com.example.Color")]
enum Color {
    #[serde(rename = "RED")]
    Red,
    #[serde(rename = "GREEN")]
    Green,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Shape {
    Dot,
    Circle(f64),
    Line(i32, i32),
    Rect { w: u16, h: u16 },
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(rename = "com.example.User", rename_all = "camelCase")]
struct User {
    user_id: i64,
    display_name: String,
    home: Address,
    work: Option<Address>,
    previous: Vec<Address>,
    tags: BTreeMap<String, i32>,
    color: Color,
    favourite: Color,
    shapes: Vec<Shape>,
    #[serde(with = "serde_bytes")]
    avatar: Vec<u8>,
    initial: char,
    score: f32,
    ratio: f64,
    small: i8,
    flags: (bool, u8, i16),
    nothing: (),
}

fn user() -> User {
    let home = Address {
        street: "Main St 1".into(),
        zip: Some(12345),
    };
    User {
        user_id: 1 << 40,
        display_name: "Ann 😀".into(),
        home: home.clone(),
        work: None,
        previous: vec![
            home,
            Address {
                street: "Old Rd".into(),
                zip: None,
            },
        ],
        tags: BTreeMap::from([("a".into(), 1), ("b".into(), -70000)]),
        color: Color::Red,
        favourite: Color::Green,
        shapes: vec![
            Shape::Dot,
            Shape::Circle(2.5),
            Shape::Line(-1, 1),
            Shape::Rect { w: 3, h: 4 },
        ],
        avatar: vec![0, 1, 2, 255],
        initial: 'A',
        score: 0.5,
        ratio: std::f64::consts::PI,
        small: -128,
        flags: (true, 255, -32768),
        nothing: (),
    }
}

#[test]
fn serde_nested_structs_options_vecs_maps_enums_bytes() {
    let bytes = serde_roundtrip(&user());
    let v = decode(&bytes).unwrap();
    let Value::Object { class, fields } = &v else {
        panic!("{v:?}")
    };
    assert_eq!(class, "com.example.User");
    assert_eq!(fields[0].0, "userId");
    // Address is defined once, used three times.
    let address_defs = bytes
        .windows(b"com.example.Address".len())
        .filter(|w| *w == b"com.example.Address")
        .count();
    assert_eq!(address_defs, 1);
    assert_eq!(
        v.get("color"),
        Some(&Value::Object {
            class: "com.example.Color".into(),
            fields: vec![("name".into(), s("RED"))]
        })
    );
    assert_eq!(
        v.get("shapes"),
        Some(&Value::list(vec![
            Value::Object {
                class: "Shape".into(),
                fields: vec![("name".into(), s("Dot"))]
            },
            Value::map(vec![(s("Circle"), Value::Double(2.5))]),
            Value::map(vec![(
                s("Line"),
                Value::list(vec![Value::Int(-1), Value::Int(1)])
            )]),
            Value::map(vec![(
                s("Rect"),
                Value::map(vec![(s("w"), Value::Int(3)), (s("h"), Value::Int(4))])
            )]),
        ]))
    );
}

#[test]
fn serde_java_enum_bytes() {
    // Java: C "com.example.Color" 1 "name", then 0x60 "RED".
    let bytes = to_vec(&Color::Red).unwrap();
    assert_eq!(
        to_hex(&bytes),
        format!(
            "4311{}9104{}6003{}",
            to_hex(b"com.example.Color"),
            to_hex(b"name"),
            to_hex(b"RED")
        )
    );
    assert_eq!(from_slice::<Color>(&bytes).unwrap(), Color::Red);
    // A plain string reads as a unit variant too.
    assert_eq!(
        from_slice::<Color>(&hex("05475245454e")).unwrap(),
        Color::Green
    );
    let err = from_slice::<Color>(&hex("04424c5545")).unwrap_err();
    assert!(err.to_string().contains("unknown variant `BLUE`"), "{err}");
}

#[test]
fn serde_simple_types() {
    serde_roundtrip(&Some(5i32));
    serde_roundtrip(&None::<i32>);
    serde_roundtrip(&vec![Some(1u16), None, Some(65535)]);
    serde_roundtrip(&HashMap::from([(1i32, "x".to_string()), (2, "y".into())]));
    serde_roundtrip(&BTreeMap::from([("k".to_string(), vec![1.5f64, -0.25])]));
    serde_roundtrip(&(1u8, 'é', "s".to_string(), false));
    serde_roundtrip(&u32::MAX);
    serde_roundtrip(&i64::MIN);
    serde_roundtrip(&String::new());
    serde_roundtrip(&Vec::<Vec<i32>>::new());
    serde_roundtrip(&serde_bytes::ByteBuf::from(vec![9u8; 2000]));
    assert_eq!(to_hex(&to_vec(&()).unwrap()), "4e");
    assert_eq!(to_hex(&to_vec(&vec![1, 2]).unwrap()), "7a9192");
    // Borrowed bytes from an unchunked binary.
    let bytes = hex("23010203");
    let b: &serde_bytes::Bytes = from_slice(&bytes).unwrap();
    assert_eq!(b.as_ref(), &[1, 2, 3]);
}

#[test]
fn serde_struct_from_map_and_object_into_map() {
    let h = hex("48 046e616d65 03616e6e 03616765 ba 5a");
    assert_eq!(
        from_slice::<Person>(&h).unwrap(),
        Person {
            name: "ann".into(),
            age: 42
        }
    );
    let o = hex("430d476f6c64656e24506572736f6e92046e616d65036167656003616e6eba");
    #[derive(Deserialize)]
    struct Loose {
        age: i64,
    }
    assert_eq!(
        from_slice::<Loose>(&o).unwrap().age,
        42,
        "unknown field skipped"
    );
    #[derive(Deserialize, Debug)]
    #[serde(untagged)]
    enum Any {
        I(i32),
        S(String),
    }
    let m: HashMap<String, Any> = from_slice(&o).unwrap();
    assert!(matches!(m["age"], Any::I(42)));
    assert!(matches!(&m["name"], Any::S(n) if n == "ann"));
}

#[test]
fn skipped_fields_get_their_own_class_definition() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Opt {
        a: i32,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        b: Option<i32>,
    }
    let mut e = Encoder::new();
    e.serialize(&Opt { a: 1, b: Some(2) }).unwrap();
    e.serialize(&Opt { a: 3, b: None }).unwrap();
    e.serialize(&Opt { a: 4, b: Some(5) }).unwrap();
    let bytes = e.into_bytes();
    let mut d = Decoder::new(&bytes);
    assert_eq!(d.deserialize::<Opt>().unwrap(), Opt { a: 1, b: Some(2) });
    assert_eq!(d.deserialize::<Opt>().unwrap(), Opt { a: 3, b: None });
    assert_eq!(d.deserialize::<Opt>().unwrap(), Opt { a: 4, b: Some(5) });
    assert!(d.is_empty());
    assert_eq!(bytes.iter().filter(|b| **b == b'C').count(), 2);
}

#[test]
fn to_writer_writes_the_same_bytes() {
    let mut out = Vec::new();
    to_writer(&mut out, &user()).unwrap();
    assert_eq!(out, to_vec(&user()).unwrap());
}

// ----- property tests --------------------------------------------------------------------

mod props {
    use proptest::prelude::*;

    use super::*;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::Int),
            (-300_000i32..300_000).prop_map(Value::Int),
            any::<i64>().prop_map(Value::Long),
            (-300_000i64..300_000).prop_map(Value::Long),
            any::<f64>().prop_map(Value::Double),
            (-40_000i32..40_000).prop_map(|m| Value::Double(f64::from(m) * 0.001)),
            any::<i64>().prop_map(Value::Date),
            any::<i32>().prop_map(|m| Value::Date(i64::from(m) * 60_000)),
            any::<String>().prop_map(Value::String),
            "[a😀é]{0,40}".prop_map(Value::String),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Binary),
        ]
    }

    fn type_name() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[a-z.\\[$]{1,8}")
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(5, 64, 10, |inner| {
            prop_oneof![
                (type_name(), proptest::collection::vec(inner.clone(), 0..10))
                    .prop_map(|(type_name, items)| Value::List { type_name, items }),
                (
                    type_name(),
                    proptest::collection::vec((inner.clone(), inner.clone()), 0..6)
                )
                    .prop_map(|(type_name, entries)| Value::Map { type_name, entries }),
                (
                    "[A-Za-z.$]{1,6}",
                    proptest::collection::vec(("[a-z]{1,3}", inner), 0..6)
                )
                    .prop_map(|(class, fields)| Value::Object { class, fields }),
            ]
        })
    }

    proptest! {
        #[test]
        fn values_round_trip(vs in proptest::collection::vec(value(), 1..4)) {
            let mut e = Encoder::new();
            for v in &vs {
                e.write_value(v).unwrap();
            }
            let bytes = e.into_bytes();
            let mut d = Decoder::new(&bytes);
            for v in &vs {
                prop_assert_eq!(&d.read_value().unwrap(), v);
            }
            prop_assert!(d.is_empty());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut d = Decoder::new(&bytes);
            while !d.is_empty() && d.read_value().is_ok() {}
            let _ = from_slice::<User>(&bytes);
            let _ = from_slice::<Vec<HashMap<String, Option<String>>>>(&bytes);
            let _ = from_slice::<serde::de::IgnoredAny>(&bytes);
        }

        #[test]
        fn mutated_encodings_never_panic(
            v in value(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..6),
        ) {
            let mut bytes = encode(&v).unwrap();
            for (at, byte, op) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match op {
                    0 => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    2 => { bytes.remove(i); }
                    _ => bytes.truncate(i),
                }
            }
            let _ = decode(&bytes);
            let _ = from_slice::<User>(&bytes);
            let _ = from_slice::<Vec<Option<String>>>(&bytes);
            let _ = from_slice::<serde::de::IgnoredAny>(&bytes);
        }

        #[test]
        fn serde_users_round_trip(id in any::<i64>(), name in any::<String>(), zip in any::<Option<u32>>(), tags in proptest::collection::btree_map(any::<String>(), any::<i32>(), 0..5)) {
            let mut u = user();
            u.user_id = id;
            u.display_name = name;
            u.home.zip = zip;
            u.tags = tags;
            let bytes = to_vec(&u).unwrap();
            prop_assert_eq!(from_slice::<User>(&bytes).unwrap(), u);
        }
    }
}

#[test]
fn java_exception_shape() {
    let frame = |method: &str, line: i32| Value::Object {
        class: "java.lang.StackTraceElement".into(),
        fields: vec![
            ("declaringClass".into(), s("org.example.GreeterImpl")),
            ("methodName".into(), s(method)),
            ("fileName".into(), s("GreeterImpl.java")),
            ("lineNumber".into(), Value::Int(line)),
        ],
    };
    let exception = Value::Object {
        class: "java.lang.IllegalStateException".into(),
        fields: vec![
            ("detailMessage".into(), s("no greeting for bob")),
            ("cause".into(), Value::Ref(0)),
            (
                "stackTrace".into(),
                Value::List {
                    type_name: Some("[java.lang.StackTraceElement".into()),
                    items: vec![frame("greet", 12), frame("invoke", 40)],
                },
            ),
            (
                "suppressedExceptions".into(),
                Value::List {
                    type_name: Some("java.util.Collections$UnmodifiableRandomAccessList".into()),
                    items: vec![],
                },
            ),
        ],
    };
    // Response body: flag 0 (exception), the exception, then attachments.
    let mut e = Encoder::new();
    e.write_int(3);
    e.write_value(&exception).unwrap();
    e.write_value(&Value::map(vec![(s("dubbo"), s("2.0.2"))]))
        .unwrap();
    let body = e.into_bytes();

    let mut d = Decoder::new(&body);
    assert_eq!(d.deserialize::<i32>().unwrap(), 3);
    assert_eq!(d.read_value().unwrap(), exception);
    assert_eq!(d.read_value().unwrap().get("dubbo"), Some(&s("2.0.2")));
    assert!(d.is_empty());

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Frame {
        method_name: String,
        line_number: i32,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Thrown {
        detail_message: Option<String>,
        stack_trace: Vec<Frame>,
    }
    let mut d = Decoder::new(&body);
    let _: i32 = d.deserialize().unwrap();
    let t: Thrown = d.deserialize().unwrap();
    assert_eq!(t.detail_message.as_deref(), Some("no greeting for bob"));
    assert_eq!(t.stack_trace[1].method_name, "invoke");
    assert_eq!(t.stack_trace[1].line_number, 40);
}

#[test]
fn request_bodies_from_other_dubbo_clients() {
    // dubbo2.js 2.3.9 (attachments in another order, with `application`) and a client that
    // sends `group` as null; both read and re-encode byte-identically.
    let frames = [
        "dabbc20000000000000000010000009a05322e302e32136f72672e6578616d706c652e4772656574657205312e302e30056772656574124c6a6176612f6c616e672f537472696e673b03616e6e480b6170706c69636174696f6e09647562626f322e6a7309696e74657266616365136f72672e6578616d706c652e477265657465720470617468136f72672e6578616d706c652e477265657465720776657273696f6e05312e302e305a",
        "dabbc20000000000000000000000008b05322e302e32136f72672e6578616d706c652e4772656574657205312e302e30056772656574124c6a6176612f6c616e672f537472696e673b03616e6e480470617468136f72672e6578616d706c652e4772656574657209696e74657266616365136f72672e6578616d706c652e477265657465720776657273696f6e05312e302e300567726f75704e5a",
    ];
    for frame in frames {
        let frame = hex(frame);
        let body = &frame[16..];
        let mut d = Decoder::new(body);
        let mut e = Encoder::new();
        let mut values = Vec::new();
        while !d.is_empty() {
            let v = d.read_value().unwrap();
            e.write_value(&v).unwrap();
            values.push(v);
        }
        assert_eq!(e.into_bytes(), body);
        assert_eq!(values.len(), 7);
        assert_eq!(values[3], s("greet"));
        let mut d = Decoder::new(body);
        for _ in 0..6 {
            let _: String = d.deserialize().unwrap();
        }
        let att: HashMap<String, Option<String>> = d.deserialize().unwrap();
        assert_eq!(att["path"].as_deref(), Some("org.example.Greeter"));
    }
}
