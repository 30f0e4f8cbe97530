//! Any bytes, framed or not, against a Protobuf schema with imports, a
//! `oneof`, maps, enums, nested and recursive messages and well-known types:
//! the decoder answers with JSON that parses, or with an error — never a
//! panic, a hang or unbounded memory.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use matview_formats::registry::{NamedSchema, ResolvedSchema};
use matview_formats::{Encoding, SchemaCache};

const ITEM: &str = r#"syntax = "proto3";
package shop;
import "google/type/decimal.proto";
import "google/type/money.proto";
message Item { string item_id = 1; google.type.Decimal price = 2; int32 quantity = 3; google.type.Money paid = 4; }
"#;

const ORDER: &str = r#"syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/wrappers.proto";
import "shop/item.proto";
message Order {
  enum Status { NEW = 0; PAID = 1; }
  message Gift { string to = 1; Gift next = 2; }
  string order_id = 1;
  repeated Item items = 3;
  google.protobuf.Timestamp placed_at = 4;
  oneof payment { string card = 5; string voucher = 6; Gift gift = 13; }
  map<string, int64> counters = 7;
  map<int32, Item> by_line = 14;
  Status status = 8;
  google.protobuf.StringValue note = 9;
  google.protobuf.DoubleValue weight = 15;
  google.protobuf.Duration wait = 16;
  sint64 total_cents = 10;
  fixed64 code = 17;
  bytes blob = 18;
  double ratio = 19;
  optional int32 priority = 12;
  repeated Status history = 20;
}
message Other { bool flag = 1; repeated float values = 2; }
"#;

static CACHE: LazyLock<SchemaCache> = LazyLock::new(|| {
    let mut cache = SchemaCache::new(Encoding::Protobuf);
    cache.insert(&ResolvedSchema {
        id: 1,
        schema_type: "PROTOBUF".into(),
        schema: ORDER.into(),
        references: vec![NamedSchema { name: "shop/item.proto".into(), schema: ITEM.into() }],
    });
    cache
});

fuzz_target!(|data: &[u8]| {
    // Framed here (schema id 1) unless the first byte says raw, so the
    // fuzzer spends its effort on message indexes and messages.
    let framed: Vec<u8> = match data.split_first() {
        Some((0xff, raw)) => raw.to_vec(),
        _ => [&[0, 0, 0, 0, 1][..], data].concat(),
    };
    let mut out = Vec::new();
    if CACHE.decode(&framed, &mut out).is_ok() {
        serde_json::from_slice::<serde_json::Value>(&out)
            .unwrap_or_else(|e| panic!("decoded text is not JSON ({e}): {}", String::from_utf8_lossy(&out)));
    }
});
