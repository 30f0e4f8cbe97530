//! The shop's orders in Avro or Protobuf, for `matview bench projector
//! --format` and `cargo bench --bench formats`: the schema registered in a
//! real registry (or given an id), each order framed in the Confluent wire
//! format as a producer's serializer would. Field names are the JSON
//! orders' own, so the benchmark view is the same for every format.

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use matview_formats::registry::{RegisterSchema, RegisteredId};
use num_bigint::BigInt;
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor, Value as Proto};
use serde_json::Value;

use super::{BenchError, io_err};

/// The order in Avro: prices as `decimal(12,2)` (the Avro example's schema).
pub const AVRO_ORDER: &str = include_str!("../../../examples/schemas/order.avsc");

/// The order in Protobuf: prices as `google.type.Decimal`.
pub const PROTO_ORDER: &str = r#"syntax = "proto3";
package shop;
import "google/type/decimal.proto";
message Order {
  message Item { string itemId = 1; string name = 2; google.type.Decimal price = 3; int32 quantity = 4; }
  string orderId = 1;
  string userId = 2;
  string country = 3;
  int64 placedAt = 4;
  repeated Item items = 5;
}
"#;

const DECIMAL_PROTO: &str =
    "syntax = \"proto3\";\npackage google.type;\nmessage Decimal { string value = 1; }\n";

/// Event encodings the benchmark can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BenchFormat {
    Json,
    Avro,
    Protobuf,
}

impl BenchFormat {
    /// The registry's `schemaType` and the schema text.
    fn schema(self) -> Option<(&'static str, &'static str)> {
        match self {
            BenchFormat::Json => None,
            BenchFormat::Avro => Some(("AVRO", AVRO_ORDER)),
            BenchFormat::Protobuf => Some(("PROTOBUF", PROTO_ORDER)),
        }
    }
}

enum Kind {
    Avro(Schema),
    Protobuf(ProtoTypes),
}

/// The message types an order is built of, looked up once.
struct ProtoTypes {
    order: MessageDescriptor,
    item: MessageDescriptor,
    decimal: MessageDescriptor,
}

/// Frames orders under one schema id.
pub struct OrderEncoder {
    id: u32,
    kind: Kind,
}

impl OrderEncoder {
    /// An encoder for `format` (not JSON) under schema `id`.
    pub fn new(format: BenchFormat, id: u32) -> Result<OrderEncoder, BenchError> {
        let kind = match format {
            BenchFormat::Json => return Err(io_err("JSON needs no encoder")),
            BenchFormat::Avro => Kind::Avro(Schema::parse_str(AVRO_ORDER).map_err(io_err)?),
            BenchFormat::Protobuf => {
                let mut compiler = protox::Compiler::with_file_resolver(Sources);
                compiler.open_file("shop/order.proto").map_err(io_err)?;
                let pool = compiler.descriptor_pool();
                let message = |name: &str| {
                    pool.get_message_by_name(name)
                        .ok_or_else(|| io_err(format!("no {name}")))
                };
                Kind::Protobuf(ProtoTypes {
                    order: message("shop.Order")?,
                    item: message("shop.Order.Item")?,
                    decimal: message("google.type.Decimal")?,
                })
            }
        };
        Ok(OrderEncoder { id, kind })
    }

    /// Registers the schema under `subject` (as a producer's serializer
    /// does) and returns the encoder for the id the registry gives it.
    pub async fn register(
        format: BenchFormat,
        registry: &str,
        subject: &str,
    ) -> Result<OrderEncoder, BenchError> {
        let (schema_type, schema) = format
            .schema()
            .ok_or_else(|| io_err("JSON needs no registry"))?;
        let url = format!(
            "{}/subjects/{subject}/versions",
            registry.trim_end_matches('/')
        );
        let body = RegisterSchema {
            schema: schema.to_string(),
            schema_type: Some(schema_type.to_string()),
            references: Vec::new(),
        };
        let answer: RegisteredId = reqwest::Client::new()
            .post(&url)
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .json(&body)
            .send()
            .await
            .map_err(io_err)?
            .error_for_status()
            .map_err(io_err)?
            .json()
            .await
            .map_err(io_err)?;
        OrderEncoder::new(format, answer.id)
    }

    /// The order as a framed message value.
    pub fn encode(&self, order: &Value) -> Result<Vec<u8>, BenchError> {
        let mut out = vec![0];
        out.extend(self.id.to_be_bytes());
        match &self.kind {
            Kind::Avro(schema) => {
                let writer = apache_avro::writer::datum::GenericDatumWriter::builder(schema)
                    .build()
                    .map_err(io_err)?;
                out.extend(
                    writer
                        .write_value_to_vec(avro_order(order))
                        .map_err(io_err)?,
                );
            }
            Kind::Protobuf(types) => {
                out.push(0); // message indexes: the file's first message
                out.extend(proto_order(types, order).encode_to_vec());
            }
        }
        Ok(out)
    }
}

struct Sources;

impl protox::file::FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        match name {
            "shop/order.proto" => protox::file::File::from_source(name, PROTO_ORDER),
            "google/type/decimal.proto" => protox::file::File::from_source(name, DECIMAL_PROTO),
            other => Err(protox::Error::file_not_found(other)),
        }
    }
}

fn cents(item: &Value) -> i64 {
    (item["price"].as_f64().unwrap_or_default() * 100.0).round() as i64
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn items(order: &Value) -> impl Iterator<Item = &Value> {
    order["items"].as_array().into_iter().flatten()
}

/// A generated order as the Avro value of [`AVRO_ORDER`].
pub fn avro_order(order: &Value) -> Avro {
    let items = items(order)
        .map(|i| {
            Avro::Record(vec![
                ("itemId".into(), Avro::String(text(&i["itemId"]))),
                ("name".into(), Avro::String(text(&i["name"]))),
                (
                    "price".into(),
                    Avro::Decimal(BigInt::from(cents(i)).to_signed_bytes_be().into()),
                ),
                (
                    "quantity".into(),
                    Avro::Int(i["quantity"].as_i64().unwrap_or(1) as i32),
                ),
            ])
        })
        .collect();
    Avro::Record(vec![
        ("orderId".into(), Avro::String(text(&order["orderId"]))),
        ("userId".into(), Avro::String(text(&order["userId"]))),
        ("country".into(), Avro::String(text(&order["country"]))),
        (
            "placedAt".into(),
            Avro::TimestampMillis(order["placedAt"].as_i64().unwrap_or(0)),
        ),
        ("items".into(), Avro::Array(items)),
    ])
}

fn proto_order(types: &ProtoTypes, order: &Value) -> DynamicMessage {
    let items = items(order)
        .map(|i| {
            let c = cents(i);
            let mut price = DynamicMessage::new(types.decimal.clone());
            price.set_field_by_name(
                "value",
                Proto::String(format!("{}.{:02}", c / 100, c % 100)),
            );
            let mut item = DynamicMessage::new(types.item.clone());
            item.set_field_by_name("itemId", Proto::String(text(&i["itemId"])));
            item.set_field_by_name("name", Proto::String(text(&i["name"])));
            item.set_field_by_name("price", Proto::Message(price));
            item.set_field_by_name(
                "quantity",
                Proto::I32(i["quantity"].as_i64().unwrap_or(1) as i32),
            );
            Proto::Message(item)
        })
        .collect();
    let mut message = DynamicMessage::new(types.order.clone());
    message.set_field_by_name("orderId", Proto::String(text(&order["orderId"])));
    message.set_field_by_name("userId", Proto::String(text(&order["userId"])));
    message.set_field_by_name("country", Proto::String(text(&order["country"])));
    message.set_field_by_name(
        "placedAt",
        Proto::I64(order["placedAt"].as_i64().unwrap_or(0)),
    );
    message.set_field_by_name("items", Proto::List(items));
    message
}
