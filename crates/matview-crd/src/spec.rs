//! The `MaterializedView` spec: what a platform team writes.
//!
//! Doc comments become the schema's descriptions (`kubectl explain`);
//! `x_kube(validation)` rules become CEL rules that the API server enforces.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rollout::Rollout;
use super::schema::{scalar_list_schema, scalar_schema};
use super::status::MaterializedViewStatus;

// Promotion is checked by the API server against status as it stands (on
// update, the request's status is replaced by the stored one). A promote that
// did not change passes, so status writes and unrelated edits never fail.
macro_rules! promote_unchanged {
    () => {
        "(!has(self.spec.rollout) || !has(self.spec.rollout.promote) || (has(oldSelf.spec.rollout) && has(oldSelf.spec.rollout.promote) && oldSelf.spec.rollout.promote == self.spec.rollout.promote))"
    };
}
macro_rules! promote_serving {
    () => {
        "(has(self.status) && has(self.status.activeRevision) && self.status.activeRevision == self.spec.rollout.promote)"
    };
}
macro_rules! promote_pending {
    () => {
        "(has(self.status) && has(self.status.rollout) && has(self.status.rollout.pending) && self.status.rollout.pending.revision == self.spec.rollout.promote)"
    };
}

/// A read model kept up to date from a Kafka topic: events become records,
/// records are classified into groups and folded into one row per key.
// Each printer column repeats keys such as `type_`, which clippy mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "matview.dev",
    version = "v1alpha1",
    kind = "MaterializedView",
    plural = "materializedviews",
    singular = "materializedview",
    namespaced,
    shortname = "mv",
    shortname = "mview",
    category = "matview",
    status = "MaterializedViewStatus",
    validation = Rule::new("self.metadata.name.size() <= 63").message("metadata.name: a view name has at most 63 characters, since it becomes a label value of the view's objects"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name: a view name must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter and ending with a letter or digit (no dots), since it names the view's Services and pods"),
    validation = Rule::new(concat!(promote_unchanged!(), " || ", promote_serving!(), " || ", promote_pending!()))
        .message(kube::core::Message::Expression("'spec.rollout.promote: revision ' + self.spec.rollout.promote + ' is neither pending nor serving; promote the revision that status.rollout.pending.revision names'".into()))
        .field_path(".spec.rollout.promote"),
    validation = Rule::new(concat!(promote_unchanged!(), " || ", promote_serving!(), " || !", promote_pending!(), " || self.status.rollout.pending.caughtUp"))
        .message(kube::core::Message::Expression("'spec.rollout.promote: revision ' + self.spec.rollout.promote + ' has not caught up with the topic yet (status.rollout.pending.lag); promote it once status.rollout.pending.caughtUp is true'".into()))
        .field_path(".spec.rollout.promote"),
    doc = "A MaterializedView keeps a queryable read model of a Kafka topic: events become records, records are classified into groups, and each row (one per key) holds per-group counts, sums and items.",
    printcolumn(
        name = "Topic",
        type_ = "string",
        json_path = ".spec.source.kafka.topic",
        description = "Source topic"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the active revision serves reads"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        description = "Why it is, or is not, ready (kubectl describe shows the message)"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Lifecycle phase"
    ),
    printcolumn(
        name = "Lag",
        type_ = "integer",
        json_path = ".status.lag",
        description = "Events not yet applied, summed over partitions"
    ),
    printcolumn(
        name = "Rows",
        type_ = "integer",
        json_path = ".status.rows",
        description = "Rows in the active revision"
    ),
    printcolumn(
        name = "Revision",
        type_ = "string",
        json_path = ".status.activeRevision",
        description = "Revision serving reads"
    ),
    printcolumn(
        name = "Pending",
        type_ = "string",
        json_path = ".status.rollout.pending.revision",
        description = "Revision built from the spec and waiting for promotion (spec.rollout.strategy Manual)"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Shards",
        type_ = "integer",
        json_path = ".spec.shards",
        priority = "1"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicasPerShard",
        priority = "1"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.aggregate) || !has(self.aggregate.sum) || self.aggregate.sum.all(f, f in self.records.fields)").message("every aggregate.sum entry must name a field declared in records.fields").field_path(".aggregate.sum"))]
#[x_kube(validation = Rule::new("self.classify.field in self.records.fields").message("classify.field must name a field declared in records.fields").field_path(".classify.field"))]
#[x_kube(validation = Rule::new("!has(self.aggregate) || !has(self.aggregate.items) || !has(self.aggregate.items.orderBy) || self.aggregate.items.orderBy in self.records.fields").message("aggregate.items.orderBy must name a field declared in records.fields").field_path(".aggregate.items.orderBy"))]
#[x_kube(validation = Rule::new(r"!has(self.source.envelope) || self.source.envelope != 'debezium' || !self.records.key.matches('^\\^?/(before|after|payload|schema)(/|$)')").message("with envelope debezium, paths address the row image (the table's columns, as in `after`): write /price, not /after/price").field_path(".records.key"))]
#[x_kube(validation = Rule::new(r"!has(self.source.envelope) || self.source.envelope != 'debezium' || !has(self.records.id) || !self.records.id.matches('^\\^?/(before|after|payload|schema)(/|$)')").message("with envelope debezium, paths address the row image (the table's columns, as in `after`): write /price, not /after/price").field_path(".records.id"))]
#[x_kube(validation = Rule::new(r"!has(self.source.envelope) || self.source.envelope != 'debezium' || !has(self.records.explode) || !self.records.explode.matches('^\\^?/(before|after|payload|schema)(/|$)')").message("with envelope debezium, paths address the row image (the table's columns, as in `after`): write /price, not /after/price").field_path(".records.explode"))]
pub struct MaterializedViewSpec {
    /// Where events come from.
    pub source: Source,
    /// How an event becomes records: one per event, or one per element of an array.
    pub records: Records,
    /// How each record is assigned to a group (first matching rule wins).
    pub classify: Classify,
    /// What each row keeps per group.
    #[serde(default)]
    pub aggregate: Aggregate,
    /// Number of shards. Partition p of the topic belongs to shard p mod shards.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 256))]
    pub shards: i32,
    /// Projector pods per shard; each holds the shard's full state, so reads survive the loss of all but one.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 16))]
    pub replicas_per_shard: i32,
    /// Resources and scheduling of the projector pods. Changing them does not rebuild the view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projector: Option<ProjectorPod>,
    /// Where events that cannot be turned into records go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetter>,
    /// What happens to Kafka resources the view owns (dead-letter topic, consumer groups) when the view is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// How a changed spec goes live: at once when caught up, or after promotion; and how long the previous revision stays for a rollback. Changing it does not rebuild the view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

fn one() -> i32 {
    1
}

/// The Kafka topic a view reads.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.format) || self.format == 'json' || has(self.schemaRegistry)").message("formats avro and protobuf read each message's schema from a registry: set schemaRegistry.url").field_path(".schemaRegistry"))]
#[x_kube(validation = Rule::new("!has(self.keyFormat) || self.keyFormat == 'string' || self.keyFormat == 'json' || has(self.schemaRegistry)").message("key formats avro and protobuf read each key's schema from a registry: set schemaRegistry.url").field_path(".schemaRegistry"))]
pub struct Source {
    /// The Kafka cluster and topic.
    pub kafka: KafkaSource,
    /// Encoding of event values.
    #[serde(default)]
    pub format: EventFormat,
    /// Encoding of message keys, which name the entity with envelopes `upsert` and `debezium`: `string` (the default) compares them as bytes; `json`, `avro` and `protobuf` decode them first, so the same key written with another schema version, or other JSON spacing, names the same entity.
    #[serde(default, skip_serializing_if = "is_string_key")]
    pub key_format: KeyFormat,
    /// The schema registry that holds the schemas of `avro` and `protobuf` events (by the id each message carries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_registry: Option<SchemaRegistry>,
    /// What a message means: new records (`append`), the latest state of the entity its key names (`upsert`, a null value deletes it), or a Debezium change event (`debezium`).
    #[serde(default)]
    pub envelope: Envelope,
    /// Switch to a rebuilt revision even when retention already deleted the beginning of the topic (the rebuilt view lacks those events). Default false: the serving revision keeps serving and HistoryComplete=False says why. A compacted topic needs no consent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept_incomplete_history: bool,
    /// Where a new view starts reading: the earliest retained event, or only new ones.
    #[serde(default)]
    pub start_from: StartFrom,
    /// True when the topic's message key is the row key, so all records of a row are in one partition and a query asks one shard only.
    #[serde(default)]
    pub keyed_by_row_key: bool,
    /// Largest event accepted, in bytes; larger events are dead-lettered. Default 1 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 64, max = 16777216))]
    pub max_event_bytes: Option<i32>,
}

/// A Kafka cluster and topic.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.bootstrapServers) || has(self.configFrom)").message("set bootstrapServers, or configFrom with a bootstrap.servers property"))]
#[x_kube(validation = Rule::new("self.topic != '.' && self.topic != '..'").message("'.' and '..' are not topic names Kafka accepts").field_path(".topic"))]
pub struct KafkaSource {
    /// Comma-separated host:port list of brokers (every entry with its port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 1024),
        regex(pattern = r"^[^,\s]+:[0-9]{1,5}(,[^,\s]+:[0-9]{1,5})*$")
    )]
    pub bootstrap_servers: Option<String>,
    /// Kafka client properties (for SASL or TLS, and optionally bootstrap.servers) from a Secret or ConfigMap in the view's namespace; each key is a librdkafka property.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_from: Option<ConfigFrom>,
    /// The topic to read.
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    pub topic: String,
}

/// A Secret or ConfigMap holding Kafka client properties.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretName) != has(self.configMapName)").message("set exactly one of secretName and configMapName"))]
pub struct ConfigFrom {
    /// Name of a Secret in the view's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: Option<String>,
    /// Name of a ConfigMap in the view's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub config_map_name: Option<String>,
}

/// Encoding of event values.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum EventFormat {
    /// One JSON document per message value.
    #[default]
    Json,
    /// Avro in the Confluent wire format (magic byte 0, a 4-byte schema id, the body), each message decoded with the writer's schema the registry has for its id; paths address the record as its JSON form (a decimal exact, a union's null branch absent). Needs `schemaRegistry`.
    Avro,
    /// Protobuf in the Confluent wire format (magic byte 0, a 4-byte schema id, the message indexes, the message), decoded with the `.proto` schema (and its imports) the registry has for the id; paths address field names as in the `.proto` (a `oneof`'s unset members absent, enums by name). Needs `schemaRegistry`.
    Protobuf,
}

/// Encoding of message keys.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum KeyFormat {
    /// The key's bytes as they are.
    #[default]
    String,
    /// A JSON document, compared by content (member order and spacing do not matter).
    Json,
    /// Avro in the Confluent wire format (schemas from `schemaRegistry`).
    Avro,
    /// Protobuf in the Confluent wire format (schemas from `schemaRegistry`).
    Protobuf,
}

fn is_string_key(format: &KeyFormat) -> bool {
    *format == KeyFormat::String
}

/// A schema registry speaking the Confluent REST API (Confluent Schema Registry, Apicurio's `/apis/ccompat/v7`, Karapace, Redpanda).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRegistry {
    /// Base URL, e.g. `http://schema-registry.kafka:8081`; `GET {url}/schemas/ids/{id}` must answer.
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub url: String,
    /// A Secret (or ConfigMap, for a CA alone) in the view's namespace for a secured registry: keys `username` and `password` for HTTP basic auth, `ca.crt` for a PEM CA to trust for https. Never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_from: Option<ConfigFrom>,
}

/// What a message means for the view.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Envelope {
    /// Each message adds records; a record with the id of an earlier one replaces it. Nothing is ever removed.
    #[default]
    Append,
    /// The message key names a source entity (a compacted topic of latest states): its value's records replace every record that key produced before, and a null value (tombstone) removes them. A message without a key is a dead letter (`missing-key`).
    Upsert,
    /// Debezium change events (with or without the JSON converter's schema/payload wrapper), keyed by the row's primary key: `c`, `r` and `u` replace the key's records with those of `after`, `d` removes them, the tombstone after a delete changes nothing, `t` (truncate) is a dead letter. Paths address the row image (the table's columns).
    Debezium,
}

/// Where a new view starts reading.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum StartFrom {
    /// The earliest retained event: the view covers the topic's whole history.
    #[default]
    Earliest,
    /// Only events produced after the view first starts.
    Latest,
}

/// How an event becomes records. Paths are JSON pointers (RFC 6901): `/a/b`
/// addresses the current element when `explode` is set, otherwise the event;
/// a leading `^` (as in `^/orderId`) always addresses the whole event.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Records {
    /// Path of an array in the event; each element becomes one record. Without it, each event is one record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^(/([^~/]|~[01])*)+$"))]
    pub explode: Option<String>,
    /// Path of the row key (a string or number): the row a record belongs to.
    #[schemars(
        length(min = 1, max = 512),
        regex(pattern = r"^\^?(/([^~/]|~[01])*)+$")
    )]
    pub key: String,
    /// Path of the record's identity inside its row (string or number); a record with the same id replaces the earlier one. Default: the event's position (partition, offset, element index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 512),
        regex(pattern = r"^\^?(/([^~/]|~[01])*)+$")
    )]
    pub id: Option<String>,
    /// Fields each record keeps: field name to path.
    #[schemars(extend("maxProperties" = 64, "minProperties" = 1))]
    pub fields: BTreeMap<String, FieldPath>,
    /// Expected JSON type of fields (default: any). A value of another type makes the event a dead letter.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub types: BTreeMap<String, FieldType>,
    /// Fields that may be absent from an event (default: every field is required).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub optional: Vec<String>,
}

/// A JSON pointer, optionally prefixed with `^` to address the whole event.
pub type FieldPath = String;

/// Expected JSON type of a field.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum FieldType {
    /// Any JSON value.
    Any,
    /// A JSON number.
    Number,
    /// A JSON number, or a string holding a decimal number (such as "12.50"), read as that number.
    NumericString,
    /// A JSON string.
    String,
    /// true or false.
    Boolean,
}

/// Classification: the first rule whose comparators all hold assigns the record's group.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.rules.all(r, self.rules.exists_one(o, o.group == r.group))").message("group names must be unique across rules"))]
#[x_kube(validation = Rule::new("!has(self.otherwise) || self.rules.all(r, r.group != self.otherwise)").message("otherwise must differ from every rule's group"))]
pub struct Classify {
    /// Name of the record field (from records.fields) the rules test.
    #[schemars(length(min = 1, max = 63))]
    pub field: String,
    /// Ordered rules; the first that matches wins.
    #[schemars(length(min = 1, max = 64))]
    pub rules: Vec<ClassifyRule>,
    /// Group of records that match no rule. Without it, such records are dropped and counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub otherwise: Option<String>,
}

/// One classification rule: a group and at least one comparator, all of which
/// must hold. Numbers compare as numbers and strings as strings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.exists) || !has(self.missing)").message("exists and missing cannot be combined"))]
#[schemars(extend("minProperties" = 2))]
pub struct ClassifyRule {
    /// Group assigned to matching records: a DNS label (lowercase letters, digits, '-').
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub group: String,
    /// Matches values less than this number or string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "scalar_schema")]
    pub lt: Option<serde_json::Value>,
    /// Matches values less than or equal to this number or string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "scalar_schema")]
    pub lte: Option<serde_json::Value>,
    /// Matches values greater than this number or string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "scalar_schema")]
    pub gt: Option<serde_json::Value>,
    /// Matches values greater than or equal to this number or string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "scalar_schema")]
    pub gte: Option<serde_json::Value>,
    /// Matches values equal to this number, string or boolean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "scalar_schema")]
    pub eq: Option<serde_json::Value>,
    /// Matches values present and not equal to this number, string or boolean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "scalar_schema")]
    pub ne: Option<serde_json::Value>,
    /// Matches values equal to one of these.
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "scalar_list_schema")]
    pub in_: Option<Vec<serde_json::Value>>,
    /// Matches values present and equal to none of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "scalar_list_schema")]
    pub not_in: Option<Vec<serde_json::Value>>,
    /// true: matches when the field is present (not null); false: when it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// true: matches when the field is absent or null; false: when it is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<bool>,
}

/// What each row keeps per group.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Aggregate {
    /// Keep the number of records per group.
    #[serde(default = "yes")]
    pub count: bool,
    /// Numeric fields summed per group (exact decimal sums).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub sum: Vec<String>,
    /// The records listed per group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<ItemsSpec>,
}

impl Default for Aggregate {
    fn default() -> Self {
        Aggregate {
            count: true,
            sum: Vec::new(),
            items: None,
        }
    }
}

fn yes() -> bool {
    true
}

/// The records listed per group, and which are kept when there are more than the limit.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ItemsSpec {
    /// Most records listed per group; counts and sums always cover every record.
    #[schemars(range(min = 1, max = 100000))]
    pub limit: i32,
    /// Field that orders the records (default: the record id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub order_by: Option<String>,
    /// Which records are kept at the limit: the lowest or highest by orderBy.
    #[serde(default)]
    pub keep: Keep,
}

/// Which records a bounded list keeps.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Keep {
    /// The lowest values of orderBy (ascending list).
    #[default]
    Lowest,
    /// The highest values of orderBy (descending list).
    Highest,
}

/// Resources and scheduling of projector pods.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProjectorPod {
    /// Compute resources of the projector container (quantities; no request above its limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Affinity of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Priority class of the pods (the name of a PriorityClass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub priority_class_name: Option<String>,
    /// Size of each pod's state volume, above zero, such as 1Gi (default 1Gi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)(Ki|Mi|Gi|Ti|k|M|G|T)?$"
    ))]
    pub storage_size: Option<String>,
    /// Storage class of the state volumes (default: the cluster's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub storage_class_name: Option<String>,
}

/// The dead-letter topic.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Topic for events that cannot be turned into records (default: `<source topic>.<view name>.dlq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    pub topic: Option<String>,
}

/// What happens to Kafka resources the view owns when it is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Keep the dead-letter topic and consumer groups.
    #[default]
    Retain,
    /// Delete the dead-letter topic and consumer groups.
    Delete,
}
