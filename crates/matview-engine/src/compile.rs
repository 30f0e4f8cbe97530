//! Compiling a spec into the engine's form, checking what the API server's
//! schema cannot: each problem names the field and says what to fix.

use std::collections::HashSet;
use std::fmt;

use super::pointer::FieldPointer;
pub use super::rules::{CompiledClassify, CompiledRule, GroupId, Predicate, Scalar, ValueKind};
use super::{explode_check, quantity, source};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use matview_crd::{Envelope, EventFormat, FieldType, Keep, KeyFormat, MaterializedViewSpec};

/// Default largest event: 1 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// Field names that the row output uses itself.
const RESERVED_FIELD_NAMES: [&str; 1] = ["id"];

/// A spec compiled for the hot path.
#[derive(Debug, Clone)]
pub struct CompiledView {
    pub explode: Option<FieldPointer>,
    pub key: FieldPointer,
    pub id: Option<FieldPointer>,
    /// Fields in name order.
    pub fields: Vec<CompiledField>,
    pub classify: CompiledClassify,
    /// Rule groups in rule order, then the `otherwise` group.
    pub groups: Vec<String>,
    pub aggregate: CompiledAggregate,
    pub max_event_bytes: usize,
    pub envelope: Envelope,
}

#[derive(Debug, Clone)]
pub struct CompiledField {
    pub name: String,
    pub pointer: FieldPointer,
    pub kind: ValueKind,
    pub optional: bool,
}

#[derive(Debug, Clone)]
pub struct CompiledAggregate {
    pub count: bool,
    /// Indexes into [`CompiledView::fields`] of the summed fields.
    pub sums: Vec<usize>,
    pub items: Option<CompiledItems>,
}

#[derive(Debug, Clone)]
pub struct CompiledItems {
    pub limit: usize,
    /// Index into [`CompiledView::fields`]; `None` orders by record id.
    pub order_by: Option<usize>,
    pub keep: Keep,
}

/// One thing wrong with a spec: where, and what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecIssue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for SpecIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid spec: {}", .issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct CompileError {
    pub issues: Vec<SpecIssue>,
}

struct Issues(Vec<SpecIssue>);

impl Issues {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(SpecIssue {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Kafka's rules for the topics and brokers a spec names.
fn check_kafka(spec: &MaterializedViewSpec, issues: &mut Issues) {
    let kafka = &spec.source.kafka;
    if let Some(problem) = source::topic_name_problem(&kafka.topic) {
        issues.add("spec.source.kafka.topic", problem);
    }
    if let Some(problem) = kafka
        .bootstrap_servers
        .as_deref()
        .and_then(source::bootstrap_problem)
    {
        issues.add("spec.source.kafka.bootstrapServers", problem);
    }
    let binary_key = matches!(
        spec.source.key_format,
        KeyFormat::Avro | KeyFormat::Protobuf
    );
    if binary_key && spec.source.schema_registry.is_none() {
        issues.add(
            "spec.source.schemaRegistry",
            "key formats avro and protobuf read each key's schema from a registry: set schemaRegistry.url",
        );
    }
    if spec.source.format != EventFormat::Json && spec.source.schema_registry.is_none() {
        issues.add(
            "spec.source.schemaRegistry",
            "formats avro and protobuf read each message's schema from a registry: set schemaRegistry.url",
        );
    }
    let Some(dlq) = spec.dead_letter.as_ref().and_then(|d| d.topic.as_ref()) else {
        return;
    };
    if let Some(problem) = source::topic_name_problem(dlq) {
        issues.add("spec.deadLetter.topic", problem);
    } else if *dlq == kafka.topic {
        issues.add(
            "spec.deadLetter.topic",
            "must differ from the source topic, or bad events would be read again",
        );
    } else if source::topics_collide(dlq, &kafka.topic) {
        issues.add(
            "spec.deadLetter.topic",
            format!(
                "collides with the source topic {:?}: Kafka treats '.' and '_' alike; pick another name",
                kafka.topic
            ),
        );
    }
}

/// What the API server would refuse in the projector pods' resources: a
/// value that is not a quantity, or a request above its limit.
fn check_resources(spec: &MaterializedViewSpec, issues: &mut Issues) {
    let Some(resources) = spec.projector.as_ref().and_then(|p| p.resources.as_ref()) else {
        return;
    };
    let requests = quantities("requests", resources.requests.as_ref(), issues);
    let limits = quantities("limits", resources.limits.as_ref(), issues);
    for (name, (request, request_text)) in &requests {
        if let Some((limit, limit_text)) = limits.get(name)
            && request > limit
        {
            issues.add(
                format!("spec.projector.resources.requests[{name}]"),
                format!("{request_text} is above the limit {limit_text}; lower the request or raise the limit"),
            );
        }
    }
}

/// The values of one resource list, each with its text; reports the ones
/// that are not quantities.
fn quantities(
    kind: &str,
    list: Option<&std::collections::BTreeMap<String, Quantity>>,
    issues: &mut Issues,
) -> std::collections::BTreeMap<String, (super::Decimal, String)> {
    let mut values = std::collections::BTreeMap::new();
    for (name, Quantity(text)) in list.into_iter().flatten() {
        match quantity::parse_quantity(text) {
            Some(v) => {
                values.insert(name.clone(), (v, text.clone()));
            }
            None => issues.add(
                format!("spec.projector.resources.{kind}[{name}]"),
                format!("{text:?} is not a quantity; write it like 500m, 256Mi or 2"),
            ),
        }
    }
    values
}

/// Key, id and field paths that the explode target makes unsatisfiable.
fn check_explode_paths(
    explode: &FieldPointer,
    [key, id]: [Option<&FieldPointer>; 2],
    fields: &[CompiledField],
    issues: &mut Issues,
) {
    for (path, pointer) in [("spec.records.key", key), ("spec.records.id", id)] {
        if let Some(problem) = pointer.and_then(|p| explode_check::contradiction(explode, p, None))
        {
            issues.add(path, problem);
        }
    }
    for f in fields {
        if let Some(problem) = explode_check::contradiction(explode, &f.pointer, Some(f.kind)) {
            issues.add(format!("spec.records.fields.{}", f.name), problem);
        }
    }
}

/// Compiles a spec, or returns every problem in it.
pub fn compile(spec: &MaterializedViewSpec) -> Result<CompiledView, CompileError> {
    let mut issues = Issues(Vec::new());
    let records = &spec.records;
    let explode = records
        .explode
        .as_deref()
        .and_then(|t| pointer("spec.records.explode", t, &mut issues));
    if let Some(e) = &explode
        && e.scope == super::pointer::Scope::Event
    {
        issues.add(
            "spec.records.explode",
            "explode is always a path in the event; remove the '^'",
        );
    }
    let key = pointer("spec.records.key", &records.key, &mut issues);
    let id = records
        .id
        .as_deref()
        .and_then(|t| pointer("spec.records.id", t, &mut issues));
    let mut fields = compile_fields(records, &mut issues);
    if let Some(explode) = &explode {
        check_explode_paths(explode, [key.as_ref(), id.as_ref()], &fields, &mut issues);
    }
    let (groups, otherwise) = compile_groups(&spec.classify, &mut issues);
    let classify_field = field_index(&fields, &spec.classify.field);
    if classify_field.is_none() {
        issues.add(
            "spec.classify.field",
            format!(
                "{:?} is not a field; declare it in spec.records.fields",
                spec.classify.field
            ),
        );
    }
    let rules = compile_rules(&spec.classify, classify_field, &mut fields, &mut issues);
    let sums = compile_sums(&spec.aggregate.sum, &mut fields, &mut issues);
    let items = spec
        .aggregate
        .items
        .as_ref()
        .map(|items| compile_items(items, &fields, &mut issues));
    check_kafka(spec, &mut issues);
    check_resources(spec, &mut issues);
    let envelope = spec.source.envelope;
    let paths = [
        ("spec.records.explode".to_string(), explode.as_ref()),
        ("spec.records.key".to_string(), key.as_ref()),
        ("spec.records.id".to_string(), id.as_ref()),
    ]
    .into_iter()
    .chain(
        fields
            .iter()
            .map(|f| (format!("spec.records.fields.{}", f.name), Some(&f.pointer))),
    );
    for (path, pointer) in paths {
        if let Some(problem) = pointer.and_then(|p| super::envelope::path_problem(envelope, p)) {
            issues.add(path, problem);
        }
    }

    match (key, classify_field) {
        (Some(key), Some(field)) if issues.0.is_empty() => Ok(CompiledView {
            explode,
            key,
            id,
            fields,
            classify: CompiledClassify {
                field,
                rules,
                otherwise,
            },
            groups,
            aggregate: CompiledAggregate {
                count: spec.aggregate.count,
                sums,
                items,
            },
            max_event_bytes: spec
                .source
                .max_event_bytes
                .and_then(|b| usize::try_from(b).ok())
                .unwrap_or(DEFAULT_MAX_EVENT_BYTES),
            envelope,
        }),
        _ => Err(CompileError { issues: issues.0 }),
    }
}

fn pointer(path: &str, text: &str, issues: &mut Issues) -> Option<FieldPointer> {
    match FieldPointer::parse(text) {
        Ok(p) => Some(p),
        Err(e) => {
            issues.add(path, format!("path {text:?} {e}"));
            None
        }
    }
}

fn compile_items(
    items: &matview_crd::ItemsSpec,
    fields: &[CompiledField],
    issues: &mut Issues,
) -> CompiledItems {
    CompiledItems {
        limit: usize::try_from(items.limit).unwrap_or(1).max(1),
        order_by: items.order_by.as_deref().and_then(|name| {
            let found = field_index(fields, name);
            if found.is_none() {
                issues.add(
                    "spec.aggregate.items.orderBy",
                    format!("{name:?} is not a field; declare it in spec.records.fields"),
                );
            }
            found
        }),
        keep: items.keep,
    }
}

/// The declared fields, in name order, with their types.
fn compile_fields(records: &matview_crd::Records, issues: &mut Issues) -> Vec<CompiledField> {
    for name in records.types.keys().chain(records.optional.iter()) {
        if !records.fields.contains_key(name) {
            issues.add(
                format!("spec.records.types/optional[{name}]"),
                format!("{name:?} is not a field; declare it in spec.records.fields"),
            );
        }
    }
    let optional: HashSet<&str> = records.optional.iter().map(String::as_str).collect();
    let mut fields = Vec::with_capacity(records.fields.len());
    for (name, text) in &records.fields {
        let path = format!("spec.records.fields.{name}");
        if RESERVED_FIELD_NAMES.contains(&name.as_str()) {
            issues.add(
                &path,
                format!("{name:?} is reserved for the record id; rename the field"),
            );
        }
        if name.is_empty() {
            issues.add(&path, "field names must not be empty");
        }
        let Some(pointer) = pointer(&path, text, issues) else {
            continue;
        };
        let kind = match records.types.get(name) {
            None | Some(FieldType::Any) => ValueKind::Any,
            Some(FieldType::Number) => ValueKind::Number,
            Some(FieldType::NumericString) => ValueKind::NumericString,
            Some(FieldType::String) => ValueKind::String,
            Some(FieldType::Boolean) => ValueKind::Boolean,
        };
        fields.push(CompiledField {
            name: name.clone(),
            pointer,
            kind,
            optional: optional.contains(name.as_str()),
        });
    }
    fields
}

/// Groups: rule groups in order, then `otherwise` (its index returned).
fn compile_groups(
    classify: &matview_crd::Classify,
    issues: &mut Issues,
) -> (Vec<String>, Option<GroupId>) {
    let mut groups: Vec<String> = Vec::new();
    for (i, rule) in classify.rules.iter().enumerate() {
        if groups.contains(&rule.group) {
            issues.add(
                format!("spec.classify.rules[{i}].group"),
                format!("group {:?} is used by an earlier rule; group names must be unique (use `in` to match several values)", rule.group),
            );
        }
        groups.push(rule.group.clone());
    }
    let otherwise = classify.otherwise.as_ref().map(|g| {
        if groups.contains(g) {
            issues.add(
                "spec.classify.otherwise",
                format!("{g:?} is also a rule's group; pick a group of its own"),
            );
        }
        groups.push(g.clone());
        (groups.len() - 1) as GroupId
    });
    (groups, otherwise)
}

/// The rules, and the classify field's type checked against (or inferred
/// from) the rules' constants.
fn compile_rules(
    classify: &matview_crd::Classify,
    classify_field: Option<usize>,
    fields: &mut [CompiledField],
    issues: &mut Issues,
) -> Vec<CompiledRule> {
    let mut rules = Vec::with_capacity(classify.rules.len());
    let mut constant_kinds: Vec<(String, ValueKind)> = Vec::new();
    for (i, rule) in classify.rules.iter().enumerate() {
        let predicates = super::rules::compile_rule(
            rule,
            &format!("spec.classify.rules[{i}]"),
            &mut |path, msg| issues.add(path, msg),
            &mut constant_kinds,
        );
        rules.push(CompiledRule {
            group: i as GroupId,
            predicates,
        });
    }
    let Some(ci) = classify_field else {
        return rules;
    };
    let declared = fields[ci].kind;
    let mut inferred: Option<ValueKind> = None;
    for (path, kind) in &constant_kinds {
        let compatible = match declared {
            ValueKind::Any => true,
            ValueKind::NumericString => *kind == ValueKind::Number,
            d => d == *kind,
        };
        if !compatible {
            issues.add(path, format!(
                "compares field {:?}, declared as {}, with {}; use constants of the field's type",
                classify.field, declared.describe(), kind.describe()));
        }
        match inferred {
            None => inferred = Some(*kind),
            Some(k) if k != *kind && declared == ValueKind::Any => {
                issues.add(path, format!(
                    "rules compare field {:?} with both {} and {}; use one type, or declare it in spec.records.types",
                    classify.field, k.describe(), kind.describe()));
            }
            _ => {}
        }
    }
    if declared == ValueKind::Any
        && let Some(k) = inferred
    {
        fields[ci].kind = k;
    }
    rules
}

/// Indexes of the summed fields; an untyped summed field becomes a number.
fn compile_sums(names: &[String], fields: &mut [CompiledField], issues: &mut Issues) -> Vec<usize> {
    let mut sums = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let path = format!("spec.aggregate.sum[{i}]");
        match field_index(fields, name) {
            None => issues.add(
                path,
                format!("{name:?} is not a field; declare it in spec.records.fields"),
            ),
            Some(fi) if sums.contains(&fi) => issues.add(path, format!("{name:?} is listed twice")),
            Some(fi) => match fields[fi].kind {
                ValueKind::Any => {
                    fields[fi].kind = ValueKind::Number;
                    sums.push(fi);
                }
                k if k.is_numeric() => sums.push(fi),
                k => issues.add(
                    path,
                    format!(
                        "{name:?} is declared as {}; only numbers can be summed",
                        k.describe()
                    ),
                ),
            },
        }
    }
    sums
}

fn field_index(fields: &[CompiledField], name: &str) -> Option<usize> {
    fields.iter().position(|f| f.name == name)
}
