//! The console's list of every view, at 1,000 views: a namespace of the test
//! cluster holds them (no projectors: each is listed as `starting`), a
//! gateway serves them, headless Chromium lists them all with their health,
//! filters to one and sorts descending. The load time is printed (a figure
//! for the docs, not a deadline).
//!
//! The views are deleted, and the test waits until they are gone, however
//! it ends: an operator watching every namespace (the README's cluster quick
//! start, later in the suite) must not find a thousand leftovers.

use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::api::PostParams;
use matview::crd::MaterializedView;
use serde_json::Value;

use crate::console::{browse, shots_dir};
use crate::support::{TestEnv, eventually};

const VIEWS: usize = 1_000;

#[tokio::test]
async fn the_console_lists_a_thousand_views() {
    let env = TestEnv::get();
    let client = crate::support::kube::admin_client(env).await;
    crate::support::kube::install_matview_crd(&client).await;
    let ns = crate::support::kube::TestNamespace::create(&client, "console-many").await;
    let views: Api<MaterializedView> = Api::namespaced(client.clone(), &ns.name);
    crate::support::kube::removing_views_after(
        &client,
        &ns.name,
        list_a_thousand_views(env, &views, &ns.name),
    )
    .await;
}

async fn list_a_thousand_views(env: &TestEnv, views: &Api<MaterializedView>, namespace: &str) {
    let names: Vec<String> = (0..VIEWS).map(|i| format!("view-{i:04}")).collect();
    futures::stream::iter(names.iter())
        .map(|name| {
            let views = views.clone();
            async move {
                let view = crate::support::stack::example_view(name, "orders");
                views
                    .create(&PostParams::default(), &view)
                    .await
                    .unwrap_or_else(|e| panic!("cannot create {name}: {e}"));
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;

    let work = tempfile::tempdir().expect("tempdir");
    let log = work.path().join("gateway.log");
    let gateway = crate::support::gateway::start(&env.kubeconfig, namespace, "none", &log);
    let list = format!("{}/v1/views", gateway.url);
    eventually(
        "the gateway lists every view",
        Duration::from_secs(120),
        || async {
            let body: Value = reqwest::get(&list).await.ok()?.json().await.ok()?;
            (body["views"].as_array()?.len() == VIEWS).then_some(())
        },
    )
    .await;
    let shot = shots_dir().join("console-1000-views.png");
    let last = names.last().expect("names").clone();
    let result = browse(
        "many_views.mjs",
        &[
            format!("{}/", gateway.url),
            VIEWS.to_string(),
            last,
            shot.display().to_string(),
        ],
        &log,
    )
    .await;
    assert_eq!(
        result["healths"],
        serde_json::json!(["starting"]),
        "{result}"
    );
    assert_eq!(result["sortOrder"], "descending", "{result}");
    assert!(result["listedMs"].as_u64().is_some(), "{result}");
    eprintln!(
        "{VIEWS} views listed {} ms after navigation; filtered to one in {} ms",
        result["listedMs"], result["filterMs"]
    );
}
