//! Running `matview gateway` processes in tests, and reading through them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::projector::free_port;

/// A gateway process; killed when dropped.
pub struct GatewayProcess {
    child: Child,
    pub url: String,
    pub http: reqwest::Client,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An answer: status, the revision and positions headers, and the JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub revision: Option<String>,
    pub positions: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
}

/// Starts a gateway serving `namespace`, authenticated by `kubeconfig`.
pub fn start(kubeconfig: &Path, namespace: &str, auth: &str, log: &Path) -> GatewayProcess {
    let address = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_matview"))
        .args(["gateway", "--namespace", namespace, "--auth", auth])
        .args(["--listen", &address, "--log-format", "text"])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info,kube=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("gateway log"))
        .spawn()
        .expect("cannot start matview gateway");
    GatewayProcess {
        child,
        url: format!("http://{address}"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client"),
    }
}

impl GatewayProcess {
    /// GET `path` with an optional bearer token; `None` when nothing answered.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Option<Answer> {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.ok()?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (revision, positions) = (header("matview-revision"), header("matview-positions"));
        let content_type = header("content-type");
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Some(Answer {
            status,
            revision,
            positions,
            content_type,
            body,
        })
    }
}
