//! Waiting with a bound: the one polling helper the test suites share.

use std::time::{Duration, Instant};

/// What one poll answers: done (with a value) or not yet.
pub trait Outcome {
    type Value;
    fn done(self) -> Option<Self::Value>;
}

impl Outcome for bool {
    type Value = ();
    fn done(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn done(self) -> Option<T> {
        self
    }
}

/// Polls `f` every 250 ms until it is done (`true` or `Some`), for at most
/// `limit`; gives the value. The pace suits a real cluster.
pub async fn eventually<O: Outcome>(
    what: &str,
    limit: Duration,
    f: impl AsyncFnMut() -> O,
) -> O::Value {
    eventually_every(what, limit, Duration::from_millis(250), f).await
}

/// [`eventually`], polling every `every` (in-memory APIs answer at once).
pub async fn eventually_every<O: Outcome>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut f: impl AsyncFnMut() -> O,
) -> O::Value {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await.done() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        tokio::time::sleep(every).await;
    }
}

/// Waits up to 20 s for a server the test started to accept connections on
/// `127.0.0.1:port`.
pub async fn listening(what: &str, port: u16) {
    eventually_every(
        &format!("{what} listens on 127.0.0.1:{port}"),
        Duration::from_secs(20),
        Duration::from_millis(50),
        async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        },
    )
    .await;
}
