//! `matview diff` against the real API server: a view stored there, with
//! status written as the operator writes it (a serving, a pending and a
//! kept revision), and files that change it in each way.

use std::process::Command;

use kube::api::{Api, Patch, PatchParams, PostParams};
use matview::crd::{MaterializedView, Rollout, RolloutStrategy};
use matview::engine::revision;
use serde_json::json;

use crate::support::TestEnv;
use crate::support::kube::{TestNamespace, admin_client, install_matview_crd};
use crate::support::stack::example_view;

const NAME: &str = "items-by-price";

fn cheap_below(view: &MaterializedView, bound: i64) -> MaterializedView {
    let mut changed = view.clone();
    changed.spec.classify.rules[0].lt = Some(bound.into());
    changed.spec.classify.rules[1].gte = Some(bound.into());
    changed
}

/// `matview diff --exit-code` of `file` in `ns`: its exit status and output.
pub fn diff(env: &TestEnv, ns: &str, file: &MaterializedView) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("view.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(file).expect("yaml")).expect("written");
    let out = Command::new(env!("CARGO_BIN_EXE_matview"))
        .args(["diff", "--exit-code", "-n", ns, "-f"])
        .arg(&path)
        .env("KUBECONFIG", &env.kubeconfig)
        .output()
        .expect("cannot run matview diff");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "exit {code}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, text)
}

#[tokio::test]
async fn diff_names_each_change_and_what_it_does_to_what_runs() {
    let env = TestEnv::get();
    let client = admin_client(env).await;
    install_matview_crd(&client).await;
    let ns = TestNamespace::create(&client, "diff").await;
    let views: Api<MaterializedView> = Api::namespaced(client.clone(), &ns.name);
    let live = example_view(NAME, "orders");
    views
        .create(&PostParams::default(), &live)
        .await
        .expect("created");
    let rev1 = revision(&live.spec);
    let here = format!("{}/{NAME}", ns.name);

    let (code, out) = diff(env, &ns.name, &live);
    assert_eq!(
        (code, out.as_str()),
        (0, format!("{here}: no changes\n").as_str())
    );

    let new_rules = cheap_below(&live, 10);
    let rev2 = revision(&new_rules.spec);
    let (code, out) = diff(env, &ns.name, &new_rules);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("spec.classify.rules\n  live: ["), "{out}");
    assert!(
        out.contains(r#""lt":5"#) && out.contains(r#""lt":10"#),
        "{out}"
    );
    assert!(
        out.contains(&format!("rebuild — revision {rev2} builds")),
        "{out}"
    );
    assert!(out.contains("it serves once caught up"), "{out}");

    let mut manual = new_rules.clone();
    manual.spec.rollout = Some(Rollout {
        strategy: RolloutStrategy::Manual,
        ..Default::default()
    });
    let (_, out) = diff(env, &ns.name, &manual);
    assert!(out.contains("waits for promotion"), "{out}");

    // Status as the operator writes it: rev1 serves, rev2 pending and
    // caught up, rev0 kept from the last switch.
    let old_rules = cheap_below(&live, 3);
    let rev0 = revision(&old_rules.spec);
    let status = json!({"status": {"activeRevision": rev1, "rollout": {
        "pending": {"revision": rev2, "caughtUp": true, "lag": 0, "rows": 7},
        "previous": {"revision": rev0, "keptUntil": "2030-01-01T00:00:00Z"}}}});
    views
        .patch_status(NAME, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status written");

    let (_, out) = diff(env, &ns.name, &new_rules);
    assert!(
        out.contains(&format!("revision {rev2} is already pending (caught up")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "pending revision {rev2}: caught up true, lag 0, rows 7"
        )),
        "{out}"
    );
    let (_, out) = diff(env, &ns.name, &old_rules);
    assert!(
        out.contains(&format!("switch back — revision {rev0}")),
        "{out}"
    );

    let mut promote = live.clone();
    promote.spec.rollout = Some(Rollout {
        strategy: RolloutStrategy::Manual,
        promote: Some(rev2.clone()),
        ..Default::default()
    });
    let (_, out) = diff(env, &ns.name, &promote);
    assert!(
        out.contains(&format!("promotion — revision {rev2} serves next")),
        "{out}"
    );

    let mut scaled = live.clone();
    scaled.spec.replicas_per_shard += 1;
    let (_, out) = diff(env, &ns.name, &scaled);
    assert!(out.starts_with("spec.replicasPerShard\n"), "{out}");
    assert!(
        out.contains(&format!("pods of revision {rev1} are updated in place")),
        "{out}"
    );

    let mut kept_longer = live.clone();
    kept_longer.spec.rollout = Some(Rollout {
        keep_previous: Some("1h".into()),
        ..Default::default()
    });
    let (_, out) = diff(env, &ns.name, &kept_longer);
    assert!(out.contains("no rebuild, no pod changes"), "{out}");

    let mut other = live.clone();
    other.metadata.name = Some("not-there".into());
    let (code, out) = diff(env, &ns.name, &other);
    assert_eq!(code, 1);
    assert!(
        out.contains("not in the cluster — applying creates it"),
        "{out}"
    );
}
