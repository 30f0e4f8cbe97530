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
impl GatewayProcess {
    /// Whether the process is still the one started (it has not exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

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

/// One server-sent event from the gateway.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

/// Events of one stream connection; `None` from `recv` means it ended.
pub type EventReceiver = tokio::sync::mpsc::UnboundedReceiver<SseEvent>;

impl GatewayProcess {
    /// Opens a live stream at `path`; panics unless the gateway answers 200.
    pub async fn open_stream(
        &self,
        path: &str,
        token: Option<&str>,
        last_event_id: Option<&str>,
    ) -> EventReceiver {
        open_stream_at(&self.url, path, token, last_event_id).await
    }
}

/// Opens a live stream at `base` + `path`; panics unless it answers 200.
pub async fn open_stream_at(
    base: &str,
    path: &str,
    token: Option<&str>,
    last_event_id: Option<&str>,
) -> EventReceiver {
    use futures::StreamExt;
    let client = reqwest::Client::new();
    let mut request = client.get(format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.expect("stream request");
    assert_eq!(response.status().as_u16(), 200, "stream {path}");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: String::new(),
                    id: None,
                    data: Value::Null,
                };
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data = serde_json::from_str(v.trim()).unwrap_or(Value::Null);
                    }
                }
                if !event.event.is_empty() && tx.send(event).is_err() {
                    return;
                }
            }
        }
    });
    rx
}
