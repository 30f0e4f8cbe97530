//! An upsert changelog through the gateway (`matview dev` on the test
//! broker, two shards): a deleted row is 404 and gone from scans, and the
//! three kinds of stream — the whole view, one key, one group — announce
//! removals, so a mirror kept from each stream alone ends equal to the
//! expected view, computed from the changelog without the engine.

use std::time::Duration;

use serde_json::Value;

use crate::dev::{Broker, Dev, start_dev};
use crate::support::changelog::{
    Change, changelog, debezium_messages, expected, expected_rows, upsert_messages, users,
};
use crate::support::gateway::{EventReceiver, open_stream_at};
use crate::support::projector::{Reference, row_totals};
use crate::support::{TestEnv, eventually, kafka, unique_name};

const GROUPS: [&str; 3] = ["cheap", "affordable", "expensive"];

/// The table a test reads: an upsert topic, or Debezium's change events.
#[derive(Debug, Clone, Copy)]
enum Table {
    Upsert,
    Debezium { schemas: bool },
}

impl Table {
    /// The expected view of these changes, computed without the engine.
    fn expected(self, changes: &[Change]) -> Reference {
        match self {
            Table::Upsert => expected(changes),
            Table::Debezium { .. } => expected_rows(changes),
        }
    }

    /// The messages of these changes.
    fn messages(self, changes: &[Change]) -> Vec<(Option<String>, Option<Vec<u8>>)> {
        let messages = match self {
            Table::Upsert => upsert_messages(changes),
            Table::Debezium { schemas } => debezium_messages(changes, schemas),
        };
        messages.into_iter().map(|(k, v)| (Some(k), v)).collect()
    }
}

fn view_yaml(env: &TestEnv, name: &str, topic: &str, table: Table) -> String {
    let records = match table {
        Table::Upsert => {
            "envelope: upsert\n  records:\n    explode: /items\n    key: ^/userId\n    id: /itemId\n    fields: {price: /price}"
        }
        Table::Debezium { .. } => {
            "envelope: debezium\n  records:\n    key: /customer_id\n    id: /id\n    fields: {price: /total}\n    types: {price: numericString}"
        }
    };
    format!(
        r#"apiVersion: matview.dev/v1alpha1
kind: MaterializedView
metadata: {{name: {name}, namespace: tests}}
spec:
  source:
    kafka: {{bootstrapServers: "{bootstrap}", topic: {topic}}}
    {records}
  classify:
    field: price
    rules:
      - {{group: cheap, lt: 5}}
      - {{group: affordable, gte: 5, lte: 50}}
      - {{group: expensive, gt: 50}}
  aggregate: {{count: true, sum: [price], items: {{limit: 5}}}}
  shards: 2
  deadLetter: {{topic: {dlq}}}
"#,
        bootstrap = env.kafka_bootstrap,
        dlq = unique_name("tables-streams-dlq"),
    )
}

/// A view kept from one stream's events only: rows replace, `removed` removes.
#[derive(Default)]
struct Mirror {
    rows: Reference,
    /// Keys announced as removed, ever.
    announced: Vec<String>,
}

impl Mirror {
    /// Applies what arrived so far; false once the stream ended.
    fn drain(&mut self, events: &mut EventReceiver) -> bool {
        loop {
            match events.try_recv() {
                Ok(event) => self.apply(&event.event, &event.data),
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => return true,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn apply(&mut self, kind: &str, data: &Value) {
        assert_eq!(kind, "rows", "no reset expected here: {data}");
        for row in data["rows"].as_array().into_iter().flatten() {
            let key = row["key"].as_str().expect("key").to_string();
            self.rows.insert(key, row_totals(row));
        }
        for key in data["removed"].as_array().into_iter().flatten() {
            let key = key.as_str().expect("a removed key").to_string();
            self.rows.remove(&key);
            self.announced.push(key);
        }
    }
}

/// Waits until the mirror kept from `events` equals `want`.
async fn converges(what: &str, events: &mut EventReceiver, mirror: &mut Mirror, want: &Reference) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(mirror.drain(events), "{what}: the stream ended");
        if mirror.rows == *want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: the mirror never matched\nmirror: {:?}\nwanted: {want:?}",
            mirror.rows
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get(url: &str) -> Option<(u16, Value)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

/// `matview dev` serving the view in `view` on `broker`, once it answers;
/// the process and the view's URL.
async fn serve(
    broker: &Broker,
    view: &std::path::Path,
    name: &str,
    work: &std::path::Path,
) -> (Dev, String) {
    let view_arg = view.display().to_string();
    let dev = start_dev(
        broker,
        &["-f", &view_arg, "--demo-rate", "0"],
        &work.join("data"),
        &work.join("dev.log"),
    );
    let base = format!("{}/v1/namespaces/tests/views/{name}", dev.url);
    eventually("the view is served", Duration::from_secs(60), || async {
        let (status, _) = get(&format!("{base}/groups/cheap/rows?limit=1")).await?;
        (status == 200).then_some(())
    })
    .await;
    (dev, base)
}

#[tokio::test]
async fn upsert_deleted_rows_are_404_gone_from_scans_and_announced_on_every_stream() {
    removals_through_the_gateway(Table::Upsert).await;
}

#[tokio::test]
async fn debezium_deleted_rows_are_404_gone_from_scans_and_announced_on_every_stream() {
    removals_through_the_gateway(Table::Debezium { schemas: false }).await;
}

#[tokio::test]
async fn debezium_with_schemas_deleted_rows_are_404_gone_from_scans_and_announced() {
    removals_through_the_gateway(Table::Debezium { schemas: true }).await;
}

async fn removals_through_the_gateway(table: Table) {
    let env = TestEnv::with_kafka();
    let work = tempfile::tempdir().expect("tempdir");
    let topic = kafka::create_topic(env, "orders-table", 4).await;
    let name = unique_name("streams");
    let view = work.path().join("view.yaml");
    std::fs::write(&view, view_yaml(env, &name, &topic, table)).expect("write view");
    let broker = Broker::At(env.kafka_bootstrap.clone());
    let (dev, base) = serve(&broker, &view, &name, work.path()).await;

    let changes = changelog(0x5717, 120, 90, 1500);
    let (first, rest) = changes.split_at(changes.len() / 2);
    let (halfway, want) = (table.expected(first), table.expected(&changes));
    let everyone = users(&changes);
    let in_cheap = |view: &Reference| -> Reference {
        view.iter()
            .filter(|(_, g)| g.contains_key("cheap"))
            .map(|(k, g)| (k.clone(), g.clone()))
            .collect()
    };
    // Rows there halfway and gone at the end (or gone from cheap): each
    // must be announced, since a reader saw it.
    let gone: Vec<&String> = halfway.keys().filter(|u| !want.contains_key(*u)).collect();
    let left_cheap: Vec<&String> = in_cheap(&halfway)
        .into_keys()
        .filter(|u| !in_cheap(&want).contains_key(u))
        .map(|u| everyone.iter().find(|e| **e == u).expect("a user"))
        .collect();
    assert!(
        !gone.is_empty() && !left_cheap.is_empty(),
        "the seed removes rows ({table:?})"
    );
    let path = format!("/v1/namespaces/tests/views/{name}/watch");
    let mut all = open_stream_at(&dev.url, &path, None, None).await;
    let mut one = open_stream_at(&dev.url, &format!("{path}?key={}", gone[0]), None, None).await;
    let mut cheap = open_stream_at(&dev.url, &format!("{path}?group=cheap"), None, None).await;
    kafka::produce_raw(env, &topic, &table.messages(first)).await;
    let mut whole = Mirror::default();
    converges(
        "the whole-view stream, halfway",
        &mut all,
        &mut whole,
        &halfway,
    )
    .await;
    kafka::produce_raw(env, &topic, &table.messages(rest)).await;

    for user in &everyone {
        let url = format!("{base}/rows/{user}");
        eventually(&format!("row {user}"), Duration::from_secs(90), || async {
            let (status, row) = get(&url).await?;
            match want.get(user) {
                Some(groups) => (status == 200 && row_totals(&row) == *groups).then_some(()),
                None => (status == 404).then_some(()),
            }
        })
        .await;
    }
    for group in GROUPS {
        let mut scanned = Reference::new();
        let mut after = String::new();
        loop {
            let (status, page) = get(&format!("{base}/groups/{group}/rows?limit=6{after}"))
                .await
                .expect("scan answers");
            assert_eq!(status, 200, "{page}");
            for row in page["rows"].as_array().expect("rows") {
                scanned.insert(row["key"].as_str().expect("key").into(), row_totals(row));
            }
            match page["next"].as_str() {
                Some(next) => after = format!("&cursor={next}"),
                None => break,
            }
        }
        let in_group: Reference = want
            .iter()
            .filter(|(_, g)| g.contains_key(group))
            .map(|(k, g)| (k.clone(), g.clone()))
            .collect();
        assert_eq!(scanned, in_group, "scan of {group}: deleted rows are gone");
    }

    converges("the whole-view stream", &mut all, &mut whole, &want).await;
    for user in &gone {
        assert!(
            whole.announced.contains(user),
            "the whole-view stream announced {user} removed"
        );
    }
    let mut key = Mirror::default();
    converges("the key stream", &mut one, &mut key, &Reference::new()).await;
    assert!(
        key.announced.contains(gone[0]),
        "the key stream announced {} removed",
        gone[0]
    );
    let mut group = Mirror::default();
    converges("the group stream", &mut cheap, &mut group, &in_cheap(&want)).await;
    for user in &left_cheap {
        assert!(
            group.announced.contains(user),
            "the group stream announced {user} left cheap"
        );
    }
    drop(dev);
}

/// The embedded broker serves keys and tombstones exactly: a changelog
/// produced to `matview dev`'s own broker ends in the expected view.
#[tokio::test]
async fn matview_dev_on_its_embedded_broker_applies_updates_and_tombstones() {
    let env = TestEnv::with_kafka();
    let work = tempfile::tempdir().expect("tempdir");
    let topic = unique_name("dev-table");
    let name = unique_name("dev-table");
    let view = work.path().join("view.yaml");
    std::fs::write(&view, view_yaml(env, &name, &topic, Table::Upsert)).expect("write view");
    let broker = Broker::embedded();
    let Broker::Embedded(servers) = &broker else {
        unreachable!("an embedded broker")
    };
    let servers = servers.clone();
    let (dev, base) = serve(&broker, &view, &name, work.path()).await;
    let changes = changelog(0xd0e5, 60, 30, 800);
    let want = expected(&changes);
    let messages: Vec<_> = upsert_messages(&changes)
        .into_iter()
        .map(|(k, v)| (Some(k), v))
        .collect();
    kafka::produce_raw_at(&servers, &topic, &messages).await;
    for user in users(&changes) {
        let url = format!("{base}/rows/{user}");
        eventually(&format!("row {user}"), Duration::from_secs(90), || async {
            let (status, row) = get(&url).await?;
            match want.get(&user) {
                Some(groups) => (status == 200 && row_totals(&row) == *groups).then_some(()),
                None => (status == 404).then_some(()),
            }
        })
        .await;
    }
    assert!(
        users(&changes).iter().any(|u| !want.contains_key(u)),
        "the changelog removed some row: {}",
        dev.log()
    );
}

/// Both table examples run in `matview dev` as written, fed by the demo
/// changelog of their envelope.
#[tokio::test]
async fn matview_dev_runs_the_table_examples_with_their_demo_changelogs() {
    let _env = TestEnv::with_kafka();
    let lines = crate::docs::command_lines(
        "README.md",
        "<!-- tables: run by tests/it/tables_streams.rs -->",
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        // `cargo run --release -- dev -f FILE`: the same arguments to this build.
        let args: Vec<&str> = line
            .split_whitespace()
            .skip_while(|a| *a != "dev")
            .skip(1)
            .collect();
        assert_eq!(args.first(), Some(&"-f"), "{line}");
        let example = args[1]
            .trim_start_matches("examples/")
            .trim_end_matches(".yaml");
        let namespace_view = format!("shop/views/{example}");
        let work = tempfile::tempdir().expect("tempdir");
        let file = format!("{}/{}", env!("CARGO_MANIFEST_DIR"), args[1]);
        let dev = start_dev(
            &Broker::embedded(),
            &["-f", &file, "--demo-rate", "200"],
            &work.path().join("data"),
            &work.path().join("dev.log"),
        );
        let view = format!("{}/v1/namespaces/{namespace_view}", dev.url);
        eventually(
            &format!("{example} fills"),
            Duration::from_secs(90),
            || async {
                let mut rows = 0;
                for group in [
                    "bronze",
                    "silver",
                    "gold",
                    "cheap",
                    "affordable",
                    "expensive",
                ] {
                    if let Some((200, page)) =
                        get(&format!("{view}/groups/{group}/rows?limit=50")).await
                    {
                        rows += page["rows"].as_array().map_or(0, Vec::len);
                    }
                }
                (rows >= 3).then_some(())
            },
        )
        .await;
        // The shop's order form has no place on a table's topic.
        let form = reqwest::Client::new()
            .post(format!("{}/dev/orders", dev.url))
            .json(&serde_json::json!({"userId": "u-1", "items": [{"name": "pen", "price": 1}]}))
            .send()
            .await
            .expect("answers");
        assert_eq!(form.status().as_u16(), 404, "no order form for {example}");
    }
}
