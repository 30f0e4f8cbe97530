//! The documentation against the code: the reference pages kept in
//! docs/reference/ are what `matview reference` generates now (run it again
//! when this fails), and the command lines of the pages run as written.

use clap::CommandFactory;

#[test]
fn the_checked_in_reference_pages_are_the_generated_ones() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let command = matview::cli::Cli::command();
    let mut stale = Vec::new();
    for (name, file) in matview::reference::PAGES {
        let generated = matview::reference::page(name, &root.join("charts/matview"), &command)
            .expect("renders");
        let checked_in = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        if checked_in != generated {
            stale.push(format!("cargo run -- reference {name} > {file}"));
        }
    }
    assert!(stale.is_empty(), "stale reference pages; run: {stale:#?}");
}

pub(crate) use crate::support::doc_lines::command_lines;

/// The views page's first commands, as a reader types them, on the test
/// API server: apply the CRD, create the namespace, apply the examples,
/// list the views, explain a field. (No operator runs here: the views are
/// stored and listed, not built.)
#[tokio::test]
async fn the_views_pages_kubectl_lines_run_as_written() {
    use crate::support::{TestEnv, eventually};
    use std::time::Duration;

    let env = TestEnv::get();
    let lines = command_lines("docs/concepts/views.md", "# Views");
    assert!(
        lines.iter().all(|l| l.starts_with("kubectl ")),
        "only kubectl lines: {lines:?}"
    );
    // The page creates the namespace `shop`: start from none (a test run
    // before this one may have left it).
    let gone = || async {
        let out = env
            .kubectl()
            .args([
                "get",
                "namespace",
                "shop",
                "--ignore-not-found",
                "-o",
                "name",
            ])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .is_empty()
            .then_some(())
    };
    if gone().await.is_none() {
        let _ = env
            .kubectl()
            .args(["delete", "namespace", "shop", "--wait=false"])
            .output();
        eventually("namespace shop gone", Duration::from_secs(120), gone).await;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let kubectl_dir = env.kube_bin.display().to_string();
    let mut outputs = Vec::new();
    for line in &lines {
        let out = std::process::Command::new("bash")
            .args(["-c", line])
            .current_dir(root)
            .env("KUBECONFIG", &env.kubeconfig)
            .env(
                "PATH",
                format!(
                    "{kubectl_dir}:{}",
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{line}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let listed = lines
        .iter()
        .position(|l| l.starts_with("kubectl get mv"))
        .map(|i| outputs[i].clone())
        .unwrap_or_default();
    assert!(
        listed.contains("items-by-price"),
        "kubectl get mv: {listed}"
    );
    let explained = outputs.last().cloned().unwrap_or_default();
    assert!(explained.contains("group"), "kubectl explain: {explained}");
    let _ = env
        .kubectl()
        .args(["delete", "namespace", "shop", "--wait=false"])
        .output();
}

/// The operator page's offline line: `matview render` prints the objects
/// the operator would create, from the example, without a cluster.
#[test]
fn the_operator_pages_render_line_runs_as_written() {
    let lines = command_lines("docs/concepts/operator.md", "# The operator");
    let render = lines
        .iter()
        .find(|l| l.starts_with("matview render "))
        .expect("the page shows matview render");
    let args: Vec<&str> = render.split_whitespace().skip(1).collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_matview"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("matview render");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{render}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in [
        "kind: ConfigMap",
        "kind: Service",
        "kind: StatefulSet",
        "kind: PodDisruptionBudget",
    ] {
        assert!(text.contains(kind), "{render} prints a {kind}");
    }
}

/// The getting-started page's `matview dev` lines, each run as written
/// (`cargo run --release --` is this build), with a free `--listen` and a
/// data directory of its own; `my-views/` is a directory with one view of
/// its own, `kafka:9092` the test broker. Each serves the views it names.
#[tokio::test]
async fn the_getting_started_dev_lines_run_as_written() {
    use crate::support::projector::free_port;
    let env = crate::support::TestEnv::with_kafka();
    let lines = command_lines("docs/getting-started.md", "# Getting started");
    let dev_lines: Vec<&String> = lines.iter().filter(|l| l.contains("-- dev")).collect();
    assert_eq!(dev_lines.len(), 3, "{lines:?}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let examples = std::fs::read_dir(root.join("examples"))
        .expect("examples")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        })
        .count();
    for line in dev_lines {
        let work = tempfile::tempdir().expect("tempdir");
        let mine = work.path().join("my-views");
        std::fs::create_dir(&mine).expect("my-views");
        let own =
            crate::support::projector::shop_view_yaml(env, "mine", "my-orders", "my-orders-dlq", 1);
        std::fs::write(mine.join("mine.yaml"), own).expect("my view");
        let args: Vec<String> = line
            .split_whitespace()
            .skip_while(|a| *a != "dev")
            .skip(1)
            .map(|a| match a {
                "my-views/" => mine.display().to_string(),
                "kafka:9092" => env.kafka_bootstrap.clone(),
                other => other.to_string(),
            })
            .collect();
        let address = format!("127.0.0.1:{}", free_port());
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_matview"));
        command
            .current_dir(root)
            .arg("dev")
            .args(&args)
            .args(["--listen", &address]);
        command.arg("--data-dir").arg(work.path().join("data"));
        if !args.iter().any(|a| a == "--bootstrap-servers") {
            command.args(["--broker-listen", &format!("127.0.0.1:{}", free_port())]);
        }
        let log = work.path().join("dev.log");
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"));
        let mut child = command.spawn().expect("matview dev");
        let views = if args.iter().any(|a| a == "examples/") {
            examples + 1
        } else {
            1
        };
        let url = format!("http://{address}/v1/views");
        let served =
            crate::support::eventually(line, std::time::Duration::from_secs(60), || async {
                let list: serde_json::Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
                let all = list["views"].as_array()?;
                (all.len() == views && all.iter().all(|v| v["serving"] == true))
                    .then_some(all.len())
            })
            .await;
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            served,
            views,
            "{line}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

/// The projector page's by-hand run, line by line as written, in bash on the
/// test broker: its own topic instead of `orders`, a temporary directory for
/// `/tmp/`, a free port for 8080 and this build for `cargo run --`. The row
/// it reads equals the one the page shows in its comment.
#[tokio::test]
async fn the_projector_pages_by_hand_run_works_as_written() {
    use crate::support::projector::free_port;
    let env = crate::support::TestEnv::with_kafka();
    let lines = command_lines("docs/concepts/projector.md", "# The projector");
    let work = tempfile::tempdir().expect("tempdir");
    let topic = crate::support::unique_name("by-hand");
    let port = free_port().to_string();
    let dir = format!("{}/", work.path().display());
    let mut script = String::from("set -euo pipefail\n");
    let mut curl = None;
    for line in &lines {
        if line.starts_with("make testenv") {
            continue; // the suite's environment is up
        }
        let line = line
            .replace("--topic orders", &format!("--topic {topic}"))
            .replace(
                "s/kafka.kafka:9092/",
                &format!("s/topic: orders/topic: {topic}/; s/kafka.kafka:9092/"),
            )
            .replace("/tmp/", &dir)
            .replace("8080", &port)
            .replace("cargo run --", env!("CARGO_BIN_EXE_matview"));
        if line.starts_with("curl ") {
            curl = line
                .split_whitespace()
                .nth(1)
                .map(|u| format!("http://{u}"));
        } else {
            script.push_str(&line);
            script.push('\n');
        }
    }
    script.push_str(&format!("echo $! > {dir}pid\n"));
    let url = curl.expect("the page reads a row with curl");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("MATVIEW_KAFKA_BOOTSTRAP", &env.kafka_bootstrap)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(work.path().join("run.log")).expect("log"))
        .status()
        .expect("bash");
    /// The projector the script left running, stopped however the test ends.
    struct Stop(String);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill")
                .arg(self.0.trim())
                .status();
        }
    }
    let _running = std::fs::read_to_string(work.path().join("pid")).map(Stop);
    let row = crate::support::eventually(
        "the row by hand",
        std::time::Duration::from_secs(60),
        || async {
            let row: serde_json::Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
            (row["key"] == "u-3").then_some(row)
        },
    )
    .await;
    assert!(
        out.success(),
        "{}",
        std::fs::read_to_string(work.path().join("run.log")).unwrap_or_default()
    );
    let totals = crate::support::projector::row_totals(&row);
    let want = std::collections::BTreeMap::from([("affordable", (1, 3200)), ("cheap", (1, 150))]);
    assert_eq!(totals, want, "{row}");
}
