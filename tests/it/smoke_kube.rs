//! The API server is a real kube-apiserver: CRDs, custom objects, kubectl with
//! the written kubeconfig, and RBAC that actually refuses.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use serde_json::json;

use crate::support::kube::{TestNamespace, admin_client, token_client};
use crate::support::{TestEnv, eventually, run_ok, unique_name};

/// A throwaway CRD in a group of its own, so that runs never collide.
struct Widgets {
    group: String,
    resource: ApiResource,
}

async fn install_widget_crd(client: &Client) -> Widgets {
    let group = format!("{}.smoke.matview.dev", unique_name("g"));
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                }}}
            }]
        }
    }))
    .expect("CRD literal");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().unwrap_or_default();
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("cannot create CRD");
    eventually("the CRD to be Established", Duration::from_secs(30), || {
        let crds = crds.clone();
        let name = name.clone();
        async move {
            let crd = crds.get(&name).await.ok()?;
            let established = crd
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            established.then_some(())
        }
    })
    .await;
    let gvk = GroupVersionKind::gvk(&group, "v1", "Widget");
    Widgets {
        resource: ApiResource::from_gvk_with_plural(&gvk, "widgets"),
        group,
    }
}

fn widget(resource: &ApiResource, name: &str, size: i64) -> DynamicObject {
    let mut obj = DynamicObject::new(name, resource);
    obj.data = json!({"spec": {"size": size}});
    obj
}

#[tokio::test]
async fn crd_objects_round_trip_through_the_api_and_kubectl() {
    let env = TestEnv::get();
    let client = admin_client(env).await;
    let widgets = install_widget_crd(&client).await;
    let ns = TestNamespace::create(&client, "smoke-crd").await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &widgets.resource);

    for (name, size) in [("small", 1), ("large", 99)] {
        api.create(
            &PostParams::default(),
            &widget(&widgets.resource, name, size),
        )
        .await
        .expect("cannot create widget");
    }
    let listed = api.list(&ListParams::default()).await.expect("cannot list");
    let mut names: Vec<_> = listed
        .items
        .iter()
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["large", "small"]);
    let large = api.get("large").await.expect("cannot get");
    assert_eq!(large.data["spec"]["size"], 99);

    let out = run_ok(env.kubectl().args([
        "get",
        &format!("widgets.{}", widgets.group),
        "-n",
        &ns.name,
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.spec.size};{end}",
    ]));
    assert_eq!(out, "large=99;small=1;");

    api.delete("small", &DeleteParams::default())
        .await
        .expect("cannot delete");
    let after = api.list(&ListParams::default()).await.expect("cannot list");
    assert_eq!(after.items.len(), 1);
    let out = run_ok(env.kubectl().args([
        "get",
        &format!("widgets.{}", widgets.group),
        "-n",
        &ns.name,
        "-o",
        "name",
    ]));
    assert_eq!(out.trim(), format!("widget.{}/large", widgets.group));
}

#[tokio::test]
async fn rbac_refuses_a_service_account_until_a_role_allows_it() {
    let env = TestEnv::get();
    let admin = admin_client(env).await;
    let widgets = install_widget_crd(&admin).await;
    let ns = TestNamespace::create(&admin, "smoke-rbac").await;

    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns.name);
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some("reader".into());
    accounts
        .create(&PostParams::default(), &sa)
        .await
        .expect("cannot create SA");
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = accounts
        .create_token_request("reader", &PostParams::default(), &request)
        .await
        .expect("cannot request a token")
        .status
        .expect("token request without status")
        .token
        .expect("token request without a token");

    let as_reader = token_client(env, &token).await;
    let api: Api<DynamicObject> = Api::namespaced_with(as_reader, &ns.name, &widgets.resource);
    match api.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected 403 Forbidden without a role, got {other:?}"),
    }

    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "widget-reader"},
        "rules": [{"apiGroups": [widgets.group], "resources": ["widgets"], "verbs": ["get", "list"]}]
    }))
    .expect("role literal");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "widget-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "widget-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns.name}]
    }))
    .expect("binding literal");
    Api::<Role>::namespaced(admin.clone(), &ns.name)
        .create(&PostParams::default(), &role)
        .await
        .expect("cannot create role");
    Api::<RoleBinding>::namespaced(admin.clone(), &ns.name)
        .create(&PostParams::default(), &binding)
        .await
        .expect("cannot create binding");

    // The authorizer's cache follows the new binding within moments.
    eventually(
        "the role binding to allow listing",
        Duration::from_secs(20),
        || {
            let api = api.clone();
            async move { api.list(&ListParams::default()).await.ok() }
        },
    )
    .await;
    // Still least privilege: the role grants no create.
    let denied = api
        .create(&PostParams::default(), &widget(&widgets.resource, "w", 1))
        .await;
    match denied {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected 403 on create, got {other:?}"),
    }
}
