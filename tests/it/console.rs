//! The console in headless Chromium on the default `matview dev` (the
//! built-in shop example, its demo orders at 5 a second): alive within
//! 10 s of loading without any input, a feed entry opens its row, an order
//! placed through the form shows in the feed and the row; nothing is
//! fetched from elsewhere and the content security policy refuses nothing.
//! Screenshots of the page and each panel go to target/test-artifacts/console
//! (or `MATVIEW_SCREENSHOTS`, which `make screenshots` points at the docs).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::dev::{Broker, start_dev};
use crate::support::{TestEnv, eventually, unique_name};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Where screenshots go.
pub(crate) fn shots_dir() -> PathBuf {
    let dir = std::env::var_os("MATVIEW_SCREENSHOTS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/console"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    dir
}

/// Runs `tests/browser/<script>` with `args` in node (puppeteer-core,
/// Chromium); its last line of output, as JSON.
pub(crate) async fn browse(script: &str, args: &[String], log: &std::path::Path) -> Value {
    let env = TestEnv::get();
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "Chromium is missing: apt-get install chromium (.ci/run installs it)"
    );
    let mut node = Command::new("node");
    node.arg(format!(
        "{}/tests/browser/{script}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .args(args)
    .env("PUPPETEER_CORE", &env.puppeteer_core)
    .env("CHROMIUM", CHROMIUM);
    let out = tokio::task::spawn_blocking(move || node.output())
        .await
        .expect("browser task")
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser test {script} failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(log).unwrap_or_default()
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}"))
}

#[tokio::test]
async fn the_console_is_alive_on_load_and_follows_a_row_and_an_order() {
    let work = tempfile::tempdir().expect("tempdir");
    let log = work.path().join("dev.log");
    let dev = start_dev(&Broker::embedded(), &[], &work.path().join("data"), &log);
    let figures = format!(
        "{}/v1/namespaces/shop/views/items-by-price/figures",
        dev.url
    );
    // The demo has been running a few intervals before the page loads, as
    // it has when a newcomer opens it after `make dev`.
    eventually(
        "demo orders in two closed intervals of figures",
        Duration::from_secs(120),
        || async {
            let f: Value = reqwest::get(&figures).await.ok()?.json().await.ok()?;
            let samples = f["replicas"][0]["figures"]["samples"].as_array()?;
            let closed = &samples[..samples.len().saturating_sub(1)];
            (closed
                .iter()
                .filter(|s| s["events"].as_u64() > Some(0))
                .count()
                >= 2
                && f["records"].as_u64() > Some(0))
            .then_some(())
        },
    )
    .await;

    let user = unique_name("console-user");
    let shots = shots_dir();
    let result = browse(
        "console.mjs",
        &[
            format!("{}/", dev.url),
            user.clone(),
            shots.display().to_string(),
        ],
        &log,
    )
    .await;
    assert_eq!(result["problems"], serde_json::json!([]), "{result}");
    let alive = result["aliveAfterMs"].as_u64().expect("aliveAfterMs");
    assert!(alive <= 10_000, "{result}");
    assert!(
        result["order"]
            .as_str()
            .unwrap_or_default()
            .contains("visible after"),
        "{result}"
    );
    for panel in [
        "", "-summary", "-charts", "-feed", "-row", "-group", "-views",
    ] {
        let shot = shots.join(format!("console{panel}.png"));
        assert!(
            std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1_000),
            "{} was not written",
            shot.display()
        );
    }
    eprintln!(
        "console alive {alive} ms after load; {}; facts {}",
        result["order"], result["facts"]
    );
}
