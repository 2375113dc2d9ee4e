//! A hook that exists to check the conformance kit (`keyrotor hook check`),
//! never shipped: in memory, in one of two modes.
//!
//! - [`Mode::Broken`] gets the protocol wrong on purpose, the way a hook
//!   written in a hurry does: it accepts any token, answers a new key to a
//!   repeated `issue`, answers 500 to `retire` of a version it does not
//!   hold, and answers a repeated `stage` with 200 and a body that is not
//!   JSON. The kit must fail it and name each of these.
//! - [`Mode::Patient`] gets it right in the ways the reference hooks never
//!   show: it answers 204 (no body), makes every step wait once with 202
//!   (`retryAfterSeconds: 1`), and with user names it refuses (409) a
//!   request whose user name breaks the alternating rule. The kit must
//!   pass it.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use keyrotor_consumer::hook::{HookRequest, MAX_REQUEST, Step};
use keyrotor_consumer::keys::{Alphabet, KeySpec, SecretKey, digest_of};
use serde_json::json;
use tokio::net::TcpListener;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Broken,
    Patient,
}

pub struct Hook {
    pub mode: Mode,
    pub token: String,
    /// The user names it manages (patient: enforces the alternating rule).
    pub usernames: Vec<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// (uid, version, digest) of every key staged or issued and not retired.
    held: HashSet<(String, u64, String)>,
    /// Idempotency keys asked before (patient: the first ask is pending).
    seen: HashSet<String>,
}

/// An answer: status and body.
type Answer = (u16, String);

fn refused(status: u16, reason: &str) -> Answer {
    (status, json!({"done": false, "reason": reason}).to_string())
}

impl Hook {
    pub fn new(mode: Mode, token: String, usernames: Vec<String>) -> Hook {
        Hook {
            mode,
            token,
            usernames,
            state: Mutex::default(),
        }
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (status, body) = match (req.method(), req.uri().path()) {
            (&Method::GET, "/healthz" | "/readyz") => (200, "ok".into()),
            (&Method::POST, _) => {
                let bearer = req
                    .headers()
                    .get(hyper::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                match Limited::new(req.into_body(), MAX_REQUEST).collect().await {
                    Ok(body) => self.step(bearer.as_deref(), &body.to_bytes()),
                    Err(_) => refused(413, "request too large"),
                }
            }
            _ => refused(405, "POST a hook request"),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
        response
    }

    fn step(&self, bearer: Option<&str>, body: &[u8]) -> Answer {
        let authorized = bearer == Some(format!("Bearer {}", self.token).as_str());
        if !authorized && self.mode == Mode::Patient {
            return refused(401, "bearer token not accepted");
        }
        let Ok(r) = HookRequest::parse(body) else {
            return refused(400, "not a hook request");
        };
        let step = match r.check() {
            Ok(step) => step,
            Err(e) => return refused(400, &e.to_string()),
        };
        if self.mode == Mode::Patient {
            if let Some(expected) = self.username_of(r.version)
                && r.username.as_deref() != Some(expected)
            {
                return refused(409, &format!("version {} is {expected}'s", r.version));
            }
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.seen.insert(r.idempotency_key.clone()) {
                let pending =
                    json!({"done": false, "retryAfterSeconds": 1, "reason": "propagating"});
                return (202, pending.to_string());
            }
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match step {
            Step::Stage => {
                let added = state
                    .held
                    .insert((r.uid.clone(), r.version, r.sha256.clone()));
                match (self.mode, added) {
                    (Mode::Broken, false) => (200, "ok".into()),
                    (Mode::Broken, true) => (200, json!({"done": true}).to_string()),
                    (Mode::Patient, _) => (204, String::new()),
                }
            }
            Step::Retire => {
                let held = (r.uid.clone(), r.version, r.sha256.clone());
                match (self.mode, state.held.remove(&held)) {
                    (Mode::Broken, false) => (500, "internal error: no such version".into()),
                    (Mode::Broken, true) => (200, json!({"done": true}).to_string()),
                    (Mode::Patient, _) => (204, String::new()),
                }
            }
            Step::Issue => {
                let key = match self.mode {
                    Mode::Broken => fresh_key(),
                    Mode::Patient => {
                        let secret = b"patient-hook-issuer-secret-0123456789";
                        keyrotor_hooks::issue::derive(secret, &r.uid, r.version).to_string()
                    }
                };
                state
                    .held
                    .insert((r.uid.clone(), r.version, digest_of(key.as_bytes())));
                let key_id = format!("fake-{}-v{}", &r.uid[..r.uid.len().min(8)], r.version);
                (
                    200,
                    json!({"done": true, "key": key, "keyId": key_id}).to_string(),
                )
            }
        }
    }

    /// The user name of `version` by the alternating rule, if it has one.
    fn username_of(&self, version: u64) -> Option<&str> {
        match self.usernames.as_slice() {
            [] => None,
            [one] => Some(one),
            [first, second, ..] => Some(if version % 2 == 1 { first } else { second }),
        }
    }
}

fn fresh_key() -> String {
    let spec = KeySpec {
        alphabet: Alphabet::Base62,
        length: 32,
        prefix: String::new(),
        checksum: false,
    };
    SecretKey::generate(&spec)
        .map(|k| k.expose().to_string())
        .unwrap_or_else(|_| "the-random-number-generator-failed".into())
}

/// Serves `hook` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, hook: Arc<Hook>) {
    while let Ok((stream, _)) = listener.accept().await {
        let hook = hook.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let hook = hook.clone();
                async move { Ok::<_, Infallible>(hook.answer(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
