//! Schema pieces that derive cannot express: comparator values that may be a
//! number, a string or a boolean.

use schemars::{Schema, SchemaGenerator, json_schema};

/// A number, string or boolean. A structural schema cannot say "one of these
/// types" (and CEL cannot see untyped fields), so the value is left untyped
/// here and its type is checked when the spec is compiled.
pub fn scalar_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// A list of numbers, strings or booleans.
pub fn scalar_list_schema(generator: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "minItems": 1,
        "maxItems": 256,
        "items": scalar_schema(generator)
    })
}
