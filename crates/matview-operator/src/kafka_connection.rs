//! How the operator reaches a view's Kafka: the bootstrap servers and the
//! connection properties of the view's `configFrom` (SASL, TLS), the client
//! context that keeps librdkafka's own reason for a failure, and what kind
//! of failure it was, for status.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError as ClientError, RDKafkaErrorCode};
use tracing::warn;

/// Property prefixes that decide whether and how a client connects. The
/// operator uses only these from `configFrom`: consumer and producer tuning
/// is the projectors' business (and a mistake there is theirs to report).
const CONNECTION_PREFIXES: &[&str] = &[
    "security.protocol",
    "sasl.",
    "ssl.",
    "ssl_",
    "enable.ssl.",
    "broker.address.",
    "client.id",
    "client.dns.",
    "socket.",
];

/// Whether `key` is a connection property the operator applies.
pub fn is_connection_property(key: &str) -> bool {
    CONNECTION_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// A view's Kafka as the operator reaches it. Equal connections share clients.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaConnection {
    pub servers: String,
    /// Connection properties (may hold a password: never printed).
    properties: BTreeMap<String, String>,
}

impl KafkaConnection {
    /// Servers alone: plaintext, no authentication.
    pub fn plain(servers: impl Into<String>) -> KafkaConnection {
        KafkaConnection {
            servers: servers.into(),
            properties: BTreeMap::new(),
        }
    }

    /// Servers and the connection properties among `given` (others are dropped).
    pub fn new(servers: impl Into<String>, given: &BTreeMap<String, String>) -> KafkaConnection {
        let properties = given
            .iter()
            .filter(|(k, _)| is_connection_property(k))
            .map(|(k, v)| (k.clone(), v.trim().to_string()))
            .collect();
        KafkaConnection {
            servers: servers.into(),
            properties,
        }
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
            .set("bootstrap.servers", &self.servers)
            .set("socket.timeout.ms", "10000");
        config
    }
}

/// Servers and property names only: values may be secret.
impl fmt::Debug for KafkaConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConnection")
            .field("servers", &self.servers)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What kind of failure kept a client from the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// No broker answered (down, wrong address, network).
    Unreachable,
    /// The brokers refused the credentials.
    Authentication,
    /// The TLS handshake failed (CA, certificate, host name).
    Tls,
    /// librdkafka refused a property.
    Config,
}

impl ConnectFailure {
    /// Of librdkafka's error code.
    pub fn of_code(code: RDKafkaErrorCode) -> ConnectFailure {
        match code {
            RDKafkaErrorCode::Authentication
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed => ConnectFailure::Authentication,
            RDKafkaErrorCode::SSL => ConnectFailure::Tls,
            RDKafkaErrorCode::InvalidArgument => ConnectFailure::Config,
            _ => ConnectFailure::Unreachable,
        }
    }

    /// Of an error returned by a client call or its creation.
    pub fn of_error(error: &ClientError) -> ConnectFailure {
        match error {
            ClientError::ClientCreation(_) | ClientError::ClientConfig(..) => {
                ConnectFailure::Config
            }
            other => other
                .rdkafka_error_code()
                .map_or(ConnectFailure::Unreachable, ConnectFailure::of_code),
        }
    }

    /// The `SourceReady` reason.
    pub fn reason(self) -> &'static str {
        match self {
            ConnectFailure::Unreachable => "BrokerUnreachable",
            ConnectFailure::Authentication => "AuthenticationFailed",
            ConnectFailure::Tls => "TLSHandshakeFailed",
            ConnectFailure::Config => "InvalidClientConfig",
        }
    }

    /// What the user should look at.
    pub fn hint(self) -> &'static str {
        match self {
            ConnectFailure::Unreachable => "",
            ConnectFailure::Authentication => {
                "; check sasl.username, sasl.password and sasl.mechanisms in spec.source.kafka.configFrom"
            }
            ConnectFailure::Tls => {
                "; check ssl.ca.pem (the CA, as PEM text) and the brokers' certificate"
            }
            ConnectFailure::Config => "; fix the property in spec.source.kafka.configFrom",
        }
    }
}

/// librdkafka's last error on a client: a failed request alone says only
/// that the transport failed, the error callback says why.
#[derive(Default)]
pub struct LastError {
    last: Mutex<Option<(ConnectFailure, String)>>,
}

impl LastError {
    /// The error recorded since the last call, forgotten as it is taken.
    pub fn take(&self) -> Option<(ConnectFailure, String)> {
        self.last.lock().ok()?.take()
    }
}

impl ClientContext for LastError {
    fn error(&self, error: ClientError, reason: &str) {
        let failure = error
            .rdkafka_error_code()
            .map_or(ConnectFailure::Unreachable, ConnectFailure::of_code);
        warn!(%error, reason, "kafka client error");
        if let Ok(mut last) = self.last.lock() {
            // An authentication or TLS failure says more than the
            // "all brokers down" that follows it.
            let keep = matches!(last.as_ref(), Some((kept, _)) if *kept != ConnectFailure::Unreachable)
                && failure == ConnectFailure::Unreachable;
            if !keep {
                *last = Some((failure, reason.to_string()));
            }
        }
    }
}

impl ConsumerContext for LastError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_properties_reach_the_operators_clients() {
        let given = BTreeMap::from([
            ("bootstrap.servers".to_string(), "b:9093".to_string()),
            ("security.protocol".to_string(), "SASL_SSL".to_string()),
            ("sasl.password".to_string(), "s3cret\n".to_string()),
            ("ssl.ca.pem".to_string(), "-----BEGIN".to_string()),
            ("fetch.wait.max.ms".to_string(), "bogus".to_string()),
        ]);
        let connection = KafkaConnection::new("b:9093", &given);
        let config = connection.client_config();
        assert_eq!(config.get("sasl.password"), Some("s3cret"));
        assert_eq!(config.get("ssl.ca.pem"), Some("-----BEGIN"));
        assert_eq!(config.get("fetch.wait.max.ms"), None);
        assert_eq!(config.get("bootstrap.servers"), Some("b:9093"));
        let printed = format!("{connection:?}");
        assert!(printed.contains("sasl.password"), "{printed}");
        assert!(!printed.contains("s3cret"), "{printed}");
    }

    #[test]
    fn failures_are_told_apart_by_librdkafkas_code() {
        use ConnectFailure::*;
        let of = ConnectFailure::of_code;
        assert_eq!(of(RDKafkaErrorCode::Authentication), Authentication);
        assert_eq!(
            of(RDKafkaErrorCode::SaslAuthenticationFailed),
            Authentication
        );
        assert_eq!(of(RDKafkaErrorCode::SSL), Tls);
        assert_eq!(of(RDKafkaErrorCode::AllBrokersDown), Unreachable);
        assert_eq!(
            ConnectFailure::of_error(&ClientError::ClientCreation("x".into())),
            Config
        );
    }

    #[test]
    fn a_specific_failure_is_not_hidden_by_the_brokers_down_that_follows() {
        let last = LastError::default();
        last.error(
            ClientError::Global(RDKafkaErrorCode::Authentication),
            "SASL authentication error: invalid credentials",
        );
        last.error(
            ClientError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        let (failure, reason) = last.take().expect("recorded");
        assert_eq!(failure, ConnectFailure::Authentication);
        assert!(reason.contains("invalid credentials"));
        assert!(last.take().is_none(), "taken once");
    }
}
