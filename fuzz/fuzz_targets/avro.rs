//! Any bytes, framed or not, against Avro schemas that use every type the
//! reader knows (references, recursion, unions, every logical type): the
//! decoder answers with JSON that parses, or with an error — never a panic,
//! a hang or unbounded memory.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use matview_formats::registry::{NamedSchema, ResolvedSchema};
use matview_formats::{Encoding, SchemaCache};

const ITEM: &str = r#"{"type":"record","name":"Item","namespace":"shop","fields":[
  {"name":"itemId","type":"string"},
  {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":40,"scale":4}},
  {"name":"tag","type":["null","string",{"type":"enum","name":"Color","symbols":["RED","GREEN"]}]}]}"#;

const SCHEMAS: [&str; 3] = [
    r#"{"type":"record","name":"Order","namespace":"shop","fields":[
      {"name":"orderId","type":"string"},
      {"name":"items","type":{"type":"array","items":"shop.Item"}},
      {"name":"attributes","type":{"type":"map","values":["null","long","double"]}},
      {"name":"note","type":["null","string"]}]}"#,
    r#"{"type":"record","name":"Node","fields":[
      {"name":"value","type":"int"},
      {"name":"next","type":["null","Node"]},
      {"name":"children","type":{"type":"array","items":"Node"}}]}"#,
    r#"{"type":"record","name":"Logical","fields":[
      {"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":30,"scale":6}},
      {"name":"f","type":{"type":"fixed","name":"F","size":9,"logicalType":"decimal","precision":20,"scale":2}},
      {"name":"bd","type":{"type":"bytes","logicalType":"big-decimal"}},
      {"name":"day","type":{"type":"int","logicalType":"date"}},
      {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
      {"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
      {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
      {"name":"tn","type":{"type":"long","logicalType":"timestamp-nanos"}},
      {"name":"lt","type":{"type":"long","logicalType":"local-timestamp-micros"}},
      {"name":"u","type":{"type":"string","logicalType":"uuid"}},
      {"name":"dur","type":{"type":"fixed","name":"D","size":12,"logicalType":"duration"}},
      {"name":"raw","type":"bytes"},
      {"name":"x","type":"float"},
      {"name":"flag","type":"boolean"}]}"#,
];

/// Schema ids 1, 2, 3.
static CACHE: LazyLock<SchemaCache> = LazyLock::new(|| {
    let mut cache = SchemaCache::new(Encoding::Avro);
    for (i, schema) in SCHEMAS.iter().enumerate() {
        let references = if i == 0 {
            vec![NamedSchema { name: "shop.Item".into(), schema: ITEM.into() }]
        } else {
            Vec::new()
        };
        cache.insert(&ResolvedSchema {
            id: i as u32 + 1,
            schema_type: "AVRO".into(),
            schema: schema.to_string(),
            references,
        });
    }
    cache
});

fuzz_target!(|data: &[u8]| {
    // The first byte picks a schema; the rest is the body, framed here so
    // the fuzzer spends its effort on bodies (raw frames are fuzzed too).
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let framed: Vec<u8> = if pick == 0xff {
        body.to_vec()
    } else {
        let mut framed = vec![0, 0, 0, 0, pick % 3 + 1];
        framed.extend_from_slice(body);
        framed
    };
    let mut out = Vec::new();
    if CACHE.decode(&framed, &mut out).is_ok() {
        serde_json::from_slice::<serde_json::Value>(&out)
            .unwrap_or_else(|e| panic!("decoded text is not JSON ({e}): {}", String::from_utf8_lossy(&out)));
    }
});
