//! Why projectors are not ready, in words: each pod's state read from its
//! status (and its projector's lag), summarized with counts, the most
//! important cause first. Pure, so the rules have a table test.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;

/// Longest detail quoted from a scheduler, kubelet or container message.
const MAX_DETAIL: usize = 300;
/// A pod no scheduler has answered for this long is reported as such: a
/// scheduler binds or refuses a pod within seconds when one runs.
pub const NOT_SCHEDULED_GRACE: Duration = Duration::from_secs(60);

/// What one projector pod is doing, most serious first (the order is the
/// order of importance).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PodState {
    /// The scheduler found no node for it.
    Unschedulable {
        message: String,
    },
    /// Its volume claim is not bound (no volume, or no provisioner).
    VolumeClaimPending {
        message: String,
    },
    /// Pending with no node and no verdict from any scheduler for longer
    /// than [`NOT_SCHEDULED_GRACE`]: no scheduler runs, or it has no nodes.
    NotScheduled {
        waited: Duration,
        scheduler: String,
    },
    /// The kubelet cannot pull the image.
    ImagePull {
        message: String,
    },
    /// The container exits and the kubelet waits before starting it again.
    CrashLoop {
        exit_code: i32,
        restarts: i32,
        /// Last line of the termination message (the projector's error).
        message: String,
        pod: String,
    },
    /// Waiting for another reason the kubelet names (e.g. CreateContainerConfigError).
    Waiting {
        reason: String,
        message: String,
    },
    /// Running, not ready: reading the topic up to its end.
    CatchingUp {
        lag: Option<i64>,
    },
    /// Scheduled, not running yet (pulling, creating, starting).
    Starting,
    Ready,
}

impl PodState {
    /// Reason word used in conditions when this is the leading cause.
    fn reason(&self) -> &'static str {
        match self {
            PodState::Unschedulable { .. } => "Unschedulable",
            PodState::VolumeClaimPending { .. } => "VolumeClaimPending",
            PodState::NotScheduled { .. } => "NotScheduled",
            PodState::ImagePull { .. } => "ImagePullBackOff",
            PodState::CrashLoop { .. } => "CrashLoopBackOff",
            PodState::Waiting { .. } => "ContainerWaiting",
            PodState::CatchingUp { .. } => "CatchingUp",
            PodState::Starting => "Starting",
            PodState::Ready => "Ready",
        }
    }

    /// Whether this needs a person: a Warning Event, not just patience.
    fn needs_attention(&self) -> bool {
        !matches!(
            self,
            PodState::CatchingUp { .. } | PodState::Starting | PodState::Ready
        )
    }

    /// Short label for "also …" lists.
    fn label(&self) -> String {
        match self {
            PodState::Unschedulable { .. }
            | PodState::VolumeClaimPending { .. }
            | PodState::NotScheduled { .. } => "Pending".into(),
            PodState::ImagePull { .. } => "ImagePullBackOff".into(),
            PodState::CrashLoop { .. } => "CrashLoopBackOff".into(),
            PodState::Waiting { reason, .. } => reason.clone(),
            PodState::CatchingUp { .. } => "catching up".into(),
            PodState::Starting => "starting".into(),
            PodState::Ready => "ready".into(),
        }
    }

    fn same_kind(&self, other: &PodState) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// The state of one projector pod at `now`; `lag` is what its projector
/// reports, if it answered.
pub fn pod_state(pod: &Pod, lag: Option<i64>, now: Timestamp) -> PodState {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let Some(status) = pod.status.as_ref() else {
        return PodState::Starting;
    };
    let unscheduled = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    if let Some(condition) = unscheduled {
        let message = condition.message.clone().unwrap_or_default();
        // The scheduler's preemption postscript says nothing to fix.
        let message = message.split(" preemption:").next().unwrap_or_default();
        // The scheduler's words for claims that are not bound.
        return if message.contains("PersistentVolumeClaim") {
            PodState::VolumeClaimPending {
                message: detail(message),
            }
        } else {
            PodState::Unschedulable {
                message: detail(message),
            }
        };
    }
    if let Some(waited) = unanswered_for(pod, now) {
        let scheduler = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.clone())
            .unwrap_or_else(|| "default-scheduler".into());
        return PodState::NotScheduled { waited, scheduler };
    }
    match status.container_statuses.iter().flatten().next() {
        Some(container) => container_state(container, &name, lag),
        None => PodState::Starting,
    }
}

/// How long a pod has waited for a scheduler that never answered: no node,
/// no PodScheduled condition at all, older than the grace period.
fn unanswered_for(pod: &Pod, now: Timestamp) -> Option<Duration> {
    let bound = pod.spec.as_ref().is_some_and(|s| s.node_name.is_some());
    let verdict = pod
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "PodScheduled");
    if bound || verdict {
        return None;
    }
    let created = pod.metadata.creation_timestamp.as_ref()?;
    let waited = Duration::try_from(now.duration_since(created.0)).ok()?;
    (waited > NOT_SCHEDULED_GRACE).then_some(waited)
}

fn container_state(container: &ContainerStatus, pod: &str, lag: Option<i64>) -> PodState {
    let state = container.state.clone().unwrap_or_default();
    let last_exit = container
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .or(state.terminated.as_ref());
    let crash = |restarts: i32| PodState::CrashLoop {
        exit_code: last_exit.map_or(0, |t| t.exit_code),
        restarts,
        message: last_exit
            .map(|t| last_line(t.message.as_deref().unwrap_or_default()))
            .unwrap_or_default(),
        pod: pod.to_string(),
    };
    if let Some(waiting) = &state.waiting {
        let reason = waiting.reason.clone().unwrap_or_default();
        let message = detail(waiting.message.as_deref().unwrap_or_default());
        return match reason.as_str() {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
                PodState::ImagePull {
                    message: if message.is_empty() { reason } else { message },
                }
            }
            "CrashLoopBackOff" => crash(container.restart_count),
            "" | "ContainerCreating" | "PodInitializing" => PodState::Starting,
            _ => PodState::Waiting { reason, message },
        };
    }
    if let Some(terminated) = &state.terminated
        && terminated.exit_code != 0
    {
        return crash(container.restart_count);
    }
    if container.ready {
        return PodState::Ready;
    }
    if state.running.is_some() && lag.is_some() {
        return PodState::CatchingUp { lag };
    }
    PodState::Starting
}

/// Why a revision's projectors are not all ready, for conditions and Events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// One CamelCase word for the leading cause.
    pub reason: &'static str,
    /// The leading cause with counts, then the others briefly.
    pub message: String,
    /// The leading cause needs a person (Warning), not just time.
    pub needs_attention: bool,
}

/// The causes among `pods` (name, state), counted against `desired`
/// replicas; `None` when every desired pod is ready.
pub fn diagnose(pods: &[PodState], desired: i32) -> Option<Diagnosis> {
    let mut unready: Vec<&PodState> = pods.iter().filter(|s| **s != PodState::Ready).collect();
    unready.sort();
    let missing = desired - pods.len() as i32;
    let Some(first) = unready.first() else {
        return (missing > 0).then(|| Diagnosis {
            reason: "Starting",
            message: format!("{missing}/{desired} pods not created yet"),
            needs_attention: false,
        });
    };
    let mut kinds: Vec<(&PodState, usize)> = Vec::new();
    for state in &unready {
        match kinds.iter_mut().find(|(k, _)| k.same_kind(state)) {
            Some((_, n)) => *n += 1,
            None => kinds.push((state, 1)),
        }
    }
    let mut message = describe(first, &unready, kinds[0].1, desired);
    let others: Vec<String> = kinds[1..]
        .iter()
        .map(|(state, n)| format!("{n}/{desired} {}", state.label()))
        .collect();
    if !others.is_empty() {
        message.push_str(&format!("; also {}", others.join(", ")));
    }
    Some(Diagnosis {
        reason: first.reason(),
        message,
        needs_attention: first.needs_attention(),
    })
}

/// The leading cause in a sentence, with what to check.
fn describe(first: &PodState, unready: &[&PodState], count: usize, desired: i32) -> String {
    let n = format!("{count}/{desired}");
    match first {
        PodState::Unschedulable { message } => format!(
            "{n} Pending: {message} (check spec.projector.resources, nodeSelector, tolerations and affinity)"
        ),
        PodState::VolumeClaimPending { message } => format!(
            "{n} Pending: {message} (check spec.projector.storageClassName and that the cluster provisions volumes for it)"
        ),
        PodState::NotScheduled { scheduler, .. } => {
            let longest = unready
                .iter()
                .filter_map(|s| match s {
                    PodState::NotScheduled { waited, .. } => Some(waited.as_secs()),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            format!(
                "{n} Pending, not scheduled for {longest} s, with no verdict from a scheduler (check that {scheduler} runs and that the cluster has nodes: kubectl get nodes)"
            )
        }
        PodState::ImagePull { message } => format!(
            "{n} cannot pull the projector image: {message} (check the operator's --projector-image and the registry's access)"
        ),
        PodState::CrashLoop {
            exit_code,
            restarts,
            message,
            pod,
        } => {
            let said = if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            };
            let restarted = match restarts {
                0 => String::new(),
                1 => ", restarted once".into(),
                n => format!(", restarted {n} times"),
            };
            format!(
                "{n} CrashLoopBackOff, exit code {exit_code}{restarted}{said} (kubectl logs {pod} --previous)"
            )
        }
        PodState::Waiting { reason, message } => format!("{n} {reason}: {message}"),
        PodState::CatchingUp { .. } => {
            // Replicas of one shard read the same partitions: the furthest behind, not a sum.
            let lag = unready
                .iter()
                .filter_map(|s| match s {
                    PodState::CatchingUp { lag } => *lag,
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            format!("{n} catching up with the topic, up to {lag} events behind")
        }
        PodState::Starting => format!("{n} starting"),
        PodState::Ready => format!("{n} ready"),
    }
}

/// A message cut to a readable length, on a character boundary.
fn detail(message: &str) -> String {
    let message = message.trim();
    match message.char_indices().nth(MAX_DETAIL) {
        Some((at, _)) => format!("{}…", &message[..at]),
        None => message.to_string(),
    }
}

/// The last non-empty line: with FallbackToLogsOnError the message is the
/// log's tail, and a projector's last line is its error.
fn last_line(message: &str) -> String {
    detail(
        message
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
#[path = "diagnosis_tests.rs"]
mod tests;
