//! The process kubelet's translation of a Pod into a local process: its
//! volumes as directories (a claim's data kept across restarts), its
//! ServiceAccount as a kubeconfig, its container's args and env as a
//! kubelet would expand them, with mount paths and wildcard binds rewritten
//! to the pod's directory and address.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::ResourceExt;
use kube::api::Api;

use super::Loop;

/// Kubernetes' $(VAR) expansion in args.
fn expand(arg: &str, env: &[(String, String)]) -> String {
    let mut out = arg.to_string();
    for (k, v) in env {
        out = out.replace(&format!("$({k})"), v);
    }
    out
}

impl Loop {
    pub(super) async fn materialize(&self, pod: &Pod, dir: &Path) -> BTreeMap<String, PathBuf> {
        let mut mounts = BTreeMap::new();
        let spec = pod.spec.clone().unwrap_or_default();
        for volume in spec.volumes.iter().flatten() {
            let path = if let Some(claim) = &volume.persistent_volume_claim {
                // Like a persistent volume: survives the pod, per claim.
                self.work.join("volumes").join(&claim.claim_name)
            } else {
                dir.join(&volume.name)
            };
            let _ = std::fs::create_dir_all(&path);
            if let Some(cm) = &volume.config_map
                && let Ok(map) = Api::<ConfigMap>::namespaced(self.client.clone(), &self.namespace)
                    .get(&cm.name)
                    .await
            {
                for (k, v) in map.data.unwrap_or_default() {
                    let _ = std::fs::write(path.join(k), v);
                }
            }
            if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone())
                && let Ok(secret) = Api::<Secret>::namespaced(self.client.clone(), &self.namespace)
                    .get(&name)
                    .await
            {
                for (k, v) in secret.data.unwrap_or_default() {
                    let _ = std::fs::write(path.join(k), v.0);
                }
            }
            mounts.insert(volume.name.clone(), path);
        }
        mounts
    }

    /// What a pod's process authenticates as: its ServiceAccount's token
    /// (a kubelet mounts it; here a kubeconfig carries it), or nothing.
    pub(super) async fn identity(&self, pod: &Pod, dir: &Path) -> String {
        let spec = pod.spec.clone().unwrap_or_default();
        let account = spec
            .service_account_name
            .unwrap_or_else(|| "default".into());
        if spec.automount_service_account_token == Some(false) {
            return String::new();
        }
        let Ok(token) = tokio::time::timeout(
            Duration::from_secs(10),
            crate::support::kube::try_service_account_token(
                &self.client,
                &self.namespace,
                &account,
            ),
        )
        .await
        .map_err(|_| ())
        .and_then(|t| t.ok_or(())) else {
            return String::new();
        };
        let path = dir.join("serviceaccount.kubeconfig");
        let _ = std::fs::create_dir_all(dir);
        crate::support::kube::write_token_kubeconfig(crate::support::TestEnv::get(), &token, &path);
        path.display().to_string()
    }

    pub(super) fn command(
        &self,
        container: &Container,
        pod: &Pod,
        ip: &str,
        mounts: &BTreeMap<String, PathBuf>,
    ) -> (PathBuf, Vec<String>, Vec<(String, String)>) {
        let mut env = Vec::new();
        for e in container.env.iter().flatten() {
            let value = match (
                &e.value,
                e.value_from.as_ref().and_then(|f| f.field_ref.as_ref()),
            ) {
                (Some(v), _) => v.clone(),
                (None, Some(field)) => match field.field_path.as_str() {
                    "metadata.name" => pod.name_any(),
                    "metadata.namespace" => self.namespace.clone(),
                    "status.podIP" => ip.to_string(),
                    "spec.nodeName" => self.node.clone(),
                    // metadata.labels['<key>'], as a kubelet expands it.
                    path => path
                        .strip_prefix("metadata.labels['")
                        .and_then(|rest| rest.strip_suffix("']"))
                        .and_then(|key| pod.labels().get(key).cloned())
                        .unwrap_or_default(),
                },
                _ => String::new(),
            };
            env.push((e.name.clone(), value));
        }
        let paths: Vec<(String, PathBuf)> = container
            .volume_mounts
            .iter()
            .flatten()
            .filter_map(|m| {
                mounts
                    .get(&m.name)
                    .map(|p| (m.mount_path.clone(), p.clone()))
            })
            .collect();
        let rewrite = |arg: String| {
            for (mount, local) in &paths {
                if let Some(rest) = arg.strip_prefix(mount.as_str()) {
                    return format!("{}{rest}", local.display());
                }
            }
            arg
        };
        let mut argv: Vec<String> = container.command.clone().unwrap_or_default();
        argv.extend(container.args.clone().unwrap_or_default());
        if container.command.is_some() && !argv.is_empty() {
            argv.remove(0); // the image's program is our binary
        }
        // A pod's own network namespace, emulated: wildcard binds go to its address.
        let args = argv
            .into_iter()
            .map(|a| rewrite(expand(&a, &env)).replace("0.0.0.0:", &format!("{ip}:")))
            .collect();
        (self.binary.clone(), args, env)
    }
}
