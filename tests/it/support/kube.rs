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
    let crd: CustomResourceDefinition = serde_yaml::from_str(&text).expect("CRD YAML parses");
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
