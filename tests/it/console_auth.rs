//! The console against a gateway that asks for tokens (`--auth kubernetes`,
//! the test API server's TokenReview and SubjectAccessReview): without a
//! token the page says one is needed; with a token that may list views but
//! not read them it says which permission is missing; a view reader sees
//! the view, and the dead-letter panel alone says it needs
//! `materializedviews/deadletters`. No token ever appears in a URL.
//!
//! The view has no projectors (no operator runs here): authorization is
//! decided before a view is routed. It is deleted, and the test waits
//! until it is gone, however the test ends.

use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Resource};
use matview::crd::MaterializedView;
use serde_json::{Value, json};

use crate::console::{browse, shots_dir};
use crate::support::kube::{TestNamespace, service_account_token};
use crate::support::{TestEnv, eventually};

/// A ServiceAccount bound (in `ns`) to `role`; its token.
async fn account(client: &Client, ns: &str, name: &str, role: (&str, &str)) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("literal");
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("ServiceAccount");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role.0, "name": role.1},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
    }))
    .expect("literal");
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("RoleBinding");
    service_account_token(client, ns, name).await
}

/// A ClusterRole from `config/rbac/<file>`, under a name unique to `ns`.
async fn cluster_role(client: &Client, file: &str, ns: &str) -> String {
    let path = format!("{}/config/rbac/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("RBAC manifest");
    let mut role: ClusterRole = serde_yaml_ng::from_str(&text).expect("ClusterRole");
    let name = format!("{}-{ns}", role.meta().name.clone().unwrap_or_default());
    role.metadata.name = Some(name.clone());
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("ClusterRole");
    name
}

#[tokio::test]
async fn the_console_says_what_a_token_lacks_and_never_puts_it_in_a_url() {
    let env = TestEnv::get();
    let client = crate::support::kube::admin_client(env).await;
    crate::support::kube::install_matview_crd(&client).await;
    let ns = TestNamespace::create(&client, "console-auth").await;
    // The ClusterRoles go with the views, however the test ends.
    let roles = async {
        for role in ["matview-view-reader", "matview-dead-letter-reader"] {
            let _ = Api::<ClusterRole>::all(client.clone())
                .delete(&format!("{role}-{}", ns.name), &DeleteParams::default())
                .await;
        }
    };
    let checked = std::panic::AssertUnwindSafe(check_the_messages(env, &client, &ns.name));
    crate::support::kube::removing_views_after(&client, &ns.name, async {
        let outcome = checked.catch_unwind().await;
        roles.await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    })
    .await;
}

async fn check_the_messages(env: &TestEnv, client: &Client, ns: &str) {
    let views: Api<MaterializedView> = Api::namespaced(client.clone(), ns);
    let view = crate::support::stack::example_view("shop", "orders");
    views
        .create(&PostParams::default(), &view)
        .await
        .expect("view");
    // May list views' data, not read it.
    let lister: Role = serde_json::from_value(json!({
        "metadata": {"name": "lister"},
        "rules": [{"apiGroups": ["matview.dev"], "resources": ["materializedviews/data"], "verbs": ["list"]}],
    }))
    .expect("literal");
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &lister)
        .await
        .expect("Role");
    let lister = account(client, ns, "lister", ("Role", "lister")).await;
    let reader_role = cluster_role(client, "view-reader.yaml", ns).await;
    let reader = account(client, ns, "reader", ("ClusterRole", &reader_role)).await;
    let letters_role = cluster_role(client, "dead-letter-reader.yaml", ns).await;
    let letters = account(client, ns, "letters", ("ClusterRole", &letters_role)).await;

    let work = tempfile::tempdir().expect("tempdir");
    let log = work.path().join("gateway.log");
    let gateway = crate::support::gateway::start(&env.kubeconfig, ns, "kubernetes", &log);
    let list = "/v1/views";
    eventually(
        "the gateway lists the view to its reader",
        Duration::from_secs(60),
        || async {
            let answer = gateway.get(list, Some(&reader)).await?;
            (answer.body["views"].as_array()?.len() == 1).then_some(())
        },
    )
    .await;

    // The API: dead letters are their own permission.
    let path = format!("/v1/namespaces/{ns}/views/shop/dead-letters");
    let status_of = |answer: Option<crate::support::gateway::Answer>| {
        let answer = answer.expect("the gateway answers");
        (answer.status, answer.body)
    };
    let (status, body) = status_of(gateway.get(&path, None).await);
    assert_eq!(status, 401, "{body}");
    let (status, body) = status_of(gateway.get(&path, Some(&reader)).await);
    assert_eq!(
        status, 403,
        "a view reader may not read dead letters: {body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("materializedviews/deadletters")
                && d.contains("matview-dead-letter-reader")),
        "{body}"
    );
    // Granted: authorization passes, and the view has no projector to ask.
    let (status, body) = status_of(gateway.get(&path, Some(&letters)).await);
    assert_eq!(status, 503, "{body}");

    let result: Value = browse(
        "console_auth.mjs",
        &[
            format!("{}/", gateway.url),
            lister.clone(),
            reader.clone(),
            shots_dir().display().to_string(),
        ],
        &log,
    )
    .await;
    let said = |field: &str| result[field].as_str().unwrap_or_default().to_string();
    assert!(said("unauthorized").contains("bearer token"), "{result}");
    assert!(
        said("forbidden").contains("may not")
            && said("forbidden").contains("materializedviews/data"),
        "{result}"
    );
    assert!(
        said("deadLetters").contains("materializedviews/deadletters"),
        "{result}"
    );
    assert_eq!(result["readerAuthMessage"], Value::Null, "{result}");
    assert_eq!(result["problems"], json!([]), "{result}");
    let urls = result["urls"].as_array().expect("urls");
    assert!(!urls.is_empty(), "{result}");
    for token in [&lister, &reader] {
        assert!(
            urls.iter()
                .all(|u| !u.as_str().unwrap_or_default().contains(token.as_str())),
            "a token in a URL: {result}"
        );
    }
    assert_eq!(
        result["unauthenticatedApiCalls"],
        json!([]),
        "with a token set, every API call carries it: {result}"
    );
}
