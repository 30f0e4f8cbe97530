//! A tiny HTTP/1.0 GET for loopback and in-cluster calls to projectors; the
//! callers need nothing more, and it keeps a full HTTP client out of the binary.

/// The body of `GET url` (`http://host:port/path`), or `None` on any failure.
pub async fn get(url: &str) -> Option<String> {
    // Nothing a caller does may hang on a stuck peer.
    tokio::time::timeout(std::time::Duration::from_secs(3), fetch(url))
        .await
        .ok()
        .flatten()
}

async fn fetch(url: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}")))?;
    let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.ok()?;
    body.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}
