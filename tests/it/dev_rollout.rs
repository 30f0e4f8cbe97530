//! Rollouts in `matview dev`, through the page: a view's file changed to new
//! thresholds with `strategy: Manual` builds the new revision beside the
//! serving one; the page (headless Chromium) shows it caught up with its
//! comparison — checked against the orders — and its Promote button
//! switches reads to it.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::dev::{Broker, start_dev};
use crate::rollout_checks::moves_below_ten;
use crate::support::projector::{reference, reference_with, row_totals, shop_view_yaml};
use crate::support::{TestEnv, eventually, kafka, unique_name};

async fn get(url: &str) -> Option<(u16, Value)> {
    let r = reqwest::get(url).await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn the_pages_promote_button_switches_to_a_caught_up_revision() {
    let env = TestEnv::get();
    let work = tempfile::tempdir().expect("tempdir");
    let topic = kafka::create_topic(env, "dev-rollout", 2).await;
    let mut g = matview::workload::OrderGenerator::new(67, 30);
    let orders: Vec<Value> = (0..200).map(|_| g.next_order()).collect();
    crate::support::projector::produce_orders(env, &topic, &orders).await;
    let yaml = shop_view_yaml(env, "dev-rollout", &topic, &unique_name("dev-dlq"), 2)
        + "  rollout: {strategy: Manual}\n";
    let file = work.path().join("view.yaml");
    std::fs::write(&file, &yaml).expect("view written");
    let file_arg = file.display().to_string();
    let kafka = Broker::At(env.kafka_bootstrap.clone());
    let data = work.path().join("data");
    let mut dev = start_dev(
        &kafka,
        &["-f", &file_arg, "--demo-rate", "0"],
        &data,
        &work.path().join("dev.log"),
    );
    let views = format!("{}/v1/views", dev.url);
    let (old_rules, new_rules) = (reference(&orders), reference_with(&orders, 10.0));
    let (user, before) = old_rules.iter().next().expect("a user");
    let row = format!(
        "{}/v1/namespaces/tests/views/dev-rollout/rows/{user}",
        dev.url
    );
    eventually(
        "the first revision serving",
        Duration::from_secs(60),
        || async {
            let (status, body) = get(&row).await?;
            (status == 200 && row_totals(&body) == *before).then_some(())
        },
    )
    .await;
    let rev1 = get(&views).await.expect("views").1["views"][0]["revision"].clone();

    // New thresholds in the file: a revision builds and waits.
    let changed = yaml
        .replace("{group: cheap, lt: 5}", "{group: cheap, lt: 10}")
        .replace(
            "{group: affordable, gte: 5, lte: 50}",
            "{group: affordable, gte: 10, lte: 50}",
        );
    assert_ne!(changed, yaml);
    std::fs::write(&file, &changed).expect("view changed");
    let pending = eventually(
        "a caught-up pending revision",
        Duration::from_secs(90),
        || async {
            let (_, list) = get(&views).await?;
            let p = list["views"][0]["pending"].clone();
            (p["caughtUp"] == true && p["comparison"].is_object()).then_some(p)
        },
    )
    .await;
    let rev2 = pending["revision"].as_str().expect("revision").to_string();
    let (moved, _, users) = moves_below_ten(&orders);
    assert_eq!(pending["comparison"]["rowsChanged"], users.len() as u64);
    // Plain reads stay on the serving revision; named, the pending one answers.
    let (_, plain) = get(&row).await.expect("row");
    assert_eq!(row_totals(&plain), *before);
    let (status, named) = get(&format!("{row}?revision={rev2}")).await.expect("row");
    assert_eq!(status, 200, "{named}");
    assert_eq!(Some(&row_totals(&named)), new_rules.get(user));

    // The revisions: the new one fully applied, waiting, and exactly the
    // two thresholds this test changed.
    let revisions = format!(
        "{}/v1/namespaces/tests/views/dev-rollout/revisions",
        dev.url
    );
    let (status, r) = get(&revisions).await.expect("revisions");
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["serving"], rev1, "{r}");
    let building = &r["building"];
    assert_eq!(building["revision"], rev2.as_str(), "{r}");
    assert_eq!(building["percentApplied"], 100.0, "{r}");
    assert_eq!(building["caughtUp"], true, "{r}");
    assert_eq!(building["waitsForPromotion"], true, "{r}");
    assert_eq!(
        r["changes"],
        serde_json::json!([
            {"path": "/classify/rules/0/lt", "serving": 5, "building": 10},
            {"path": "/classify/rules/1/gte", "serving": 5, "building": 10},
        ]),
        "{r}"
    );

    let screenshot = crate::console::shots_dir().join("console-rollout.png");
    let page = crate::console::browse(
        "promote.mjs",
        &[
            format!("{}/", dev.url),
            rev2.clone(),
            screenshot.display().to_string(),
        ],
        &work.path().join("dev.log"),
    )
    .await;
    let rows: Vec<Vec<String>> = page["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t.as_array().into_iter().flatten())
        .map(|r| serde_json::from_value(r.clone()).unwrap_or_default())
        .collect();
    let want = vec!["affordable".to_string(), "cheap".into(), moved.to_string()];
    assert!(rows.contains(&want), "no row {want:?} in {page}");
    assert!(
        page["state"].as_str().is_some_and(|s| s.contains(&rev2)),
        "{page}"
    );
    assert_eq!(
        page["specChanges"],
        serde_json::json!([
            ["/classify/rules/0/lt", "5", "10"],
            ["/classify/rules/1/gte", "5", "10"]
        ]),
        "{page}"
    );
    assert!(
        page["build"].as_str().is_some_and(
            |s| s.contains("100.0 % of the topic applied") && s.contains("waits for promotion")
        ),
        "{page}"
    );
    assert!(
        page["serving"].as_str().is_some_and(|s| s.contains(&rev2)),
        "after the promotion the page says the new revision serves: {page}"
    );

    // Promoted: plain reads answer from the new revision.
    eventually(
        "reads from the promoted revision",
        Duration::from_secs(30),
        || async {
            let (_, list) = get(&views).await?;
            let serving = &list["views"][0]["revision"];
            let (status, body) = get(&row).await?;
            (serving == &Value::from(rev2.as_str())
                && status == 200
                && Some(&row_totals(&body)) == new_rules.get(user))
            .then_some(())
        },
    )
    .await;
    assert_ne!(rev1, Value::from(rev2.as_str()));
    let (status, _) = dev.terminate();
    assert!(status.success(), "{}", dev.log());
}

/// The rollouts page's worked example, as written, against a `matview dev`
/// of the shop example with demo orders (`GW` points at it): the pending
/// revision waits, its comparison and a row of it are read, the promotion
/// answers, and plain reads then come from it.
#[tokio::test]
async fn the_rollout_pages_worked_example_runs_as_written() {
    let doc = "docs/concepts/rollouts.md";
    let start = crate::docs::command_lines(doc, "## A worked example");
    assert_eq!(
        start.first().map(String::as_str),
        Some("cp examples/items-by-price.yaml view.yaml"),
        "{start:?}"
    );
    let steps = crate::docs::command_lines(
        doc,
        "<!-- worked example: run by tests/it/dev_rollout.rs -->",
    );
    assert!(steps.len() >= 6, "{steps:?}");
    let work = tempfile::tempdir().expect("tempdir");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/items-by-price.yaml");
    let file = work.path().join("view.yaml");
    std::fs::copy(example, &file).expect("copied");
    // The same file the script edits in its working directory.
    let file = file.display().to_string();
    let mut dev = start_dev(
        &Broker::embedded(),
        &["-f", &file, "--demo-rate", "5"],
        &work.path().join("data"),
        &work.path().join("dev.log"),
    );
    let views = format!("{}/v1/views", dev.url);
    let first = eventually("matview dev serving", Duration::from_secs(90), || async {
        let (status, list) = get(&views).await?;
        let revision = list["views"][0]["revision"].as_str()?.to_string();
        (status == 200).then_some(revision)
    })
    .await;
    // An order of the test's own with an item the change moves, so there is
    // a move whatever the demo orders held so far.
    let client = reqwest::Client::new();
    let order =
        serde_json::json!({"userId": "worked-example", "items": [{"name": "mug", "price": 7.5}]});
    let placed = client
        .post(format!("{}/dev/orders", dev.url))
        .json(&order)
        .send()
        .await
        .expect("order placed");
    assert_eq!(placed.status(), 200);
    let position = placed.json::<Value>().await.expect("JSON")["position"].clone();
    let position = position.as_str().expect("a position").to_string();
    // Read your write: the serving revision has it before the change.
    let row = format!(
        "{}/v1/namespaces/shop/views/items-by-price/rows/worked-example?after={position}&waitMs=30000",
        dev.url
    );
    let (status, body) = get(&row).await.expect("the row");
    assert_eq!(status, 200, "{body}");
    let script = format!("set -euo pipefail\n{}\n", steps.join("\n"));
    let (dir, url) = (work.path().to_path_buf(), dev.url.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args(["180", "bash", "-c", &script])
            .current_dir(dir)
            .env("GW", url)
            .output()
            .expect("bash")
    })
    .await
    .expect("script task");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "the worked example failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        dev.log()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let moved: Value = serde_json::from_str(lines[0]).expect("moves as JSON");
    assert_eq!(moved[0]["from"], "affordable", "{stdout}");
    assert_eq!(moved[0]["to"], "cheap", "{stdout}");
    let promoted: Value = serde_json::from_str(lines.last().expect("a line")).expect("JSON");
    let rev2 = promoted["serving"].as_str().expect("serving").to_string();
    assert_ne!(rev2, first);
    eventually(
        "reads from the promoted revision",
        Duration::from_secs(30),
        || async {
            let (_, list) = get(&views).await?;
            let view = &list["views"][0];
            (view["revision"] == rev2.as_str() && view["pending"].is_null()).then_some(())
        },
    )
    .await;
    let (status, _) = dev.terminate();
    assert!(status.success(), "{}", dev.log());
}
