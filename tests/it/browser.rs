//! The page in a real browser: headless Chromium (Debian's package, driven by
//! puppeteer-core from npm) loads the page of a running `matview dev` (the
//! built-in shop example on its embedded broker, as a newcomer runs it), shows a
//! row, places an order through the form and sees the right group's count go
//! up in the DOM. The screenshot is kept in target/test-artifacts/.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::projector::free_port;
use crate::support::{TestEnv, eventually, unique_name};

const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test]
async fn placing_an_order_on_the_page_moves_the_right_group() {
    let env = TestEnv::get();
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "Chromium is missing: apt-get install chromium (.ci/run installs it)"
    );
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

    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let screenshot = artifacts.join("matview-page.png");
    let user = unique_name("web-user");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/place_order.mjs");
    let mut browse = Command::new("node");
    browse
        .arg(script)
        .args([&url, &user])
        .arg(&screenshot)
        .env("PUPPETEER_CORE", &env.puppeteer_core)
        .env("CHROMIUM", CHROMIUM);
    let out = tokio::task::spawn_blocking(move || browse.output())
        .await
        .expect("browser task")
        .expect("node");
    let _ = dev.kill();
    let _ = dev.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(work.path().join("dev.log")).unwrap_or_default()
    );
    let result: serde_json::Value =
        serde_json::from_str(stdout.trim().lines().last().unwrap_or("{}")).expect("JSON");
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
