//! Pod states read from pod status as Kubernetes writes it, and the
//! summaries made of them.

use serde_json::json;

use super::*;

fn pod(status: serde_json::Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": "shop-abc-s0-0"}, "status": status}))
        .expect("pod literal")
}

fn unschedulable() -> Pod {
    pod(json!({"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."}]}))
}

fn waiting(reason: &str, message: &str) -> Pod {
    pod(json!({"phase": "Pending", "containerStatuses": [{
        "name": "projector", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
        "state": {"waiting": {"reason": reason, "message": message}}}]}))
}

fn crash_looping() -> Pod {
    pod(json!({"phase": "Running", "containerStatuses": [{
        "name": "projector", "ready": false, "restartCount": 3, "image": "x", "imageID": "",
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
            "message": "{\"level\":\"INFO\"}\nerror: cannot create the Kafka consumer: Invalid value \"bogus\" for configuration property \"security.protocol\"\n"}}}]}))
}

fn running(ready: bool) -> Pod {
    pod(json!({"phase": "Running", "containerStatuses": [{
        "name": "projector", "ready": ready, "restartCount": 0, "image": "x", "imageID": "",
        "state": {"running": {}}}]}))
}

#[test]
fn pod_status_reads_as_a_state() {
    let table: Vec<(&str, Pod, Option<i64>, PodState)> = vec![
        (
            "unschedulable",
            unschedulable(),
            None,
            PodState::Unschedulable {
                message: "0/1 nodes are available: 1 Insufficient memory.".into(),
            },
        ),
        (
            "claim not bound",
            pod(json!({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims."}]})),
            None,
            PodState::VolumeClaimPending {
                message: "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims."
                    .into(),
            },
        ),
        (
            "image pull",
            waiting("ImagePullBackOff", "Back-off pulling image \"r.invalid/m:1\""),
            None,
            PodState::ImagePull {
                message: "Back-off pulling image \"r.invalid/m:1\"".into(),
            },
        ),
        (
            "crash loop: the last line of the logs' tail",
            crash_looping(),
            None,
            PodState::CrashLoop {
                exit_code: 1,
                restarts: 3,
                message: "error: cannot create the Kafka consumer: Invalid value \"bogus\" for configuration property \"security.protocol\"".into(),
                pod: "shop-abc-s0-0".into(),
            },
        ),
        (
            "config error",
            waiting("CreateContainerConfigError", "secret \"kafka\" not found"),
            None,
            PodState::Waiting {
                reason: "CreateContainerConfigError".into(),
                message: "secret \"kafka\" not found".into(),
            },
        ),
        (
            "creating",
            waiting("ContainerCreating", ""),
            None,
            PodState::Starting,
        ),
        (
            "running, lag known",
            running(false),
            Some(120),
            PodState::CatchingUp { lag: Some(120) },
        ),
        (
            "running, projector silent",
            running(false),
            None,
            PodState::Starting,
        ),
        ("ready", running(true), Some(0), PodState::Ready),
        ("no status yet", pod(json!({})), None, PodState::Starting),
    ];
    for (situation, pod, lag, expected) in table {
        assert_eq!(
            pod_state(&pod, lag, Timestamp::now()),
            expected,
            "{situation}"
        );
    }
}

#[test]
fn diagnoses_name_the_leading_cause_with_counts() {
    let unschedulable = pod_state(&unschedulable(), None, Timestamp::now());
    let crash = pod_state(&crash_looping(), None, Timestamp::now());
    let catching_up = |lag| PodState::CatchingUp { lag: Some(lag) };

    // (situation, pods, desired, reason, attention, message must contain)
    type Case<'a> = (&'a str, Vec<PodState>, i32, &'a str, bool, Vec<&'a str>);
    let table: Vec<Case> = vec![
        (
            "all unschedulable",
            vec![unschedulable.clone(); 4],
            4,
            "Unschedulable",
            true,
            vec![
                "4/4 Pending: 0/1 nodes are available: 1 Insufficient memory.",
                "spec.projector.resources",
            ],
        ),
        (
            "a crash outranks catching up, and the rest is mentioned",
            vec![
                crash.clone(),
                catching_up(10),
                catching_up(30),
                PodState::Ready,
            ],
            4,
            "CrashLoopBackOff",
            true,
            vec![
                "1/4 CrashLoopBackOff, exit code 1, restarted 3 times: error: cannot create the Kafka consumer",
                "kubectl logs shop-abc-s0-0 --previous",
                "; also 2/4 catching up",
            ],
        ),
        (
            "catching up: the furthest behind replica",
            vec![catching_up(10), catching_up(30)],
            2,
            "CatchingUp",
            false,
            vec!["2/2 catching up with the topic, up to 30 events behind"],
        ),
        (
            "pods not created",
            vec![PodState::Ready],
            3,
            "Starting",
            false,
            vec!["2/3 pods not created yet"],
        ),
        (
            "image pull outranks starting",
            vec![
                PodState::Starting,
                PodState::ImagePull {
                    message: "ErrImagePull".into(),
                },
            ],
            2,
            "ImagePullBackOff",
            true,
            vec![
                "1/2 cannot pull the projector image: ErrImagePull",
                "also 1/2 starting",
            ],
        ),
    ];
    for (situation, pods, desired, reason, attention, parts) in table {
        let d = diagnose(&pods, desired).unwrap_or_else(|| panic!("{situation}: no diagnosis"));
        assert_eq!(d.reason, reason, "{situation}: {}", d.message);
        assert_eq!(d.needs_attention, attention, "{situation}");
        for part in parts {
            assert!(
                d.message.contains(part),
                "{situation}: {:?} lacks {part:?}",
                d.message
            );
        }
    }
    assert_eq!(diagnose(&[PodState::Ready, PodState::Ready], 2), None);
}

#[test]
fn long_messages_are_cut_on_a_character_boundary() {
    let long = "é".repeat(1000);
    let cut = detail(&long);
    assert_eq!(cut.chars().count(), MAX_DETAIL + 1);
    assert!(cut.ends_with('…'));
}

/// A pod created `age` seconds before now, with `spec` and `status`.
fn pod_aged(age: i64, spec: serde_json::Value, status: serde_json::Value) -> (Pod, Timestamp) {
    let now = Timestamp::now();
    let created = now
        .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(age))
        .expect("time");
    let pod = serde_json::from_value(json!({
        "metadata": {"name": "shop-abc-s0-0", "creationTimestamp": created.to_string()},
        "spec": spec, "status": status}))
    .expect("pod literal");
    (pod, now)
}

#[test]
fn a_pod_no_scheduler_answers_is_pending_not_starting_after_a_grace_period() {
    let containers = json!({"containers": [{"name": "projector"}]});
    // Fresh: a scheduler may still answer.
    let (fresh, now) = pod_aged(10, containers.clone(), json!({"phase": "Pending"}));
    assert_eq!(pod_state(&fresh, None, now), PodState::Starting);
    // Four minutes and nobody answered: say so.
    let (stale, now) = pod_aged(240, containers.clone(), json!({"phase": "Pending"}));
    let state = pod_state(&stale, None, now);
    assert!(
        matches!(&state, PodState::NotScheduled { waited, scheduler }
            if waited.as_secs() >= 240 && scheduler == "default-scheduler"),
        "{state:?}"
    );
    let diagnosis = diagnose(&vec![state; 4], 4).expect("not ready");
    assert_eq!(diagnosis.reason, "NotScheduled");
    assert!(diagnosis.needs_attention);
    for part in [
        "4/4 Pending, not scheduled for 24",
        "no verdict from a scheduler",
        "default-scheduler runs",
        "kubectl get nodes",
    ] {
        assert!(
            diagnosis.message.contains(part),
            "{part}: {}",
            diagnosis.message
        );
    }
    // A scheduler of its own is named.
    let custom = json!({"schedulerName": "batch-scheduler", "containers": [{"name": "projector"}]});
    let (pod, now) = pod_aged(240, custom, json!({"phase": "Pending"}));
    assert!(matches!(pod_state(&pod, None, now),
        PodState::NotScheduled { scheduler, .. } if scheduler == "batch-scheduler"));
    // Bound to a node, or with any scheduler verdict: not this.
    let bound = json!({"nodeName": "n1", "containers": [{"name": "projector"}]});
    let (pod, now) = pod_aged(240, bound, json!({"phase": "Pending"}));
    assert_eq!(pod_state(&pod, None, now), PodState::Starting);
    let (pod, now) = pod_aged(
        240,
        containers,
        json!({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "True"}]}),
    );
    assert_eq!(pod_state(&pod, None, now), PodState::Starting);
}
