//! Listeners of matview's HTTP servers. Every accepted connection sends
//! without delay (TCP_NODELAY): a live stream writes one small event at a
//! time, and with Nagle's algorithm each event after the first waits for
//! the peer's acknowledgement of the one before, which the peer may delay.

use axum::serve::{ListenerExt, TapIo};
use tokio::net::{TcpListener, TcpStream};

/// The listener, each connection it accepts set to send without delay.
pub type NoDelayListener = TapIo<TcpListener, fn(&mut TcpStream)>;

pub fn no_delay(listener: TcpListener) -> NoDelayListener {
    listener.tap_io(send_at_once)
}

fn send_at_once(stream: &mut TcpStream) {
    // Only latency is at stake: a connection that refuses it still works.
    let _ = stream.set_nodelay(true);
}

#[cfg(test)]
mod tests {
    use axum::serve::Listener;

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = plain.local_addr().expect("address");
        let mut listener = super::no_delay(plain);
        let client = tokio::net::TcpStream::connect(address);
        let ((accepted, _), client) = tokio::join!(listener.accept(), client);
        client.expect("connected");
        assert!(accepted.nodelay().expect("nodelay readable"));
    }
}
