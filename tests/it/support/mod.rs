//! Test support: finds the running test environment (see `hack/testenv.sh`),
//! and gives each test its own namespace and Kafka topics so that tests run in
//! parallel without seeing each other's data.

pub mod changelog;
pub mod doc_lines;
pub mod formats;
pub mod gateway;
pub mod kafka;
pub mod kube;
pub mod kube_apiserver;
pub mod kubelet;
pub mod node_rules;
pub mod operator;
pub mod orders;
pub mod own_broker;
pub mod own_registry;
pub mod projector;
pub mod stack;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const HOW_TO_START: &str = "the test environment is not running: start it with `make testenv` \
     (or run everything with `make test`)";

/// Addresses and paths of the running test environment.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub kubeconfig: PathBuf,
    pub kafka_bootstrap: String,
    pub kube_bin: PathBuf,
    pub helm_bin: PathBuf,
    /// Directory of schemathesis' `st` (API fuzzing).
    pub schemathesis_bin: PathBuf,
    /// The puppeteer-core module (drives Chromium in the browser test).
    pub puppeteer_core: PathBuf,
    /// etcd's client URL (a test may run its own API server on it).
    pub etcd: String,
    /// The environment's CA and certificates.
    pub pki: PathBuf,
    /// The schema registry's Confluent-compatible API.
    pub schema_registry: String,
    /// A Python with confluent-kafka's Avro and Protobuf serializers.
    pub serdes_python: PathBuf,
}

impl TestEnv {
    /// The running environment; panics with how to start it when it is absent.
    pub fn get() -> &'static TestEnv {
        static ENV: OnceLock<TestEnv> = OnceLock::new();
        ENV.get_or_init(|| match load() {
            Ok(env) => env,
            Err(why) => panic!("{HOW_TO_START} ({why})"),
        })
    }

    /// Like [`TestEnv::get`], and also checks that the Kafka broker answers.
    pub fn with_kafka() -> &'static TestEnv {
        let env = Self::get();
        require_listening("Kafka broker", &env.kafka_bootstrap);
        env
    }

    /// Like [`TestEnv::with_kafka`], and also checks that the schema
    /// registry answers.
    pub fn with_registry() -> &'static TestEnv {
        let env = Self::with_kafka();
        let address = env
            .schema_registry
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        require_listening("schema registry", address);
        env
    }

    /// `kubectl` with the environment's admin kubeconfig; no request waits
    /// forever on a busy API server.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.kube_bin.join("kubectl"));
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .arg("--request-timeout=30s");
        cmd
    }

    /// `helm` with the environment's admin kubeconfig.
    pub fn helm(&self) -> Command {
        let mut cmd = Command::new(self.helm_bin.join("helm"));
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }
}

pub fn env_dir() -> PathBuf {
    match std::env::var_os("MATVIEW_TESTENV_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".testenv"),
    }
}

/// `hack/testenv.sh <args>` against this environment, not yet run (for a
/// caller that may not fail, such as a `Drop`).
pub fn testenv_command(args: &[&str]) -> Command {
    let mut command = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/testenv.sh"));
    command.args(args).env("MATVIEW_TESTENV_DIR", env_dir());
    command
}

/// Runs `hack/testenv.sh <args>`; its last line of output. Panics with the
/// script's errors when it fails.
pub fn testenv(args: &[&str]) -> String {
    let started = std::time::Instant::now();
    let out = testenv_command(args)
        .output()
        .expect("cannot run hack/testenv.sh");
    assert!(
        out.status.success(),
        "hack/testenv.sh {} failed after {:?}: {}",
        args.join(" "),
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn load() -> Result<TestEnv, String> {
    let file = env_dir().join("testenv.env");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let vars: HashMap<&str, &str> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    let var = |name: &str| {
        vars.get(name)
            .map(|v| v.to_string())
            .ok_or_else(|| format!("{} does not define {name}", file.display()))
    };
    Ok(TestEnv {
        kubeconfig: var("KUBECONFIG")?.into(),
        kafka_bootstrap: var("MATVIEW_KAFKA_BOOTSTRAP")?,
        kube_bin: var("MATVIEW_KUBE_BIN")?.into(),
        helm_bin: var("MATVIEW_HELM_BIN")?.into(),
        schemathesis_bin: var("MATVIEW_SCHEMATHESIS_BIN")?.into(),
        puppeteer_core: var("MATVIEW_PUPPETEER_CORE")?.into(),
        etcd: var("MATVIEW_ETCD")?,
        pki: var("MATVIEW_TESTENV_PKI")?.into(),
        schema_registry: var("MATVIEW_SCHEMA_REGISTRY")?,
        serdes_python: var("MATVIEW_SERDES_PYTHON")?.into(),
    })
}

/// Panics with how to start the environment unless `addr` accepts connections.
pub fn require_listening(what: &str, addr: &str) {
    let parsed: SocketAddr = addr
        .parse()
        .unwrap_or_else(|e| panic!("{HOW_TO_START} (bad {what} address {addr:?}: {e})"));
    if let Err(e) = TcpStream::connect_timeout(&parsed, Duration::from_secs(2)) {
        panic!("{HOW_TO_START} ({what} at {addr} is unreachable: {e})");
    }
}

/// A name no other test (in this or another run) uses: `prefix-<hex>`,
/// valid as a Kubernetes name and a Kafka topic.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mixed =
        nanos ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!("{prefix}-{:x}", mixed & 0xffff_ffff_ffff)
}

/// Runs a command, returns its stdout, and panics with stderr when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Whether a view's status says Ready with `rows` rows: the one predicate
/// tests wait on for "the view has caught up".
pub fn ready_with_rows(status: &matview::crd::MaterializedViewStatus, rows: i64) -> bool {
    status.phase == Some(matview::crd::Phase::Ready) && status.rows == Some(rows)
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
