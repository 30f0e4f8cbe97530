//! Running `matview operator` processes in tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::projector::free_port;

/// An operator replica; killed when dropped.
pub struct OperatorProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`: its /healthz, /readyz and /metrics.
    pub url: String,
}

impl OperatorProcess {
    /// SIGTERM, then waits (up to a minute) for the exit status; a replica
    /// that does not exit is killed and the test fails, never hangs.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("operator exit status") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the operator did not exit within 60 s of SIGTERM");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Whether the process is still the one started (it has not exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a replica watching `namespace`, authenticated by `kubeconfig` (see
/// `kube::operator_identity`), with a 3 s lease so failover tests are quick.
pub fn start(kubeconfig: &Path, namespace: &str, log: &Path, identity: &str) -> OperatorProcess {
    start_with_lease(kubeconfig, namespace, log, identity, 3)
}

/// Like [`start`], with a lease of `lease_seconds`.
pub fn start_with_lease(
    kubeconfig: &Path,
    namespace: &str,
    log: &Path,
    identity: &str,
    lease_seconds: u64,
) -> OperatorProcess {
    start_with_args(kubeconfig, namespace, log, identity, lease_seconds, &[])
}

/// Like [`start_with_lease`], with more arguments of `matview operator`.
pub fn start_with_args(
    kubeconfig: &Path,
    namespace: &str,
    log: &Path,
    identity: &str,
    lease_seconds: u64,
    args: &[&str],
) -> OperatorProcess {
    let address = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_matview"))
        .args(["operator", "--namespace", namespace, "--log-format", "text"])
        .args(["--lease-duration-seconds", &lease_seconds.to_string()])
        .args(["--listen", &address])
        .args(args)
        .env("MATVIEW_POD_NAME", identity)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info,kube=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("operator log"))
        .spawn()
        .expect("cannot start matview operator");
    OperatorProcess {
        child,
        url: format!("http://{address}"),
    }
}

/// A namespace with an operator replica (under its least-privilege identity)
/// and, when asked, a process kubelet: what operator tests start from.
pub struct OperatorFixture {
    pub env: &'static super::TestEnv,
    pub client: kube::Client,
    pub ns: super::kube::TestNamespace,
    /// Held for the test's length (killed when dropped).
    pub operator: OperatorProcess,
    log: std::path::PathBuf,
    pub kubelet: Option<super::kubelet::ProcessKubelet>,
    /// Last: the processes above write in it.
    pub work: tempfile::TempDir,
}

impl OperatorFixture {
    /// `operator_args` go to `matview operator`; `kubelet` starts one.
    pub async fn start(prefix: &str, operator_args: &[&str], kubelet: bool) -> OperatorFixture {
        let env = super::TestEnv::with_kafka();
        let client = super::kube::admin_client(env).await;
        super::kube::install_matview_crd(&client).await;
        let ns = super::kube::TestNamespace::create(&client, prefix).await;
        let logs = tempfile::tempdir().expect("tempdir");
        let log = logs.path().join("operator.log");
        let (kubeconfig, _) =
            super::kube::operator_identity(env, &client, &ns.name, logs.path()).await;
        let operator = start_with_args(&kubeconfig, &ns.name, &log, "operator-0", 3, operator_args);
        let kubelet = if kubelet {
            Some(
                super::kubelet::ProcessKubelet::start(
                    client.clone(),
                    &ns.name,
                    env!("CARGO_BIN_EXE_matview").into(),
                    logs.path().to_path_buf(),
                )
                .await,
            )
        } else {
            None
        };
        OperatorFixture {
            env,
            client,
            ns,
            operator,
            log,
            kubelet,
            work: logs,
        }
    }

    /// The process kubelet (the fixture was started with one).
    pub fn kubelet(&self) -> &super::kubelet::ProcessKubelet {
        self.kubelet
            .as_ref()
            .expect("a fixture started with a process kubelet")
    }

    /// The views of the fixture's namespace.
    pub fn views(&self) -> kube::Api<matview::crd::MaterializedView> {
        kube::Api::namespaced(self.client.clone(), &self.ns.name)
    }

    pub fn operator_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
