//! One check: a request's headers in, allow or deny out, with the counts
//! that make a missed rotation visible. No I/O: the HTTP server and the
//! reports around it are in `server` and `mod`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::header::{HeaderMap, HeaderName};
use jiff::Timestamp;
use tracing::warn;

use keyrotor_consumer::verifier::{Check, Verifier};
use keyrotor_consumer::wire::{Traffic, Version};

use super::credential::{self, Source};
use super::metrics::{Rejection, VerifierMetrics};

/// How often at most the log says that a retired version is presented.
const RETIRED_WARNING_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(Version),
    Deny(Rejection),
}

pub struct Gate {
    verifier: Arc<Verifier>,
    source: Source,
    client_header: Option<HeaderName>,
    metrics: Arc<VerifierMetrics>,
    traffic: Mutex<Counts>,
}

struct Counts {
    traffic: Traffic,
    warned: Option<Instant>,
}

impl Gate {
    pub fn new(
        verifier: Arc<Verifier>,
        source: Source,
        client_header: Option<HeaderName>,
        metrics: Arc<VerifierMetrics>,
    ) -> Gate {
        Gate {
            verifier,
            source,
            client_header,
            metrics,
            traffic: Mutex::new(Counts {
                traffic: Traffic::default(),
                warned: None,
            }),
        }
    }

    /// Allow or deny the request these headers came with.
    pub fn decide(&self, headers: &HeaderMap) -> Decision {
        let started = Instant::now();
        let decision = match credential::presented(headers, &self.source) {
            Err(_) => Decision::Deny(Rejection::Malformed),
            Ok(key) => match self.verifier.check_at(key, Timestamp::now()) {
                Check::Accepted(v) => Decision::Allow(v),
                Check::Retired(v) => {
                    self.retired(v, headers);
                    Decision::Deny(Rejection::RetiredVersion)
                }
                Check::Unknown => Decision::Deny(Rejection::UnknownKey),
            },
        };
        match decision {
            Decision::Allow(v) => {
                self.metrics.accepted(v);
                *self.counts().traffic.accepted.entry(v).or_default() += 1;
            }
            Decision::Deny(Rejection::RetiredVersion) => {}
            Decision::Deny(why) => self.metrics.rejected(why, None),
        }
        self.metrics.took(started.elapsed().as_secs_f64());
        decision
    }

    fn retired(&self, v: Version, headers: &HeaderMap) {
        self.metrics.rejected(Rejection::RetiredVersion, Some(v));
        let client = self
            .client_header
            .as_ref()
            .and_then(|h| credential::client(headers, h));
        let mut counts = self.counts();
        *counts.traffic.retired.entry(v).or_default() += 1;
        if client.is_some() {
            counts.traffic.client = client;
        }
        if counts
            .warned
            .is_none_or(|at| at.elapsed() >= RETIRED_WARNING_EVERY)
        {
            counts.warned = Some(Instant::now());
            let client = client
                .map(|c| c.to_string())
                .unwrap_or_else(|| "unknown".into());
            warn!(
                version = v,
                %client,
                "a client presented a retired version: it missed the rotation"
            );
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.traffic.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What was checked since the process started.
    pub fn traffic(&self) -> Traffic {
        self.counts().traffic.clone()
    }

    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }
}
