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
    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child.wait().expect("operator exit status")
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
