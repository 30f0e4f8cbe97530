use matview_crd::MaterializedView;
use matview_formats::registry::{NamedSchema, ResolvedSchema};

use super::*;

/// The shop example, its price typed as `type`.
fn shop(edit: impl FnOnce(&mut MaterializedView)) -> CompiledView {
    let text = include_str!("../../../examples/items-by-price.yaml");
    let mut view: MaterializedView = serde_yaml_ng::from_str(text).expect("example parses");
    edit(&mut view);
    matview_engine::compile(&view.spec).expect("compiles")
}

fn avro(schema: &str, references: &[&str]) -> Shape {
    Shape::of(&ResolvedSchema {
        id: 1,
        schema_type: "AVRO".into(),
        schema: schema.into(),
        references: references
            .iter()
            .map(|r| NamedSchema {
                name: "ref".into(),
                schema: (*r).into(),
            })
            .collect(),
    })
    .expect("a valid schema")
}

const ITEM: &str = r#"{"type": "record", "name": "Item", "namespace": "shop", "fields": [
    {"name": "itemId", "type": "string"},
    {"name": "name", "type": "string"},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 4}}]}"#;

const ORDER: &str = r#"{"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "orderId", "type": "string"},
    {"name": "userId", "type": "string"},
    {"name": "coupon", "type": ["null", "string"], "default": null},
    {"name": "items", "type": {"type": "array", "items": "shop.Item"}}]}"#;

fn messages(issues: &[SpecIssue]) -> Vec<String> {
    issues.iter().map(ToString::to_string).collect()
}

#[test]
fn the_shop_view_fits_the_order_schema_with_its_referenced_item() {
    let shape = avro(ORDER, &[ITEM]);
    let issues = check_paths(&shop(|_| {}), &shape, "orders-value version 1");
    assert!(issues.is_empty(), "{:?}", messages(&issues));
}

#[test]
fn a_missing_field_is_named_with_the_fields_there_are() {
    let shape = avro(ORDER, &[ITEM]);
    let view = shop(|v| {
        v.spec.records.fields.insert("price".into(), "/cost".into());
    });
    let issues = messages(&check_paths(&view, &shape, "orders-value version 1"));
    assert_eq!(issues.len(), 1, "{issues:?}");
    let said = &issues[0];
    assert!(
        said.starts_with("spec.records.fields.price: /cost"),
        "{said}"
    );
    assert!(said.contains("shop.Item has no field \"cost\""), "{said}");
    assert!(said.contains("itemId, name, price"), "{said}");
    assert!(said.contains("orders-value version 1"), "{said}");
}

#[test]
fn a_numeric_field_that_is_text_and_an_exploded_scalar_are_refused() {
    let text_price = ITEM.replace(
        r#"{"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 4}"#,
        r#""string""#,
    );
    let shape = avro(ORDER, &[&text_price]);
    let issues = messages(&check_paths(&shop(|_| {}), &shape, "v2"));
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0].contains("/price is a string, but the view reads it as a number"),
        "{issues:?}"
    );
    // A numeric string is what a text price can be read as.
    let lenient = shop(|v| {
        v.spec
            .records
            .types
            .insert("price".into(), matview_crd::FieldType::NumericString);
    });
    assert!(check_paths(&lenient, &shape, "v2").is_empty());

    let exploded_scalar = shop(|v| v.spec.records.explode = Some("/orderId".into()));
    let issues = messages(&check_paths(&exploded_scalar, &avro(ORDER, &[ITEM]), "v1"));
    assert!(
        issues
            .iter()
            .any(|i| i.starts_with("spec.records.explode: /orderId is a string, not an array")),
        "{issues:?}"
    );
}

#[test]
fn protobuf_messages_check_by_their_proto_names() {
    let proto = r#"
        syntax = "proto3";
        package shop;
        import "google/type/decimal.proto";
        message Order {
          string order_id = 1;
          string userId = 2;
          repeated Item items = 3;
          map<string, string> labels = 4;
          oneof payment { string card = 5; string voucher = 6; }
        }
        message Item {
          string itemId = 1;
          string name = 2;
          google.type.Decimal price = 3;
        }"#;
    let shape = Shape::of(&ResolvedSchema {
        id: 2,
        schema_type: "PROTOBUF".into(),
        schema: proto.into(),
        references: Vec::new(),
    })
    .expect("compiles");
    let fits = shop(|v| {
        v.spec
            .records
            .fields
            .insert("orderId".into(), "^/order_id".into());
        v.spec
            .records
            .fields
            .insert("label".into(), "^/labels/anything".into());
        v.spec.records.fields.insert("card".into(), "^/card".into());
    });
    let issues = check_paths(&fits, &shape, "orders-value version 1");
    assert!(issues.is_empty(), "{:?}", messages(&issues));
    // The JSON name (orderId) is not the proto's name (order_id).
    let camel = shop(|_| {});
    let issues = messages(&check_paths(&camel, &shape, "orders-value version 1"));
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0].contains("shop.Order has no field \"orderId\""),
        "{issues:?}"
    );
}
