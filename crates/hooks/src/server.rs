//! What every reference hook shares: an HTTP/1.1 server bounded against
//! whoever can reach it, the bearer check, reading and checking a request
//! ([`HookRequest::parse`], [`HookRequest::check`]) and writing the answer.
//! A hook supplies only its [`Steps`]: what `issue`, `stage` and `retire`
//! do to the system behind it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use keyrotor_consumer::hook::{HookAnswer, HookRequest, MAX_REQUEST, Step};
use tokio::net::TcpListener;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::Error;
use crate::auth::Auth;

/// Connections served at once (more wait in the kernel's backlog).
const MAX_CONNECTIONS: usize = 256;
/// How long a client may take to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// A refusal: the status and a message for people (never a secret).
pub struct Refusal(pub StatusCode, pub String);

pub fn refuse(code: StatusCode, msg: impl Into<String>) -> Refusal {
    Refusal(code, msg.into())
}

/// A step done: a message for people and, for `issue`, the key.
pub struct Done {
    pub message: String,
    pub key: Option<Zeroizing<String>>,
}

impl From<String> for Done {
    fn from(message: String) -> Done {
        Done { message, key: None }
    }
}

/// What a hook does to the system behind it.
pub trait Steps: Send + Sync + 'static {
    /// Carries out `step` of a request that passed [`HookRequest::check`].
    /// A repeated request (the same idempotency key) must find its work
    /// done and answer [`Done`] without acting twice.
    fn step(
        &self,
        step: Step,
        request: &HookRequest,
    ) -> impl Future<Output = Result<Done, Refusal>> + Send;
}

/// Serves `hook` on `listener` until the process is stopped.
pub async fn serve<H: Steps>(listener: TcpListener, auth: Auth, hook: H) -> Result<(), Error> {
    let server = Arc::new(Server { auth, hook });
    // Bounded like the gateway endpoint: any pod may connect before it
    // authenticates, so headers get 5 s and connections are capped.
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors, say: wait instead of spinning.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let server = server.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(server.answer(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

struct Server<H> {
    auth: Auth,
    hook: H,
}

impl<H: Steps> Server<H> {
    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (code, answer) = match self.handle(req).await {
            Ok(done) => (StatusCode::OK, {
                let mut answer = HookAnswer::done(Some(done.message));
                answer.key = done.key.map(|k| k.to_string());
                answer
            }),
            Err(Refusal(code, message)) => {
                warn!(status = code.as_u16(), %message, "hook request refused");
                (code, {
                    let mut answer = HookAnswer::done(None);
                    answer.done = false;
                    answer.reason = Some(message);
                    answer
                })
            }
        };
        // The answer may hold an issued key: only `Bytes` leaves here.
        let body = serde_json::to_vec(&answer).unwrap_or_default();
        drop(answer);
        Response::builder()
            .status(code)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    }

    async fn handle(&self, req: Request<Incoming>) -> Result<Done, Refusal> {
        if req.method() != hyper::Method::POST {
            return Err(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST a hook request",
            ));
        }
        let presented = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !self.auth.accepts(presented).await {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "bearer token not accepted",
            ));
        }
        let body = Limited::new(req.into_body(), MAX_REQUEST)
            .collect()
            .await
            .map_err(|_| {
                refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request too large or cut off",
                )
            })?
            .to_bytes();
        let body = Zeroizing::new(body.to_vec());
        // The request wipes its key when dropped.
        let request = HookRequest::parse(&body)
            .map_err(|e| refuse(StatusCode::BAD_REQUEST, e.to_string()))?;
        let step = request
            .check()
            .map_err(|e| refuse(StatusCode::BAD_REQUEST, e.to_string()))?;
        let result = self.hook.step(step, &request).await;
        if result.is_ok() {
            info!(request = %request.idempotency_key, "done");
        }
        result
    }
}
