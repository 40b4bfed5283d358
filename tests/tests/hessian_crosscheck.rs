//! Cross-check of `rpc-hessian2` with an independent Hessian 2.0 implementation, hessian.js
//! 2.11.0 (installed by `scripts/install-interop.sh` with the other stock peers).
//!
//! `tests/interop/hessian_corpus.js` generates a corpus of values of every Hessian type
//! (compact and long forms, chunked strings and binaries, typed and untyped lists and maps,
//! objects sharing class definitions, back-references, several values per message), encoded
//! by hessian.js, each with a typed description of what it holds. This test decodes every
//! message with our decoder and compares it with the description, then encodes the
//! descriptions with our encoder and has hessian.js decode and check those. Values are
//! compared, not bytes: the two encoders legitimately choose different forms in places
//! (hessian.js chunks binaries every 4093 bytes, and writes a list, map or object that
//! appears twice as a back-reference, which our encoder writes out again). The test prints
//! how many messages came out byte-identical.
//!
//! The seed is random and printed; set `RPC_TEST_HESSIAN_SEED` to repeat a run and
//! `RPC_TEST_HESSIAN_COUNT` (messages per kind of value, default 200) to change its size.
//! Without `RPC_TEST_INTEROP_DIR` (or without node / hessian.js) the test skips loudly, except
//! under CI (`CI=true`), where it fails.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use rpc_hessian2::{Decoder, Encoder, Value};
use rpc_tests::peers;
use serde_json::{json, Value as Json};

/// Where hessian.js is installed (`$RPC_TEST_INTEROP_DIR/node_modules`), or `None` (outside
/// CI) to skip.
fn hessian_js() -> Option<PathBuf> {
    let dir = peers::dir()?;
    let modules = dir.join("node_modules");
    if !modules.join("hessian.js").is_dir() {
        return peers::missing(&format!(
            "hessian.js is not installed in {}",
            modules.display()
        ));
    }
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => Some(modules),
        _ => peers::missing("node is not on PATH"),
    }
}

/// Runs the corpus script; returns its output, failing the test when it fails.
fn node(modules: &Path, args: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/hessian_corpus.js");
    let out = Command::new("node")
        .arg(script)
        .args(args)
        .env("NODE_PATH", modules)
        .output()
        .expect("node runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "node hessian_corpus.js {args:?} failed:\n{text}"
    );
    text
}

fn hex_decode(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd hex length {}", s.len()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("hex: {e}")))
        .collect()
}

fn hex_encode(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn field<'a>(d: &'a Json, name: &str) -> Result<&'a Json, String> {
    d.get(name).ok_or_else(|| format!("no `{name}` in {d}"))
}

fn text(d: &Json, name: &str) -> Result<String, String> {
    field(d, name)?
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("`{name}` is not a string in {d}"))
}

fn type_name(d: &Json) -> Result<Option<String>, String> {
    match d.get("type") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("bad type {other}")),
    }
}

fn array<'a>(d: &'a Json, name: &str) -> Result<&'a Vec<Json>, String> {
    field(d, name)?
        .as_array()
        .ok_or_else(|| format!("`{name}` is not an array in {d}"))
}

/// A description (see the script) as the [`Value`] it describes.
fn to_value(d: &Json) -> Result<Value, String> {
    let t = text(d, "t")?;
    Ok(match t.as_str() {
        "null" => Value::Null,
        "bool" => Value::Bool(field(d, "v")?.as_bool().ok_or("bad bool")?),
        "int" => Value::Int(
            field(d, "v")?
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| format!("bad int {d}"))?,
        ),
        "long" => Value::Long(text(d, "v")?.parse().map_err(|e| format!("long: {e}"))?),
        "double" => Value::Double(f64::from_bits(
            u64::from_str_radix(&text(d, "v")?, 16).map_err(|e| format!("double: {e}"))?,
        )),
        "date" => Value::Date(text(d, "v")?.parse().map_err(|e| format!("date: {e}"))?),
        "string" => Value::String(text(d, "v")?),
        "binary" => Value::Binary(hex_decode(&text(d, "v")?)?),
        "list" => Value::List {
            type_name: type_name(d)?,
            items: array(d, "v")?
                .iter()
                .map(to_value)
                .collect::<Result<_, _>>()?,
        },
        "map" => Value::Map {
            type_name: type_name(d)?,
            entries: array(d, "v")?
                .iter()
                .map(|e| match e.as_array().map(Vec::as_slice) {
                    Some([k, v]) => Ok((to_value(k)?, to_value(v)?)),
                    _ => Err(format!("bad map entry {e}")),
                })
                .collect::<Result<_, String>>()?,
        },
        "object" => Value::Object {
            class: text(d, "class")?,
            fields: array(d, "v")?
                .iter()
                .map(|e| match e.as_array().map(Vec::as_slice) {
                    Some([Json::String(k), v]) => Ok((k.clone(), to_value(v)?)),
                    _ => Err(format!("bad object field {e}")),
                })
                .collect::<Result<_, String>>()?,
        },
        other => return Err(format!("unknown description type {other}")),
    })
}

/// A [`Value`] as a description, for messages.
fn describe(v: &Value) -> Json {
    match v {
        Value::Null => json!({"t": "null"}),
        Value::Bool(b) => json!({"t": "bool", "v": b}),
        Value::Int(i) => json!({"t": "int", "v": i}),
        Value::Long(l) => json!({"t": "long", "v": l.to_string()}),
        Value::Double(f) => json!({"t": "double", "v": format!("{:016x}", f.to_bits())}),
        Value::Date(ms) => json!({"t": "date", "v": ms.to_string()}),
        Value::String(s) => json!({"t": "string", "v": s}),
        Value::Binary(b) => json!({"t": "binary", "v": hex_encode(b)}),
        Value::List { type_name, items } => {
            json!({"t": "list", "type": type_name, "v": items.iter().map(describe).collect::<Vec<_>>()})
        }
        Value::Map { type_name, entries } => json!({
            "t": "map",
            "type": type_name,
            "v": entries.iter().map(|(k, v)| json!([describe(k), describe(v)])).collect::<Vec<_>>(),
        }),
        Value::Object { class, fields } => json!({
            "t": "object",
            "class": class,
            "v": fields.iter().map(|(k, v)| json!([k, describe(v)])).collect::<Vec<_>>(),
        }),
        Value::Ref(n) => json!({"t": "ref", "v": n}),
    }
}

fn clip(s: String) -> String {
    if s.len() <= 400 {
        return s;
    }
    let mut end = 400;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

struct Message {
    line: usize,
    kind: String,
    expect: Vec<Value>,
    hex: String,
}

fn parse_corpus(corpus: &str) -> Vec<Message> {
    corpus
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(n, l)| {
            let j: Json = serde_json::from_str(l).expect("corpus line is JSON");
            let parse = || -> Result<Message, String> {
                Ok(Message {
                    line: n + 1,
                    kind: text(&j, "kind")?,
                    expect: array(&j, "expect")?
                        .iter()
                        .map(to_value)
                        .collect::<Result<_, _>>()?,
                    hex: text(&j, "hex")?,
                })
            };
            parse().unwrap_or_else(|e| panic!("corpus line {}: {e}", n + 1))
        })
        .collect()
}

/// Decodes one message with our decoder: the values, or what went wrong.
fn decode_message(bytes: &[u8], count: usize) -> Result<Vec<Value>, String> {
    let mut d = Decoder::new(bytes);
    let mut values = Vec::with_capacity(count);
    for _ in 0..count {
        values.push(d.read_value().map_err(|e| e.to_string())?);
    }
    if !d.is_empty() {
        return Err(format!(
            "{} bytes left after {count} values",
            d.remaining().len()
        ));
    }
    Ok(values)
}

#[test]
fn hessian_js_and_our_codec_agree() {
    let Some(modules) = hessian_js() else {
        return;
    };
    let seed = std::env::var("RPC_TEST_HESSIAN_SEED")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or_else(|| fastrand::u32(..));
    let count = std::env::var("RPC_TEST_HESSIAN_COUNT").unwrap_or_else(|_| "200".into());
    eprintln!("hessian.js cross-check: seed {seed} (RPC_TEST_HESSIAN_SEED={seed} repeats it)");

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("hessian-crosscheck-{seed}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let corpus_path = dir.join("hessian-js.jsonl");
    let ours_path = dir.join("ours.jsonl");
    let corpus_arg = corpus_path.to_str().expect("utf-8 path");
    let ours_arg = ours_path.to_str().expect("utf-8 path");

    // hessian.js -> our decoder.
    eprint!(
        "{}",
        node(
            &modules,
            &["generate", &seed.to_string(), &count, corpus_arg]
        )
    );
    let corpus = std::fs::read_to_string(&corpus_path).expect("corpus written");
    let messages = parse_corpus(&corpus);
    assert!(!messages.is_empty(), "empty corpus");
    let mut mismatches = Vec::new();
    let mut values = 0;
    for m in &messages {
        values += m.expect.len();
        let bytes = hex_decode(&m.hex).expect("corpus hex");
        match decode_message(&bytes, m.expect.len()) {
            Ok(got) if got == m.expect => {}
            Ok(got) => mismatches.push(format!(
                "line {} ({}):\n  want {}\n  got  {}\n  hex  {}",
                m.line,
                m.kind,
                clip(Json::Array(m.expect.iter().map(describe).collect()).to_string()),
                clip(Json::Array(got.iter().map(describe).collect()).to_string()),
                clip(m.hex.clone()),
            )),
            Err(e) => mismatches.push(format!(
                "line {} ({}): our decoder fails: {e}\n  hex {}",
                m.line,
                m.kind,
                clip(m.hex.clone())
            )),
        }
    }
    eprintln!(
        "our decoder: {} messages ({values} top-level values) from hessian.js, {} mismatched",
        messages.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "our decoder disagrees with hessian.js on {} of {} messages (seed {seed}):\n{}",
        mismatches.len(),
        messages.len(),
        mismatches
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Our encoder -> hessian.js.
    let mut out = String::new();
    let mut identical = 0;
    let mut differing: std::collections::BTreeMap<&str, usize> = Default::default();
    for m in &messages {
        let mut e = Encoder::new();
        for v in &m.expect {
            e.write_value(v).expect("our encoder writes the value");
        }
        let hex = hex_encode(e.as_bytes());
        if hex == m.hex {
            identical += 1;
        } else {
            *differing.entry(m.kind.as_str()).or_default() += 1;
        }
        let line = json!({
            "kind": m.kind,
            "expect": m.expect.iter().map(describe).collect::<Vec<_>>(),
            "hex": hex,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    std::fs::write(&ours_path, out).expect("write our encodings");
    eprintln!(
        "our encoder: {identical} of {} messages byte-identical to hessian.js's (different \
         bytes by kind: {differing:?})",
        messages.len()
    );
    eprint!("{}", node(&modules, &["check", ours_arg]));
    let _ = std::fs::remove_dir_all(&dir);
}
