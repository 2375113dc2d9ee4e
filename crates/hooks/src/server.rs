//! What every reference hook shares: an HTTP/1.1 server bounded against
//! whoever can reach it, the bearer check, reading and checking a request
//! ([`HookRequest::parse`], [`HookRequest::check`]), one step at a time per
//! rotation, writing the [`Answer`], and the health endpoints (`GET
//! /healthz`, `GET /readyz`). A hook supplies only its [`Steps`]: what
//! `issue`, `stage` and `retire` do to the system behind it, and whether
//! that system can be reached.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use keyrotor_consumer::hook::{HookAnswer, HookRequest, MAX_REQUEST, RETRY_AFTER_RANGE, Step};
use tokio::net::TcpListener;
use tokio::sync::OwnedMutexGuard;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::Error;
use crate::auth::Auth;

/// Connections served at once (more wait in the kernel's backlog).
const MAX_CONNECTIONS: usize = 256;
/// How long a client may take to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How a hook answers one step.
pub enum Answer {
    /// The system behind the hook holds the step's result (HTTP 200 with
    /// `{"done": true}`; `issue` with the key).
    Done(Done),
    /// Not yet (HTTP 202): keyrotor holds the step without counting a
    /// failure and asks again after `retry_after` seconds (1–3600).
    Pending { retry_after: u32, reason: String },
    /// Not done: a 4xx refusal (keyrotor stops asking until someone fixes
    /// the cause; not 401, 403, 408 or 429), or a 5xx failure (keyrotor
    /// tries again).
    Refused(Refusal),
}

/// A step refused or failed: the status and the reason, for people and
/// for the rotation's condition (never a secret).
pub struct Refusal {
    pub status: StatusCode,
    pub reason: String,
}

pub fn refuse(status: StatusCode, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
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

impl From<Done> for Answer {
    fn from(done: Done) -> Answer {
        Answer::Done(done)
    }
}

impl From<Refusal> for Answer {
    fn from(refusal: Refusal) -> Answer {
        Answer::Refused(refusal)
    }
}

impl From<Result<Done, Refusal>> for Answer {
    fn from(result: Result<Done, Refusal>) -> Answer {
        result.map_or_else(Answer::Refused, Answer::Done)
    }
}

/// What a hook does to the system behind it.
pub trait Steps: Send + Sync + 'static {
    /// Carries out `step` of a request that passed [`HookRequest::check`].
    /// A repeated request (the same idempotency key) must find its work
    /// done and answer [`Answer::Done`] without acting twice. Steps of one
    /// rotation (one `uid`) never run at once.
    fn step(&self, step: Step, request: &HookRequest) -> impl Future<Output = Answer> + Send;

    /// Whether the system behind the hook can be reached now (`GET
    /// /readyz`): `Err` with a short reason, never a secret, when not.
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// Binds the hook's listening socket; also gives the address it got (a
/// port 0 in `--listen` picks a free one).
pub async fn bind(
    addr: std::net::SocketAddr,
) -> Result<(TcpListener, std::net::SocketAddr), Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, source })?;
    let local = listener.local_addr().map_err(Error::LocalAddr)?;
    Ok((listener, local))
}

/// Serves `hook` on `listener` until the process is stopped.
pub async fn serve<H: Steps>(listener: TcpListener, auth: Auth, hook: H) -> Result<(), Error> {
    let server = Arc::new(Server {
        auth,
        hook,
        rotations: Locks::default(),
    });
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
    rotations: Locks,
}

/// One lock per rotation uid: keyrotor sends one step at a time per
/// rotation, but a retry may arrive while its own earlier attempt (timed
/// out at keyrotor) still runs here, and both must not act at once.
#[derive(Default)]
struct Locks(Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>);

impl Locks {
    /// Waits until no other step of rotation `uid` runs.
    async fn hold(&self, uid: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            // Locks nobody holds or waits for go: the map stays as small
            // as the steps in flight.
            all.retain(|_, lock| lock.strong_count() > 0);
            match all.get(uid).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    all.insert(uid.to_string(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

impl<H: Steps> Server<H> {
    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() == Method::GET {
            return self.health(req.uri().path()).await;
        }
        let (code, answer) = match self.handle(req).await {
            Answer::Done(done) => (StatusCode::OK, {
                let mut answer = HookAnswer::done(Some(done.message));
                answer.key = done.key.map(|k| k.to_string());
                answer
            }),
            Answer::Pending {
                retry_after,
                reason,
            } => (StatusCode::ACCEPTED, {
                let mut answer = not_done(reason);
                answer.retry_after_seconds =
                    Some(retry_after.clamp(*RETRY_AFTER_RANGE.start(), *RETRY_AFTER_RANGE.end()));
                answer
            }),
            Answer::Refused(Refusal { status, reason }) => {
                warn!(status = status.as_u16(), %reason, "hook request refused");
                (status, not_done(reason))
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

    /// `GET /healthz`: 200 while the process serves. `GET /readyz`: 200
    /// when the system behind the hook can be reached, else 503 and why.
    /// Neither needs the token (kubelet's probes have none) nor says a
    /// secret.
    async fn health(&self, path: &str) -> Response<Full<Bytes>> {
        let (code, text) = if path.ends_with("/healthz") {
            (StatusCode::OK, "ok".to_string())
        } else if path.ends_with("/readyz") {
            match self.hook.ready().await {
                Ok(()) => (StatusCode::OK, "ok".to_string()),
                Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
            }
        } else {
            let allowed = "GET /healthz or /readyz, or POST a hook request";
            (StatusCode::METHOD_NOT_ALLOWED, allowed.to_string())
        };
        Response::builder()
            .status(code)
            .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(text + "\n")))
            .unwrap_or_default()
    }

    async fn handle(&self, req: Request<Incoming>) -> Answer {
        if req.method() != Method::POST {
            let reason = "POST a hook request";
            return refuse(StatusCode::METHOD_NOT_ALLOWED, reason).into();
        }
        let presented = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !self.auth.accepts(presented).await {
            return refuse(StatusCode::UNAUTHORIZED, "bearer token not accepted").into();
        }
        let body = match Limited::new(req.into_body(), MAX_REQUEST).collect().await {
            Ok(body) => Zeroizing::new(body.to_bytes().to_vec()),
            Err(_) => {
                let reason = "request too large or cut off";
                return refuse(StatusCode::PAYLOAD_TOO_LARGE, reason).into();
            }
        };
        // The request wipes its key when dropped.
        let request = match HookRequest::parse(&body) {
            Ok(request) => request,
            Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()).into(),
        };
        let step = match request.check() {
            Ok(step) => step,
            Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()).into(),
        };
        let _one_at_a_time = self.rotations.hold(&request.uid).await;
        let answer = self.hook.step(step, &request).await;
        match &answer {
            Answer::Done(_) => info!(request = %request.idempotency_key, "done"),
            Answer::Pending { retry_after, .. } => {
                info!(request = %request.idempotency_key, retry_after, "pending")
            }
            Answer::Refused(_) => {}
        }
        answer
    }
}

/// `{"done": false, "reason": …}`: a refusal's or a pending step's answer.
fn not_done(reason: String) -> HookAnswer {
    let mut answer = HookAnswer::done(None);
    answer.done = false;
    answer.reason = Some(reason);
    answer
}

#[cfg(test)]
mod tests;
