//! A test-only "process kubelet": registers a Node, binds the namespace's
//! pending Pods to it, runs each Pod's container as a local process (args and
//! env as a kubelet would expand them, volumes as local directories) on its
//! own loopback address 127.0.0.N, reports Running/Ready from the readiness
//! probe, restarts exited containers and kills them when the Pod is deleted.
//! Everything else is the real control plane.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// Pause before an exited container starts again (a kubelet's back-off starts
/// at 10 s); long enough for the operator to see the pod unready.
const RESTART_PAUSE: Duration = Duration::from_secs(5);
/// A container that exits sooner than this after starting crash-loops: the
/// pause doubles, up to 8 × RESTART_PAUSE, as a kubelet's back-off does.
const FAST_EXIT: Duration = Duration::from_secs(3);
/// With FallbackToLogsOnError, a kubelet quotes at most this much of the log.
const TERMINATION_LOG_BYTES: usize = 2048;

/// Loopback addresses handed out to pods: 127.0.1.1, 127.0.1.2, … (never .0)
static NEXT_ADDRESS: AtomicU32 = AtomicU32::new(1 << 8);

fn next_address() -> String {
    loop {
        let n = NEXT_ADDRESS.fetch_add(1, Ordering::Relaxed);
        if n & 0xff != 0 {
            return format!("127.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
        }
    }
}

struct Running {
    child: Child,
    ip: String,
    ready: bool,
    restarts: i32,
    exited_at: Option<Instant>,
    /// Only rewritten paths and expanded values; reused on restart.
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    probe: Option<ReadinessProbe>,
    /// Readiness probes failed in a row since the last success.
    probe_misses: i32,
    started_at: Instant,
    /// Exits within FAST_EXIT of starting, in a row: the back-off doubles.
    fast_exits: u32,
    /// Exit code and termination message of the last exit.
    last_exit: Option<(i32, String)>,
    /// What status last said, so unchanged states are not written again.
    reported: Option<Shown>,
}

/// A container's HTTP readiness probe, as the kubelet honours it: a probe
/// fails on an error status or after `timeout`; the container turns unready
/// after `failure_threshold` failures in a row (probed every tick here, not
/// every `periodSeconds`, so tests need not wait).
#[derive(Debug, Clone)]
struct ReadinessProbe {
    path: String,
    port: u16,
    timeout: Duration,
    failure_threshold: i32,
}

impl ReadinessProbe {
    fn of(probe: &k8s_openapi::api::core::v1::Probe) -> Option<ReadinessProbe> {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let http = probe.http_get.as_ref()?;
        let port = match &http.port {
            IntOrString::Int(p) => u16::try_from(*p).ok()?,
            IntOrString::String(_) => 8080,
        };
        Some(ReadinessProbe {
            path: http.path.clone().unwrap_or_else(|| "/".into()),
            port,
            // Kubernetes' defaults: 1 s, 3 failures.
            timeout: Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64),
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1),
        })
    }

    async fn passes(&self, ip: &str) -> bool {
        reqwest::Client::new()
            .get(format!("http://{ip}:{}{}", self.port, self.path))
            .timeout(self.timeout)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }
}

/// What the kubelet reports about a pod's container.
#[derive(Debug, Clone, PartialEq)]
enum Shown {
    Running {
        ready: bool,
        restarts: i32,
    },
    /// Exited; waiting out the back-off before starting again.
    CrashLoop {
        restarts: i32,
    },
}

pub struct ProcessKubelet {
    pub node: String,
    stop: Arc<AtomicBool>,
    pods: Arc<Mutex<HashMap<String, Running>>>,
    // Set by the fault scenarios (tests/faults) only.
    #[allow(dead_code)]
    placements: Placements,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Pods to run in a network namespace of the test's own, by pod name: the
/// namespace and the pod's address in it.
type Placements = Arc<Mutex<HashMap<String, (String, String)>>>;

impl ProcessKubelet {
    /// Starts the kubelet loop for `namespace`; `binary` stands for every image.
    pub async fn start(
        client: Client,
        namespace: &str,
        binary: PathBuf,
        work: PathBuf,
    ) -> ProcessKubelet {
        let node = super::unique_name("node");
        let nodes: Api<Node> = Api::all(client.clone());
        let object: Node = serde_json::from_value(
            json!({"metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}}}),
        )
        .expect("node literal");
        nodes
            .create(&PostParams::default(), &object)
            .await
            .expect("cannot register the node");
        let stop = Arc::new(AtomicBool::new(false));
        let pods = Arc::new(Mutex::new(HashMap::new()));
        let placements = Placements::default();
        let state = Loop {
            client,
            namespace: namespace.into(),
            node: node.clone(),
            binary,
            work,
            pods: pods.clone(),
            placements: placements.clone(),
        };
        let loop_stop = stop.clone();
        let task = tokio::spawn(async move {
            let mut last_heartbeat = Instant::now() - Duration::from_secs(60);
            while !loop_stop.load(Ordering::Relaxed) {
                if last_heartbeat.elapsed() > Duration::from_secs(10) {
                    state.heartbeat().await;
                    last_heartbeat = Instant::now();
                }
                state.sync().await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        ProcessKubelet {
            node,
            stop,
            pods,
            placements,
            task: Some(task),
        }
    }

    /// The pod named `pod`, whenever it starts from now on, runs in network
    /// namespace `netns` (made by the test environment) with address `ip`.
    #[allow(dead_code)]
    pub fn place(&self, pod: &str, netns: &str, ip: &str) {
        if let Ok(mut placements) = self.placements.lock() {
            placements.insert(pod.to_string(), (netns.to_string(), ip.to_string()));
        }
    }

    /// kill -9 the container of `pod` (the kubelet restarts it after a pause).
    pub fn kill(&self, pod: &str) -> bool {
        let Ok(mut pods) = self.pods.lock() else {
            return false;
        };
        match pods.get_mut(pod) {
            Some(r) => r.child.kill().is_ok(),
            None => false,
        }
    }

    /// How often the pod's container was started again.
    pub fn restarts(&self, pod: &str) -> Option<i32> {
        self.pods.lock().ok()?.get(pod).map(|r| r.restarts)
    }

    /// Loopback address of a running pod.
    pub fn address(&self, pod: &str) -> Option<String> {
        self.pods.lock().ok()?.get(pod).map(|r| r.ip.clone())
    }
}

impl Drop for ProcessKubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Ok(mut pods) = self.pods.lock() {
            for (_, r) in pods.iter_mut() {
                let _ = r.child.kill();
                let _ = r.child.wait();
            }
        }
    }
}

#[path = "kubelet_status.rs"]
mod status;

#[path = "kubelet_process.rs"]
mod process;

struct Loop {
    client: Client,
    namespace: String,
    node: String,
    binary: PathBuf,
    work: PathBuf,
    pods: Arc<Mutex<HashMap<String, Running>>>,
    placements: Placements,
}

impl Loop {
    async fn heartbeat(&self) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = json!({"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "process kubelet",
                            "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "allocatable": super::node_rules::ALLOCATABLE.iter().copied().collect::<BTreeMap<_, _>>(),
            "capacity": super::node_rules::ALLOCATABLE.iter().copied().collect::<BTreeMap<_, _>>(),
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        }});
        let _ = nodes
            .patch_status(&self.node, &PatchParams::default(), &Patch::Merge(&status))
            .await;
    }

    async fn sync(&self) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let Ok(list) = api.list(&Default::default()).await else {
            return;
        };
        let mut seen = Vec::new();
        for pod in list.items {
            let name = pod.name_any();
            seen.push(name.clone());
            let spec = pod.spec.clone().unwrap_or_default();
            if pod.metadata.deletion_timestamp.is_some() {
                self.stop_pod(&name);
                let _ = api
                    .delete(
                        &name,
                        &DeleteParams {
                            grace_period_seconds: Some(0),
                            ..Default::default()
                        },
                    )
                    .await;
                continue;
            }
            match spec.node_name.as_deref() {
                None if self.refuse_to_schedule(&api, &pod).await => {}
                None => {
                    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                                         "target": {"apiVersion": "v1", "kind": "Node", "name": self.node}});
                    let _ = api
                        .create_subresource::<serde_json::Value, serde_json::Value>(
                            "binding",
                            &name,
                            &PostParams::default(),
                            &binding,
                        )
                        .await;
                }
                Some(n) if n == self.node => self.run_pod(&api, &pod).await,
                Some(_) => {}
            }
        }
        // Pods gone from the API: their processes go too.
        let gone: Vec<String> = self
            .pods
            .lock()
            .map(|p| p.keys().filter(|k| !seen.contains(k)).cloned().collect())
            .unwrap_or_default();
        for name in gone {
            self.stop_pod(&name);
        }
    }

    fn stop_pod(&self, name: &str) {
        if let Ok(mut pods) = self.pods.lock()
            && let Some(mut r) = pods.remove(name)
        {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }

    async fn run_pod(&self, api: &Api<Pod>, pod: &Pod) {
        let name = pod.name_any();
        let spec = pod.spec.clone().unwrap_or_default();
        let Some(container) = spec.containers.first() else {
            return;
        };
        let known = self
            .pods
            .lock()
            .map(|p| p.contains_key(&name))
            .unwrap_or(true);
        if !known && self.refuse_to_pull(api, pod, container).await {
            return;
        }
        if !known {
            let placed = self
                .placements
                .lock()
                .ok()
                .and_then(|p| p.get(&name).cloned());
            let ip = placed
                .as_ref()
                .map_or_else(next_address, |(_, ip)| ip.clone());
            let dir = self.work.join("pods").join(&name);
            let mounts = self.materialize(pod, &dir).await;
            let (mut program, mut args, mut env) = self.command(container, pod, &ip, &mounts);
            if let Some((netns, _)) = placed {
                args = ["netns", "exec", netns.as_str()]
                    .map(String::from)
                    .into_iter()
                    .chain(std::iter::once(program.display().to_string()))
                    .chain(args)
                    .collect();
                program = PathBuf::from("ip");
            }
            env.push(("KUBECONFIG".into(), self.identity(pod, &dir).await));
            let probe = container
                .readiness_probe
                .as_ref()
                .and_then(ReadinessProbe::of);
            let log = dir.join("container.log");
            let Ok(child) = spawn(&program, &args, &env, &log) else {
                return;
            };
            if let Ok(mut pods) = self.pods.lock() {
                pods.insert(
                    name.clone(),
                    Running {
                        child,
                        ip: ip.clone(),
                        ready: false,
                        restarts: 0,
                        exited_at: None,
                        program,
                        args,
                        env,
                        log,
                        probe,
                        probe_misses: 0,
                        started_at: Instant::now(),
                        fast_exits: 0,
                        last_exit: None,
                        reported: None,
                    },
                );
            }
            self.report(api, &name, &ip).await;
            return;
        }
        // Exited containers restart after a pause, like a kubelet's backoff.
        let (ip, probe, alive) = {
            let Ok(mut pods) = self.pods.lock() else {
                return;
            };
            let Some(r) = pods.get_mut(&name) else { return };
            let alive = match r.child.try_wait() {
                Ok(None) => true,
                Ok(Some(exit)) => {
                    if r.exited_at.is_none() {
                        status::exited(r, exit);
                    }
                    false
                }
                Err(_) => false,
            };
            if !alive
                && let Some(exited_at) = r.exited_at
                && exited_at.elapsed()
                    > RESTART_PAUSE * 2u32.pow(r.fast_exits.saturating_sub(1).min(3))
                && let Ok(child) = spawn(&r.program, &r.args, &r.env, &r.log)
            {
                r.child = child;
                r.restarts += 1;
                r.exited_at = None;
                r.started_at = Instant::now();
            }
            (r.ip.clone(), r.probe.clone(), alive)
        };
        let passed = match &probe {
            Some(probe) if alive => Some(probe.passes(&ip).await),
            _ => None,
        };
        if let Ok(mut pods) = self.pods.lock()
            && let Some(r) = pods.get_mut(&name)
        {
            r.ready = match (alive, passed, &probe) {
                (false, _, _) => {
                    r.probe_misses = 0;
                    false
                }
                (true, Some(false), Some(probe)) => {
                    r.probe_misses += 1;
                    // Not ready before the first success; after it, only
                    // `failure_threshold` misses in a row make it unready.
                    r.ready && r.probe_misses < probe.failure_threshold
                }
                // Passed, or no probe to pass.
                (true, _, _) => {
                    r.probe_misses = 0;
                    true
                }
            };
        }
        self.report(api, &name, &ip).await;
    }
}

fn spawn(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
) -> std::io::Result<Child> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
}
