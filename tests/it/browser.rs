//! The page in a real browser: headless Chromium (Debian's package, driven by
//! puppeteer-core from npm) loads the page of a running `matview dev` (the
//! built-in shop example on its embedded broker, as a newcomer runs it), shows a
//! row, places an order through the form and sees the right group's count go
//! up in the DOM. The screenshot is kept in target/test-artifacts/console.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::projector::free_port;
use crate::support::{TestEnv, eventually, unique_name};

const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test]
async fn placing_an_order_on_the_page_moves_the_right_group() {
    let work = tempfile::tempdir().expect("tempdir");
    let address = format!("127.0.0.1:{}", free_port());
    let mut dev = Command::new(env!("CARGO_BIN_EXE_matview"))
        .args(["dev", "--demo-rate", "0", "--listen", &address])
        .arg("--data-dir")
        .arg(work.path().join("data"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.path().join("dev.log")).expect("log"))
        .spawn()
        .expect("matview dev");
    let url = format!("http://{address}/");
    eventually("the page", Duration::from_secs(60), || async {
        reqwest::get(&url)
            .await
            .ok()
            .filter(|r| r.status() == 200)
            .map(|_| ())
    })
    .await;

    let screenshot = crate::console::shots_dir().join("matview-page.png");
    let user = unique_name("web-user");
    let result = crate::console::browse(
        "place_order.mjs",
        &[url.clone(), user.clone(), screenshot.display().to_string()],
        &work.path().join("dev.log"),
    )
    .await;
    let _ = dev.kill();
    let _ = dev.wait();
    assert_eq!(
        result["after"].as_f64(),
        result["before"].as_f64().map(|b| b + 1.0),
        "{result}"
    );
    assert!(
        result["result"]
            .as_str()
            .unwrap_or_default()
            .contains("visible after"),
        "{result}"
    );
    assert!(screenshot.exists(), "a screenshot is kept");
    eprintln!("page: {}", result["result"]);
}

/// A table view (examples/customers-by-tier.yaml) in `matview dev`: the page
/// watches a country's row, and when the row's only customer is deleted (a
/// tombstone into the embedded broker) the page says it was removed, live.
#[tokio::test]
async fn the_page_shows_a_deleted_row_removed_live() {
    use tokio::io::AsyncBufReadExt;
    let env = TestEnv::get();
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "Chromium is missing: apt-get install chromium (.ci/run installs it)"
    );
    let work = tempfile::tempdir().expect("tempdir");
    let address = format!("127.0.0.1:{}", free_port());
    let broker = format!("127.0.0.1:{}", free_port());
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/customers-by-tier.yaml"
    );
    let mut dev = Command::new(env!("CARGO_BIN_EXE_matview"))
        .args([
            "dev",
            "-f",
            example,
            "--demo-rate",
            "0",
            "--listen",
            &address,
        ])
        .args(["--broker-listen", &broker])
        .arg("--data-dir")
        .arg(work.path().join("data"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.path().join("dev.log")).expect("log"))
        .spawn()
        .expect("matview dev");
    let url = format!("http://{address}/");
    eventually("the page", Duration::from_secs(60), || async {
        reqwest::get(&url)
            .await
            .ok()
            .filter(|r| r.status() == 200)
            .map(|_| ())
    })
    .await;
    // A country of its own, so the customer is the row's only record.
    let country = unique_name("C").to_uppercase();
    let customer = unique_name("c");
    let value = serde_json::json!({"customerId": customer, "name": "Ada",
        "country": country, "lifetimeValue": "1234.50"});
    crate::support::kafka::produce_raw_at(
        &broker,
        "customers",
        &[(Some(customer.clone()), Some(value.to_string().into_bytes()))],
    )
    .await;

    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/browser/watch_removal.mjs"
    );
    let mut browse = tokio::process::Command::new("node")
        .arg(script)
        .args([&url, &country])
        .arg(artifacts.join("matview-page-removed.png"))
        .env("PUPPETEER_CORE", &env.puppeteer_core)
        .env("CHROMIUM", CHROMIUM)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    let mut lines = tokio::io::BufReader::new(browse.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if line == "shown" {
            crate::support::kafka::produce_raw_at(
                &broker,
                "customers",
                &[(Some(customer.clone()), None)],
            )
            .await;
        }
        seen.push(line);
    }
    let out = browse.wait_with_output().await.expect("node");
    let _ = dev.kill();
    let _ = dev.wait();
    assert!(
        out.status.success(),
        "the browser test failed:\n{seen:?}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(work.path().join("dev.log")).unwrap_or_default()
    );
    let result: serde_json::Value =
        serde_json::from_str(seen.last().map_or("{}", String::as_str)).expect("JSON");
    assert!(
        result["said"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("Row {country} was removed")),
        "{result}"
    );
}
