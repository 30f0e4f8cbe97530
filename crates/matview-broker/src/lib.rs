//! An embedded, Kafka-compatible broker for `matview dev` (and `matview
//! broker`): one node, durable append-only logs under a data directory,
//! committed offsets, topic creation, long-polling fetches. It speaks the
//! Kafka protocol (decoded with the `kafka-protocol` crate), so the
//! projector's Kafka client path is the same as in production.
//!
//! Not supported, by design: replication, transactions and idempotent
//! producers, consumer-group membership (`subscribe`; matview assigns
//! partitions), topic IDs, retention and compaction, SASL/TLS.

mod batch;
mod groups;
mod handlers;
mod log;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use handlers::{RequestKind, ResponseKind};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Encodable, decode_request_header_from_buffer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use log::valid_topic_name;

/// The cluster id every Metadata answer carries.
const CLUSTER_ID: &str = "matview-embedded";
/// Larger requests are refused (Kafka's default socket.request.max.bytes).
const MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;
/// A request's buffer starts at most this large and grows as its bytes
/// arrive, so a length prefix alone reserves no memory.
const FIRST_READ_BYTES: usize = 64 * 1024;
/// Client connections served at once by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Most bytes of records in one fetch answer, whatever the client asks
/// (Kafka's default fetch.max.bytes); a single larger batch still goes whole.
pub const DEFAULT_MAX_FETCH_BYTES: usize = 50 * 1024 * 1024;

/// What one broker allows its clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_fetch_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_fetch_bytes: DEFAULT_MAX_FETCH_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "{0} is in use; pick another address for the embedded broker (--broker-listen of matview dev, --listen of matview broker)"
    )]
    PortInUse(SocketAddr),
    #[error("the embedded broker cannot listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Log(#[from] log::LogError),
    #[error(transparent)]
    Offsets(#[from] groups::GroupsError),
}

/// What one broker serves from; shared by its connections.
struct State {
    log: log::Log,
    offsets: groups::CommittedOffsets,
    /// The address clients are told to connect to.
    host: String,
    port: i32,
    limits: Limits,
    cancel: CancellationToken,
}

/// A running broker.
pub struct EmbeddedBroker {
    pub address: SocketAddr,
    pub data_dir: PathBuf,
    #[cfg(test)]
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl EmbeddedBroker {
    /// Opens (or creates) the logs under `data_dir`, binds `listen` (port 0:
    /// any free port) and serves until `cancel`.
    pub async fn start(
        data_dir: &Path,
        listen: SocketAddr,
        cancel: CancellationToken,
    ) -> Result<EmbeddedBroker, BrokerError> {
        EmbeddedBroker::start_with(data_dir, listen, Limits::default(), cancel).await
    }

    /// [`EmbeddedBroker::start`] with limits of one's own.
    pub async fn start_with(
        data_dir: &Path,
        listen: SocketAddr,
        limits: Limits,
        cancel: CancellationToken,
    ) -> Result<EmbeddedBroker, BrokerError> {
        let log = log::Log::open(data_dir)?;
        let offsets = groups::CommittedOffsets::open(data_dir)?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AddrInUse => BrokerError::PortInUse(listen),
                _ => BrokerError::Listen {
                    address: listen,
                    source,
                },
            })?;
        let address = listener
            .local_addr()
            .map_err(|source| BrokerError::Listen {
                address: listen,
                source,
            })?;
        let state = Arc::new(State {
            log,
            offsets,
            host: address.ip().to_string(),
            port: i32::from(address.port()),
            limits,
            cancel: cancel.clone(),
        });
        info!(%address, data = %data_dir.display(), "embedded Kafka broker listening");
        let task = tokio::spawn(accept(listener, state.clone()));
        #[cfg(not(test))]
        drop(state);
        Ok(EmbeddedBroker {
            address,
            data_dir: data_dir.to_path_buf(),
            #[cfg(test)]
            state,
            task,
        })
    }

    #[cfg(test)]
    fn state_for_tests(&self) -> &State {
        &self.state
    }

    /// `host:port` for a client's `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.address.to_string()
    }

    /// Waits until the broker has stopped (after its token was cancelled).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// `matview broker`: the embedded broker on its own, until Ctrl-C.
pub fn run(data_dir: &Path, listen: SocketAddr, limits: Limits) -> Result<(), BrokerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| BrokerError::Listen {
            address: listen,
            source,
        })?;
    runtime.block_on(async {
        let cancel = CancellationToken::new();
        let broker = EmbeddedBroker::start_with(data_dir, listen, limits, cancel.clone()).await?;
        println!(
            "matview broker: bootstrap.servers={}  (data in {}; Ctrl-C stops)",
            broker.bootstrap_servers(),
            data_dir.display()
        );
        matview_api::signals::terminated().await;
        cancel.cancel();
        broker.stopped().await;
        Ok(())
    })
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                // Each connection holds buffers and a task: past the limit,
                // a new one is closed at once (the client retries).
                Ok((_, peer)) if connections.len() >= state.limits.max_connections => {
                    warn!(%peer, limit = state.limits.max_connections,
                        "closing a connection: too many connections");
                }
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve(stream, peer, state.clone()));
                }
                Err(e) => debug!(error = %e, "accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = state.cancel.cancelled() => break,
        }
    }
    connections.shutdown().await;
}

/// Answers one connection's requests in order, as Kafka does.
async fn serve(mut stream: TcpStream, peer: SocketAddr, state: Arc<State>) {
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut stream) => frame,
            () = state.cancel.cancelled() => return,
        };
        let Some(frame) = frame else { return };
        match answer(&state, frame).await {
            Ok(Some(bytes)) => {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(reason) => {
                // Kafka closes a connection it cannot understand.
                debug!(%peer, %reason, "closing a Kafka connection");
                return;
            }
        }
    }
}

/// One length-prefixed request. The buffer grows with the bytes that
/// arrive, never to the claimed length up front: a peer that claims 100 MiB
/// and sends nothing costs nothing.
async fn read_frame(stream: &mut (impl AsyncRead + Unpin)) -> Option<Bytes> {
    let length = stream.read_i32().await.ok()?;
    let length = usize::try_from(length)
        .ok()
        .filter(|l| *l <= MAX_REQUEST_BYTES)?;
    let mut frame = Vec::with_capacity(length.min(FIRST_READ_BYTES));
    (&mut *stream)
        .take(length as u64)
        .read_to_end(&mut frame)
        .await
        .ok()?;
    (frame.len() == length).then(|| Bytes::from(frame))
}

/// Decodes a request frame and encodes the length-prefixed answer.
async fn answer(state: &Arc<State>, mut frame: Bytes) -> Result<Option<Bytes>, String> {
    if frame.len() < 8 {
        return Err("request too short".into());
    }
    let key = ApiKey::try_from((&frame[..2]).get_i16()).map_err(|_| "unknown API key")?;
    let version = (&frame[2..4]).get_i16();
    let correlation_id = (&frame[4..8]).get_i32();
    let response = if key == ApiKey::ApiVersions && !handlers::supports(key, version) {
        // Answered in version 0 so the client can read our versions.
        Some((
            ResponseKind::ApiVersions(handlers::unsupported_api_versions()),
            0,
        ))
    } else if !handlers::supports(key, version) {
        return Err(format!("{key:?} v{version} is not supported"));
    } else {
        // Decoding the header moves past it (its length varies by version).
        decode_request_header_from_buffer(&mut frame).map_err(|e| e.to_string())?;
        let request = RequestKind::decode(key, &mut frame, version)?;
        handlers::handle(state, request, version)
            .await
            .map(|r| (r, version))
    };
    let Some((response, version)) = response else {
        return Ok(None);
    };
    let mut body = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut body, key.response_header_version(version))
        .map_err(|e| e.to_string())?;
    response
        .encode(&mut body, version)
        .map_err(|e| format!("cannot encode {key:?} v{version}: {e}"))?;
    let mut framed = BytesMut::with_capacity(body.len() + 4);
    framed.put_i32(i32::try_from(body.len()).map_err(|_| "response too large")?);
    framed.extend_from_slice(&body);
    Ok(Some(framed.freeze()))
}
