//! The gateway's OpenAPI 3.0 document, generated from the typed contracts
//! (their JSON Schemas come from the Rust types) and the routes below. The
//! gateway serves it at `/openapi.json`; `openapi/gateway.json` is the
//! checked-in copy, kept equal by a test.

use schemars::JsonSchema;
use schemars::generate::{Contract, SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use super::dead_letters::DeadLetters;
use super::figures::ViewFigures;
use super::gateway::{RevisionComparison, ScanPage, StreamEvent, ViewList, ViewSummary};
use super::problem::ProblemBody;
use super::revisions::ViewRevisions;
use matview_engine::RowView;

fn schema_ref<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {
            "schema": {"$ref": "#/components/schemas/ProblemBody"}
        }}
    })
}

fn json_ok(description: &str, schema: Value, headers: bool) -> Value {
    let mut ok = json!({
        "description": description,
        "content": {"application/json": {"schema": schema}}
    });
    if headers {
        ok["headers"] = json!({
            "Matview-Revision": {"$ref": "#/components/headers/Revision"},
            "Matview-Positions": {"$ref": "#/components/headers/Positions"}
        });
    }
    ok
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": {"type": "string", "minLength": 1}})
}

fn read_params() -> Vec<Value> {
    vec![
        json!({"name": "after", "in": "query", "required": false, "style": "form", "explode": true,
               "description": "Read-your-writes: `topic:partition:offset` of an event the answer must include (repeatable).",
               "schema": {"type": "array", "items": {"type": "string", "pattern": "^[^:]+:[0-9]+:[0-9]+$"}}}),
        json!({"name": "waitMs", "in": "query", "required": false,
               "description": "Longest wait for `after` positions, in milliseconds (default 5000).",
               "schema": {"type": "integer", "minimum": 0, "maximum": 30000}}),
        json!({"name": "revision", "in": "query", "required": false,
               "description": "Read this revision: the serving one, or the one waiting for promotion (`status.rollout.pending.revision`). Without it, the serving revision.",
               "schema": {"type": "string", "minLength": 1, "maxLength": 63}}),
    ]
}

/// Answers every data route can give besides 200.
fn errors(extra: &[(&str, &str)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (status, description) in [
        ("400", "A bad parameter: what is wrong is in `detail`."),
        ("401", "No valid bearer token."),
        ("403", "The caller may not read this view."),
        ("404", "No such view, row, group or readable revision."),
        (
            "503",
            "The view has no ready projector for a shard, or authorization is unavailable.",
        ),
    ]
    .iter()
    .chain(extra)
    {
        out.insert(status.to_string(), problem(description));
    }
    out
}

fn operation(
    id: &str,
    summary: &str,
    params: Vec<Value>,
    mut responses: Map<String, Value>,
    ok: Value,
) -> Value {
    responses.insert("200".into(), ok);
    json!({"operationId": id, "summary": summary, "parameters": params, "responses": responses})
}

fn data_paths(g: &mut SchemaGenerator) -> Map<String, Value> {
    let view = "/v1/namespaces/{namespace}/views/{name}";
    let ns = path_param("namespace", "Namespace of the MaterializedView.");
    let name = path_param("name", "Name of the MaterializedView.");
    let timeout = [("504", "`after` positions were not applied within `waitMs`.")];
    let mut paths = Map::new();
    paths.insert(
        "/v1/views".into(),
        json!({"get": operation(
        "listViews", "The views the caller may read.", vec![], errors(&[]),
        json_ok("Views", schema_ref::<ViewList>(g), false))}),
    );
    paths.insert(
        view.into(),
        json!({"get": operation(
        "getView", "One view: groups, fields, serving revision, status.",
        vec![ns.clone(), name.clone()], errors(&[]),
        json_ok("The view", schema_ref::<ViewSummary>(g), false))}),
    );
    let mut row_params = vec![ns.clone(), name.clone(), path_param("key", "The row key.")];
    row_params.extend(read_params());
    paths.insert(
        format!("{view}/rows/{{key}}"),
        json!({"get": operation(
        "getRow", "One row, merged across shards.", row_params, errors(&timeout),
        json_ok("The row", schema_ref::<RowView>(g), true))}),
    );
    let mut scan_params = vec![
        ns.clone(),
        name.clone(),
        path_param("group", "A group of the view."),
    ];
    scan_params.push(json!({"name": "cursor", "in": "query", "required": false,
        "description": "The `next` of the previous page, unchanged.", "schema": {"type": "string"}}));
    scan_params.push(json!({"name": "limit", "in": "query", "required": false,
        "description": "Rows per page (default 100).",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}));
    scan_params.extend(read_params());
    paths.insert(
        format!("{view}/groups/{{group}}/rows"),
        json!({"get": operation(
        "scanGroup", "A group's rows in key order, merged across shards, paged.", scan_params,
        errors(&timeout), json_ok("A page", schema_ref::<ScanPage>(g), true))}),
    );
    paths.insert(
        format!("{view}/revisions/{{revision}}/comparison"),
        json!({"get": operation(
        "compareRevisions",
        "The revision waiting for promotion beside the serving one, from both revisions' stores: rows only in one, rows changed, records moved between groups, and each group's count and sums in each.",
        vec![ns.clone(), name.clone(), path_param("revision", "The pending revision (status.rollout.pending.revision).")],
        errors(&[]), json_ok("The comparison", schema_ref::<RevisionComparison>(g), false))}),
    );
    paths.extend(insight_paths(g, view, &ns, &name));
    let watch_params = vec![
        ns,
        name,
        json!({"name": "key", "in": "query", "required": false, "description": "Only this row.", "schema": {"type": "string"}}),
        json!({"name": "group", "in": "query", "required": false, "description": "Only rows with records in this group.", "schema": {"type": "string"}}),
        json!({"name": "Last-Event-ID", "in": "header", "required": false,
               "description": "Resume after this event id (a resume token).", "schema": {"type": "string"}}),
    ];
    let stream = schema_ref::<StreamEvent>(g);
    paths.insert(format!("{view}/watch"), json!({"get": operation(
        "watchView", "Live row changes as server-sent events `rows` and `reset` (data: StreamEvent).",
        watch_params, errors(&[]),
        json!({"description": "An event stream", "content": {"text/event-stream": {"schema": stream}}}))}));
    paths
}

/// How a view is doing, as the console shows it: its figures, its
/// revisions, its dead letters.
fn insight_paths(
    g: &mut SchemaGenerator,
    view: &str,
    ns: &Value,
    name: &Value,
) -> Map<String, Value> {
    let mut paths = Map::new();
    paths.insert(
        format!("{view}/figures"),
        json!({"get": operation(
        "viewFigures",
        "Every ready replica's recent figures, sampled every 2 s over the last 5 minutes: events and records committed, dead letters, lag, and the freshness (commit time minus the event's Kafka timestamp) p50 and p99; with rows and lag over the shards.",
        vec![ns.clone(), name.clone(), json!({"name": "revision", "in": "query", "required": false,
               "description": "This revision: the serving one (default) or the one waiting for promotion.",
               "schema": {"type": "string", "minLength": 1, "maxLength": 63}})],
        errors(&[]), json_ok("The figures", schema_ref::<ViewFigures>(g), false))}),
    );
    paths.insert(
        format!("{view}/revisions"),
        json!({"get": operation(
        "viewRevisions",
        "The serving revision and the one being built beside it: the percentage of the topic it applied, events per second over the last 10 s, the seconds until caught up at that pace, and what its spec changes from the serving one's (each spec as its projectors run it).",
        vec![ns.clone(), name.clone()],
        errors(&[]), json_ok("The revisions", schema_ref::<ViewRevisions>(g), false))}),
    );
    paths.insert(
        format!("{view}/dead-letters"),
        json!({"get": operation(
        "viewDeadLetters",
        "The latest letters of the view's dead-letter topic, newest first: each rejected event's reason, error, revision, source position, key and value (a value is cut at 1 KiB and given in base64 if it is not UTF-8), counted per reason. Needs `get` on `materializedviews/deadletters` (the matview-dead-letter-reader ClusterRole), not only the view reader's rights: letters are raw events.",
        vec![ns.clone(), name.clone(), json!({"name": "limit", "in": "query", "required": false,
               "description": "How many of the latest letters (default 50).",
               "schema": {"type": "integer", "minimum": 1, "maximum": 500}})],
        errors(&[]), json_ok("The latest letters", schema_ref::<DeadLetters>(g), false))}),
    );
    paths
}

fn operations_paths() -> Map<String, Value> {
    let status = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"type": "object"}}}});
    let mut paths = Map::new();
    paths.insert(
        "/healthz".into(),
        json!({"get": {"operationId": "health", "security": [],
        "responses": {"200": status("Alive")}}}),
    );
    paths.insert(
        "/readyz".into(),
        json!({"get": {"operationId": "ready", "security": [],
        "responses": {"200": status("Ready"), "503": problem("Still listing views and pods")}}}),
    );
    paths.insert(
        "/metrics".into(),
        json!({"get": {"operationId": "metrics", "security": [],
        "responses": {"200": {"description": "Prometheus metrics",
            "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}}}}),
    );
    paths.insert(
        "/openapi.json".into(),
        json!({"get": {"operationId": "openapi", "security": [],
        "responses": {"200": status("This document")}}}),
    );
    paths
}

/// The document.
pub fn gateway_document() -> Value {
    let settings = SchemaSettings::openapi3().with(|s| {
        s.contract = Contract::Serialize;
        s.meta_schema = None;
    });
    let mut generator = settings.into_generator();
    let mut paths = data_paths(&mut generator);
    paths.extend(operations_paths());
    generator.subschema_for::<ProblemBody>();
    let schemas = generator.take_definitions(true);
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "matview gateway",
            "version": crate::version::VERSION,
            "description": "One read API for every MaterializedView: rows and group scans merged across shards, live streams, read-your-writes. Errors are application/problem+json."
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                "description": "A Kubernetes token (TokenReview); reading needs get/list/watch on materializedviews/data."}},
            "headers": {
                "Revision": {"description": "The revision the answer comes from.", "schema": {"type": "string"}},
                "Positions": {"description": "Applied positions the answer reflects: `partition:offset` pairs (next offset to apply).", "schema": {"type": "string"}}
            }
        }
    })
}

/// The document as the checked-in file holds it.
pub fn gateway_document_text() -> String {
    let mut text = serde_json::to_string_pretty(&gateway_document()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_document_is_the_generated_one() {
        let checked_in = include_str!("../../../openapi/gateway.json");
        assert!(
            checked_in == gateway_document_text(),
            "openapi/gateway.json is stale: run `cargo run -- openapi > openapi/gateway.json`"
        );
    }

    #[test]
    fn every_reference_resolves() {
        let doc = gateway_document();
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"#/components/").skip(1) {
            let path: Vec<&str> = part
                .split('"')
                .next()
                .unwrap_or_default()
                .split('/')
                .collect();
            let mut at = &doc["components"];
            for p in &path {
                at = &at[*p];
            }
            assert!(!at.is_null(), "dangling $ref {path:?}");
        }
    }
}
