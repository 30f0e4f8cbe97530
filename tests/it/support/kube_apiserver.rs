//! A second kube-apiserver on the environment's etcd, under its own key
//! prefix: an empty cluster (no CRDs) for tests that must start before the
//! MaterializedView CRD exists, without touching the shared one.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::projector::free_port;
use super::{TestEnv, unique_name};

/// A running API server; stopped when dropped.
pub struct EmptyCluster {
    child: Child,
    /// Admin kubeconfig of this API server.
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for EmptyCluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl EmptyCluster {
    /// Starts it and waits (up to 3 minutes on a loaded machine) until it is ready.
    pub fn start(env: &TestEnv) -> EmptyCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let pki = &env.pki;
        let log = std::fs::File::create(dir.path().join("kube-apiserver.log")).expect("log");
        let child = Command::new(env.kube_bin.join("kube-apiserver"))
            .args(["--etcd-servers", &env.etcd])
            .args([
                "--etcd-prefix",
                &format!("/{}", unique_name("empty-cluster")),
            ])
            .args([
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
            ])
            .args(["--secure-port", &port.to_string()])
            .arg(format!(
                "--tls-cert-file={}",
                pki.join("apiserver.crt").display()
            ))
            .arg(format!(
                "--tls-private-key-file={}",
                pki.join("apiserver.key").display()
            ))
            .arg(format!("--client-ca-file={}", pki.join("ca.crt").display()))
            .args(["--authorization-mode", "RBAC"])
            .args([
                "--service-account-issuer",
                "https://kubernetes.default.svc.cluster.local",
            ])
            .arg(format!(
                "--service-account-key-file={}",
                pki.join("sa.pub").display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                pki.join("sa.key").display()
            ))
            .args(["--service-cluster-ip-range", "10.0.0.0/24"])
            .args([
                "--disable-admission-plugins",
                "ServiceAccount",
                "--endpoint-reconciler-type",
                "none",
            ])
            .arg(format!("--cert-dir={}", dir.path().join("certs").display()))
            .args(["--profiling=false", "--v=1"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start kube-apiserver");
        let kubeconfig = dir.path().join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: empty\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {ca}\nusers:\n- name: admin\n  user:\n    client-certificate: {crt}\n    client-key: {key}\ncontexts:\n- name: empty\n  context: {{cluster: empty, user: admin}}\ncurrent-context: empty\n",
            ca = pki.join("ca.crt").display(),
            crt = pki.join("admin.crt").display(),
            key = pki.join("admin.key").display(),
        );
        std::fs::write(&kubeconfig, text).expect("kubeconfig");
        let mut cluster = EmptyCluster {
            child,
            kubeconfig,
            _dir: dir,
        };
        let started = Instant::now();
        // `default` exists once the API server's own bootstrap has run.
        while !cluster
            .kubectl()
            .args(["get", "namespace", "default"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            let exited = cluster.child.try_wait().ok().flatten();
            if exited.is_some() || started.elapsed() > Duration::from_secs(180) {
                let log = std::fs::read_to_string(cluster._dir.path().join("kube-apiserver.log"))
                    .unwrap_or_default();
                let tail: String = log
                    .chars()
                    .rev()
                    .take(3000)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                panic!(
                    "the second kube-apiserver did not become ready within 180 s (exit: {exited:?}):\n{tail}"
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        cluster
    }

    /// `kubectl` against this API server.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(TestEnv::get().kube_bin.join("kubectl"));
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .arg("--request-timeout=30s");
        cmd
    }
}
