//! The process kubelet's status writing: what the scheduler refuses, an
//! image it cannot pull, and a container's state (running, ready, exited and
//! backing off, with the last exit's code and log tail).

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::{FAST_EXIT, Loop, Running, Shown, TERMINATION_LOG_BYTES};

impl Loop {
    /// The scheduler's part: a pod the node cannot take stays Pending with
    /// PodScheduled=False, reason Unschedulable (written once).
    pub(super) async fn refuse_to_schedule(&self, api: &Api<Pod>, pod: &Pod) -> bool {
        let labels = BTreeMap::from([("kubernetes.io/hostname".to_string(), self.node.clone())]);
        let refusal = match self.unbound_claim(pod).await {
            Some(message) => Some(message),
            None => crate::support::node_rules::unschedulable(pod, &labels),
        };
        let Some(message) = refusal else {
            return false;
        };
        let said = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "PodScheduled" && c.status == "False")
            });
        if !said {
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            let status = json!({"status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": message, "lastTransitionTime": now}]}});
            write_status(api, &pod.name_any(), &status).await;
        }
        true
    }

    /// A claim of the pod that no volume can bind: its StorageClass does not
    /// exist (here no class provisions anything, and the test environment's
    /// claims without a class count as bound by their local directory).
    async fn unbound_claim(&self, pod: &Pod) -> Option<String> {
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &self.namespace);
        let classes: Api<StorageClass> = Api::all(self.client.clone());
        for volume in pod.spec.as_ref()?.volumes.iter().flatten() {
            let Some(claim) = &volume.persistent_volume_claim else {
                continue;
            };
            let Ok(claim) = claims.get(&claim.claim_name).await else {
                continue;
            };
            let class = claim
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.clone());
            if let Some(class) = class
                && matches!(classes.get_opt(&class).await, Ok(None))
            {
                return Some(crate::support::node_rules::UNBOUND_CLAIMS.to_string());
            }
        }
        None
    }

    /// A pod whose image cannot be pulled waits in ImagePullBackOff (written once).
    pub(super) async fn refuse_to_pull(
        &self,
        api: &Api<Pod>,
        pod: &Pod,
        container: &Container,
    ) -> bool {
        let image = container.image.clone().unwrap_or_default();
        let Some(message) = crate::support::node_rules::unpullable(&image) else {
            return false;
        };
        let said = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|c| !c.is_empty());
        if !said {
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            let status = json!({"status": {
                "phase": "Pending", "hostIP": "127.0.0.1", "startTime": now,
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": now}],
                "containerStatuses": [{"name": container.name, "ready": false, "started": false, "restartCount": 0,
                    "image": image, "imageID": "",
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": message}}}],
            }});
            write_status(api, &pod.name_any(), &status).await;
        }
        true
    }

    /// Writes the pod's status when what it shows changed.
    pub(super) async fn report(&self, api: &Api<Pod>, name: &str, ip: &str) {
        let (shown, last_exit) = {
            let Ok(pods) = self.pods.lock() else { return };
            let Some(r) = pods.get(name) else { return };
            let shown = if r.exited_at.is_some() {
                Shown::CrashLoop {
                    restarts: r.restarts,
                }
            } else {
                Shown::Running {
                    ready: r.ready,
                    restarts: r.restarts,
                }
            };
            if r.reported.as_ref() == Some(&shown) {
                return;
            }
            (shown, r.last_exit.clone())
        };
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let last_state = match &last_exit {
            Some((code, message)) => json!({"terminated": {"exitCode": code, "reason": "Error",
                "message": message, "finishedAt": now}}),
            None => json!({}),
        };
        let (ready, restarts, state) = match &shown {
            Shown::Running { ready, restarts } => {
                (*ready, *restarts, json!({"running": {"startedAt": now}}))
            }
            Shown::CrashLoop { restarts } => (
                false,
                *restarts,
                json!({"waiting": {"reason": "CrashLoopBackOff",
                    "message": format!("back-off restarting failed container projector in pod {name}")}}),
            ),
        };
        let flag = if ready { "True" } else { "False" };
        let status = json!({"status": {
            "phase": "Running", "hostIP": "127.0.0.1", "podIP": ip, "podIPs": [{"ip": ip}], "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
                {"type": "Ready", "status": flag, "lastTransitionTime": now},
            ],
            "containerStatuses": [{"name": "projector", "ready": ready, "started": matches!(shown, Shown::Running { .. }),
                                   "restartCount": restarts, "image": "matview", "imageID": "",
                                   "state": state, "lastState": last_state}],
        }});
        let written = api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await;
        if written.is_ok()
            && let Ok(mut pods) = self.pods.lock()
            && let Some(r) = pods.get_mut(name)
        {
            r.reported = Some(shown);
        }
    }
}

/// A merge patch of a pod's status; a failure is retried by the next sync.
async fn write_status(api: &Api<Pod>, name: &str, status: &serde_json::Value) {
    let _ = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await;
}

/// Records an exit: its code, the log's tail as the termination message
/// (FallbackToLogsOnError), and whether it came fast enough to back off more.
pub(super) fn exited(r: &mut Running, exit: std::process::ExitStatus) {
    use std::os::unix::process::ExitStatusExt;
    r.exited_at = Some(Instant::now());
    r.fast_exits = if r.started_at.elapsed() < FAST_EXIT {
        r.fast_exits + 1
    } else {
        0
    };
    let code = exit
        .code()
        .or_else(|| exit.signal().map(|s| 128 + s))
        .unwrap_or(1);
    let log = std::fs::read(&r.log).unwrap_or_default();
    let tail = &log[log.len().saturating_sub(TERMINATION_LOG_BYTES)..];
    r.last_exit = Some((code, String::from_utf8_lossy(tail).into_owned()));
}
