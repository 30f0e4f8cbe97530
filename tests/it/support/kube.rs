//! Kubernetes helpers for tests: clients for the test API server and a
//! namespace of their own.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::{TestEnv, unique_name};

/// The admin (system:masters) client configuration.
pub async fn admin_config(env: &TestEnv) -> Config {
    let kubeconfig = Kubeconfig::read_from(&env.kubeconfig)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", env.kubeconfig.display()));
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("the test kubeconfig is invalid")
}

pub async fn admin_client(env: &TestEnv) -> Client {
    Client::try_from(admin_config(env).await).expect("cannot build a Kubernetes client")
}

/// A client that authenticates with a bearer token only (no client certificate).
pub async fn token_client(env: &TestEnv, token: &str) -> Client {
    let mut config = admin_config(env).await;
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.to_string().into()),
        ..Default::default()
    };
    Client::try_from(config).expect("cannot build a token client")
}

/// A fresh namespace, deleted when the guard is dropped.
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let name = unique_name(prefix);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.clone());
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("cannot create namespace {name}: {e}"));
        TestNamespace {
            name,
            client: client.clone(),
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Best effort: the namespace dies with the environment anyway.
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let name = self.name.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = namespaces.delete(&name, &DeleteParams::background()).await;
            });
        }
    }
}

/// Installs (server-side applies) the checked-in MaterializedView CRD and
/// waits until it is Established. Idempotent; safe from parallel tests.
pub async fn install_matview_crd(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams};

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/materializedview.yaml");
    let text = std::fs::read_to_string(path).expect("crds/materializedview.yaml is missing");
    let crd: CustomResourceDefinition = serde_yaml_ng::from_str(&text).expect("CRD YAML parses");
    let name = crd.metadata.name.clone().expect("CRD has a name");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        &name,
        &PatchParams::apply("matview-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap_or_else(|e| panic!("the API server refused the CRD: {e}"));
    super::eventually(
        "the MaterializedView CRD to be Established",
        std::time::Duration::from_secs(30),
        || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let crd = crds.get(&name).await.ok()?;
                crd.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            }
        },
    )
    .await;
}

/// Binds a ServiceAccount in `namespace` to exactly the operator's RBAC from
/// config/rbac/operator.yaml (cluster-scoped names made unique), and writes a
/// kubeconfig that authenticates as it. Returns (kubeconfig path, user name).
pub async fn operator_identity(
    env: &TestEnv,
    client: &Client,
    namespace: &str,
    dir: &std::path::Path,
) -> (std::path::PathBuf, String) {
    component_identity(env, client, namespace, dir, "operator").await
}

/// Like [`operator_identity`], for the component whose RBAC is
/// config/rbac/<component>.yaml.
pub async fn component_identity(
    env: &TestEnv,
    client: &Client,
    namespace: &str,
    dir: &std::path::Path,
    component: &str,
) -> (std::path::PathBuf, String) {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    use serde::Deserialize;

    let manifest = format!(
        "{}/config/rbac/{component}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&manifest).expect("RBAC manifest");
    let unique = format!("matview-{component}-{namespace}");
    let mut account: Option<ServiceAccount> = None;
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = serde_yaml_ng::Value::deserialize(doc).expect("YAML");
        match value.get("kind").and_then(|k| k.as_str()) {
            Some("ServiceAccount") => {
                let mut sa: ServiceAccount =
                    serde_yaml_ng::from_value(value).expect("ServiceAccount");
                sa.metadata.namespace = Some(namespace.into());
                Api::<ServiceAccount>::namespaced(client.clone(), namespace)
                    .create(&PostParams::default(), &sa)
                    .await
                    .expect("create ServiceAccount");
                account = Some(sa);
            }
            Some("ClusterRole") => {
                let mut role: ClusterRole = serde_yaml_ng::from_value(value).expect("ClusterRole");
                role.metadata.name = Some(unique.clone());
                Api::<ClusterRole>::all(client.clone())
                    .create(&PostParams::default(), &role)
                    .await
                    .expect("create ClusterRole");
            }
            Some("ClusterRoleBinding") => {
                let mut binding: ClusterRoleBinding =
                    serde_yaml_ng::from_value(value).expect("ClusterRoleBinding");
                binding.metadata.name = Some(unique.clone());
                binding.role_ref.name = unique.clone();
                for s in binding.subjects.iter_mut().flatten() {
                    s.namespace = Some(namespace.into());
                }
                Api::<ClusterRoleBinding>::all(client.clone())
                    .create(&PostParams::default(), &binding)
                    .await
                    .expect("create ClusterRoleBinding");
            }
            other => panic!("unexpected kind {other:?} in {manifest}"),
        }
    }
    let sa_name = account
        .and_then(|a| a.metadata.name)
        .expect("the manifest has a ServiceAccount");
    let token = service_account_token(client, namespace, &sa_name).await;
    let path = dir.join(format!("{component}.kubeconfig"));
    write_token_kubeconfig(env, &token, &path);
    (path, format!("system:serviceaccount:{namespace}:{sa_name}"))
}

/// A fresh token of a ServiceAccount, or `None` when it cannot be had.
pub async fn try_service_account_token(
    client: &Client,
    namespace: &str,
    account: &str,
) -> Option<String> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .ok()?
        .status?
        .token
}

/// A fresh token of a ServiceAccount (TokenRequest, one hour).
pub async fn service_account_token(client: &Client, namespace: &str, account: &str) -> String {
    try_service_account_token(client, namespace, account)
        .await
        .unwrap_or_else(|| panic!("no token for ServiceAccount {namespace}/{account}"))
}

/// Writes a kubeconfig that reaches the test API server with `token`.
pub fn write_token_kubeconfig(env: &TestEnv, token: &str, path: &std::path::Path) {
    let admin = Kubeconfig::read_from(&env.kubeconfig).expect("admin kubeconfig");
    let cluster = admin.clusters[0].cluster.clone().expect("cluster");
    let server = cluster.server.clone().expect("server");
    let ca = cluster.certificate_authority.clone().expect("CA path");
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{server}\", certificate-authority: \"{ca}\"}}\nusers:\n- name: u\n  user: {{token: \"{token}\"}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
    );
    std::fs::write(path, config).expect("write kubeconfig");
}

/// Runs `test` in namespace `ns`, then deletes every MaterializedView of
/// the namespace and waits until they are gone, however `test` ended (a
/// panic is passed on after): an operator watching every namespace, later
/// in the suite, must not find the test's views.
pub async fn removing_views_after<F>(client: &Client, ns: &str, test: F)
where
    F: std::future::Future<Output = ()>,
{
    use futures::FutureExt;
    use kube::api::ListParams;
    use matview::crd::MaterializedView;

    let outcome = std::panic::AssertUnwindSafe(test).catch_unwind().await;
    let views: Api<MaterializedView> = Api::namespaced(client.clone(), ns);
    views
        .delete_collection(&DeleteParams::background(), &ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("cannot delete the views of {ns}: {e}"));
    super::eventually(
        &format!("every view of {ns} gone"),
        std::time::Duration::from_secs(180),
        || async {
            let left = views.list_metadata(&ListParams::default()).await.ok()?;
            left.items.is_empty().then_some(())
        },
    )
    .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
