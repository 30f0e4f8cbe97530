//! Process signals shared by the long-running subcommands.
//!
//! A signal is a fact about the process, not about one waiter: the first
//! SIGTERM or SIGINT is latched, and every [`terminated`] resolves, whether
//! it started waiting before the signal or after. (A listener of its own per
//! waiter misses a signal that came before it was made: an operator told to
//! stop just as it began to lead waited forever.)

use std::sync::OnceLock;

use tokio::sync::watch;

static RECEIVED: OnceLock<watch::Receiver<bool>> = OnceLock::new();

/// Starts listening for SIGTERM and SIGINT, once per process; from then on
/// they are latched instead of ending the process. Call it inside a Tokio
/// runtime (every `terminated()` does).
pub fn listen() -> watch::Receiver<bool> {
    RECEIVED
        .get_or_init(|| {
            use tokio::signal::unix::{SignalKind, signal};
            let (latch, received) = watch::channel(false);
            match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::spawn(async move {
                        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                        let _ = latch.send(true);
                        // Keep the latch: later waiters still see it.
                        std::future::pending::<()>().await;
                    });
                }
                // No handlers: nothing is latched, and waiters wait forever.
                _ => std::mem::forget(latch),
            }
            received
        })
        .clone()
}

/// Resolves once SIGTERM or SIGINT has been received, at once if it already
/// was (never, if the handlers cannot be installed).
pub async fn terminated() {
    let mut received = listen();
    if received.wait_for(|got| *got).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_signal_received_before_a_waiter_began_still_ends_its_wait() {
        listen();
        // SAFETY: kill(2) on our own pid; the handler installed above
        // latches SIGTERM instead of ending the test process.
        let sent = unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
        assert_eq!(sent, 0);
        // The first waiter sees it...
        tokio::time::timeout(Duration::from_secs(30), terminated())
            .await
            .expect("the signal is seen");
        // ...and one that begins waiting only now, too.
        tokio::time::timeout(Duration::from_secs(30), terminated())
            .await
            .expect("a later waiter sees the same signal");
    }
}
