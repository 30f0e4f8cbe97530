//! `matview dev`: the projectors of every shard and the gateway in one
//! process, on its embedded broker and against the test broker. Expected
//! rows are computed from the produced orders.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::projector::{free_port, reference, row_totals, shop_view_yaml};
use crate::support::{TestEnv, eventually, kafka, unique_name};

pub(crate) enum Broker {
    /// An existing Kafka's bootstrap servers.
    At(String),
    /// The embedded broker, listening here.
    Embedded(String),
}

impl Broker {
    pub(crate) fn embedded() -> Broker {
        Broker::Embedded(format!("127.0.0.1:{}", free_port()))
    }
}

/// A `matview dev` process; killed when dropped.
pub(crate) struct Dev {
    child: Child,
    pub(crate) url: String,
    stderr: std::path::PathBuf,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `matview dev` on `kafka` (bootstrap servers), or on its embedded
/// broker at `--broker-listen` when `kafka` is `Broker::Embedded`.
pub(crate) fn start_dev(
    kafka: &Broker,
    args: &[&str],
    data: &std::path::Path,
    log: &std::path::Path,
) -> Dev {
    let address = format!("127.0.0.1:{}", free_port());
    let broker_args = match kafka {
        Broker::At(servers) => ["--bootstrap-servers", servers.as_str()],
        Broker::Embedded(listen) => ["--broker-listen", listen.as_str()],
    };
    let child = Command::new(env!("CARGO_BIN_EXE_matview"))
        .arg("dev")
        .args(args)
        .args(broker_args)
        .args(["--listen", &address])
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("cannot start matview dev");
    Dev {
        child,
        url: format!("http://{address}"),
        stderr: log.to_path_buf(),
    }
}

/// `matview dev` with the built-in shop example and 50 demo orders a
/// second, on its embedded broker, data and log under `work`.
fn start_demo(work: &std::path::Path) -> Dev {
    start_dev(
        &Broker::embedded(),
        &["--demo-rate", "50"],
        &work.join("data"),
        &work.join("dev.log"),
    )
}

impl Dev {
    /// SIGTERM, then the exit status and how long it took.
    pub(crate) fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let asked = Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait().expect("exit status");
        (status, asked.elapsed())
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

async fn get(url: &str) -> Option<(u16, Value)> {
    let r = reqwest::get(url).await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn dev_mode_serves_views_from_files_resumes_and_stops_cleanly() {
    let env = TestEnv::with_kafka();
    let work = tempfile::tempdir().expect("tempdir");
    let topic = kafka::create_topic(env, "dev-orders", 2).await;
    let view = work.path().join("view.yaml");
    let yaml = shop_view_yaml(env, "dev-shop", &topic, &unique_name("dev-dlq"), 2);
    std::fs::write(&view, yaml).expect("write view");
    let mut g = matview::workload::OrderGenerator::new(61, 25);
    let orders: Vec<Value> = (0..150).map(|_| g.next_order()).collect();
    crate::support::projector::produce_orders(env, &topic, &orders).await;
    let expected = reference(&orders);
    let data = work.path().join("data");
    let view_arg = view.display().to_string();
    let args = ["-f", view_arg.as_str(), "--demo-rate", "0"];

    let kafka = Broker::At(env.kafka_bootstrap.clone());
    let mut dev = start_dev(&kafka, &args, &data, &work.path().join("dev.log"));
    for (user, groups) in &expected {
        let url = format!("{}/v1/namespaces/tests/views/dev-shop/rows/{user}", dev.url);
        let row = eventually(
            &format!("row {user} through matview dev"),
            Duration::from_secs(60),
            || async {
                let (status, row) = get(&url).await?;
                (status == 200 && row_totals(&row) == *groups).then_some(row)
            },
        )
        .await;
        assert_eq!(&row_totals(&row), groups);
    }
    let (status, took) = dev.terminate();
    assert!(
        status.success(),
        "Ctrl-C is a clean exit: {status}\n{}",
        dev.log()
    );
    assert!(took < Duration::from_secs(20), "stopped in {took:?}");

    // A restart resumes from the stores: every row is there at once.
    let mut again = start_dev(&kafka, &args, &data, &work.path().join("again.log"));
    let (user, groups) = expected.iter().next().expect("a user");
    let url = format!(
        "{}/v1/namespaces/tests/views/dev-shop/rows/{user}",
        again.url
    );
    let row = eventually(
        "the row after a restart",
        Duration::from_secs(30),
        || async {
            let (status, row) = get(&url).await?;
            (status == 200).then_some(row)
        },
    )
    .await;
    assert_eq!(&row_totals(&row), groups);
    let (status, _) = again.terminate();
    assert!(status.success(), "{}", again.log());
}

#[tokio::test]
async fn dev_mode_refuses_a_port_in_use_and_an_invalid_view_clearly() {
    let env = TestEnv::with_kafka();
    let work = tempfile::tempdir().expect("tempdir");
    // `matview dev` with these arguments must fail; its stderr.
    let fails = |args: &[&str], servers: &str, listen: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_matview"))
            .arg("dev")
            .args(args)
            .args(["--bootstrap-servers", servers, "--listen", listen])
            .arg("--data-dir")
            .arg(work.path())
            .output()
            .expect("matview dev");
        assert!(!out.status.success(), "matview dev {args:?} must fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let err = fails(&[], &env.kafka_bootstrap, &address);
    assert!(
        err.contains("is in use") && err.contains("--listen"),
        "{err}"
    );

    let bad = work.path().join("bad.yaml");
    let yaml = shop_view_yaml(env, "bad", "orders", "bad-dlq", 1)
        .replace("{group: affordable, gte: 5", "{group: affordable, gte: 500");
    std::fs::write(&bad, yaml).expect("write");
    let bad_arg = bad.display().to_string();
    let err = fails(&["-f", &bad_arg], &env.kafka_bootstrap, "127.0.0.1:0");
    assert!(
        err.contains("spec.classify.rules[1]"),
        "names the field to fix: {err}"
    );

    let unreachable = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let err = fails(&[], &unreachable.to_string(), "127.0.0.1:0");
    assert!(err.contains("does not answer"), "{err}");

    // The embedded broker's address taken.
    let out = Command::new(env!("CARGO_BIN_EXE_matview"))
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--broker-listen",
            &address,
        ])
        .arg("--data-dir")
        .arg(work.path())
        .output()
        .expect("matview dev");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must fail: {err}");
    assert!(
        err.contains("is in use") && err.contains("--broker-listen"),
        "{err}"
    );
}

#[tokio::test]
async fn dev_mode_with_no_arguments_runs_the_shop_example_with_demo_orders() {
    let work = tempfile::tempdir().expect("tempdir");
    // Demo orders are random: only check that they make rows appear.
    let dev = start_demo(work.path());
    let url = format!(
        "{}/v1/namespaces/shop/views/items-by-price/groups/cheap/rows?limit=5",
        dev.url
    );
    let page = eventually("demo rows", Duration::from_secs(60), || async {
        let (status, page) = get(&url).await?;
        (status == 200 && page["rows"].as_array().is_some_and(|r| !r.is_empty())).then_some(page)
    })
    .await;
    assert!(
        page["rows"][0]["groups"]["cheap"]["count"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{page}\n{}",
        dev.log()
    );
}

/// Whether something listens on `address`.
fn listening(address: &str) -> bool {
    std::net::TcpStream::connect(address).is_ok()
}

#[tokio::test]
async fn dev_mode_on_its_embedded_broker_is_exact_durable_and_leaves_nothing_running() {
    let work = tempfile::tempdir().expect("tempdir");
    let kafka = Broker::embedded();
    let Broker::Embedded(servers) = &kafka else {
        unreachable!("an embedded broker")
    };
    let data = work.path().join("data");
    let args = ["--demo-rate", "0"];
    let mut dev = start_dev(&kafka, &args, &data, &work.path().join("dev.log"));
    let views = format!("{}/v1/views", dev.url);
    eventually("matview dev answers", Duration::from_secs(60), || async {
        get(&views).await.filter(|(s, _)| *s == 200)
    })
    .await;

    // Orders into the built-in example's topic on the embedded broker: the
    // broker is this process's own, so the expectation is exact.
    let mut g = matview::workload::OrderGenerator::new(97, 20);
    let first: Vec<Value> = (0..120).map(|_| g.next_order()).collect();
    crate::support::projector::produce_orders_at(servers, "orders", &first).await;
    let check_rows = |orders: Vec<Value>, base: String| async move {
        for (user, groups) in &reference(&orders) {
            let url = format!("{base}/v1/namespaces/shop/views/items-by-price/rows/{user}");
            eventually(&format!("row {user}"), Duration::from_secs(60), || async {
                let (status, row) = get(&url).await?;
                (status == 200 && row_totals(&row) == *groups).then_some(())
            })
            .await;
        }
    };
    check_rows(first.clone(), dev.url.clone()).await;

    let (status, took) = dev.terminate();
    assert!(status.success(), "a clean exit: {status}\n{}", dev.log());
    assert!(took < Duration::from_secs(20), "stopped in {took:?}");
    let gateway = dev.url.trim_start_matches("http://").to_string();
    assert!(!listening(&gateway), "the gateway is gone");
    assert!(!listening(servers), "the embedded broker is gone");

    // A restart finds the broker's log and the stores; new orders continue
    // from there and every row is exact over both runs.
    let mut again = start_dev(&kafka, &args, &data, &work.path().join("again.log"));
    let later: Vec<Value> = (0..60).map(|_| g.next_order()).collect();
    eventually(
        "the embedded broker is back",
        Duration::from_secs(60),
        || async { listening(servers).then_some(()) },
    )
    .await;
    crate::support::projector::produce_orders_at(servers, "orders", &later).await;
    let all: Vec<Value> = first.into_iter().chain(later).collect();
    check_rows(all, again.url.clone()).await;
    let (status, _) = again.terminate();
    assert!(status.success(), "{}", again.log());
    assert!(!listening(servers), "the embedded broker is gone");
}

/// The README's quick start, as a reader runs it: every `curl` line of the
/// block under its marker, against a `matview dev` of this test's own (the
/// address is the only thing changed), answers 200 with JSON, and the rows
/// page fills as the demo orders arrive.
#[tokio::test]
async fn the_readmes_quick_start_lines_answer_against_matview_dev() {
    let lines =
        crate::docs::command_lines("README.md", "<!-- quick start: run by tests/it/dev.rs -->");
    let urls: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("curl "))
        .filter_map(|l| {
            l.split_whitespace()
                .map(|w| w.trim_matches('\''))
                .find(|w| w.starts_with("http://"))
                .map(str::to_string)
        })
        .collect();
    assert!(urls.len() >= 2, "the block's curl lines: {lines:?}");
    let work = tempfile::tempdir().expect("tempdir");
    let dev = start_demo(work.path());
    for documented in &urls {
        let url = documented.replace("http://127.0.0.1:8080", &dev.url);
        assert_ne!(
            &url, documented,
            "the README's lines use the default address"
        );
        let body = eventually(documented, Duration::from_secs(60), || async {
            let (status, body) = get(&url).await?;
            let filled = body
                .get("rows")
                .is_none_or(|rows| rows.as_array().is_some_and(|r| !r.is_empty()));
            (status == 200 && filled).then_some(body)
        })
        .await;
        assert!(body.is_object(), "{documented}: {body}\n{}", dev.log());
    }
}

/// The gateway page's curl lines, as written, against a `matview dev` of
/// this test's own (`GW` points at it; `matview dev` does not check the
/// token): each answers JSON — a row, a page, the view list, or a problem
/// body for a key or position the demo data does not have. The live-stream
/// line (`curl -N`, which never ends) is left out.
#[tokio::test]
async fn the_gateway_pages_curl_lines_answer_as_written() {
    let lines = crate::docs::command_lines("docs/concepts/gateway.md", "# The gateway");
    let curls: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("curl ") && !l.starts_with("curl -N"))
        .collect();
    assert!(curls.len() >= 4, "the page's curl lines: {lines:?}");
    let work = tempfile::tempdir().expect("tempdir");
    let dev = start_demo(work.path());
    let views = format!("{}/v1/views", dev.url);
    eventually("matview dev serving", Duration::from_secs(60), || async {
        let (status, _) = get(&views).await?;
        (status == 200).then_some(())
    })
    .await;
    for line in curls {
        let out = tokio::task::spawn_blocking({
            let (line, url) = (line.clone(), dev.url.clone());
            move || {
                Command::new("bash")
                    .args(["-c", &line])
                    .env("GW", url)
                    .env("TOKEN", "unused-by-matview-dev")
                    .output()
                    .expect("bash")
            }
        })
        .await
        .expect("curl task");
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{line}: curl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{line}: not JSON ({e}): {body}\n{}", dev.log()));
        assert!(json.is_object(), "{line}: {json}");
    }
}
