//! Accepting keyrotor's ServiceAccount tokens in a hook: each bearer token is
//! checked with the TokenReview API (authenticated, for this hook's
//! audience, of an allowed ServiceAccount). A positive answer is cached for
//! a minute by the token's digest, so a rotation's few calls cost one review.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::Error;

/// How long a reviewed token is trusted without asking again.
const TRUST_FOR: Duration = Duration::from_secs(60);
/// Tokens remembered at most (a flood of distinct tokens only costs reviews).
const REMEMBERED: usize = 64;

pub struct Reviewer {
    client: Client,
    audience: String,
    /// `system:serviceaccount:NS:NAME` of each allowed ServiceAccount.
    allowed: Vec<String>,
    trusted: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Reviewer {
    /// `allowed`: `NAMESPACE/NAME` of each ServiceAccount to accept.
    pub async fn new(audience: String, allowed: &[String]) -> Result<Reviewer, Error> {
        let mut users = Vec::new();
        for a in allowed {
            let Some((ns, name)) = a.split_once('/') else {
                return Err(Error::ServiceAccount(a.clone()));
            };
            users.push(format!("system:serviceaccount:{ns}:{name}"));
        }
        if users.is_empty() {
            return Err(Error::NoServiceAccount);
        }
        let client = Client::try_default().await.map_err(Error::Client)?;
        Ok(Reviewer {
            client,
            audience,
            allowed: users,
            trusted: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `token` is an allowed ServiceAccount's, for this audience.
    /// Errors (the API unreachable) are refusals: the caller retries.
    pub async fn accepts(&self, token: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        {
            let mut trusted = self.trusted.lock().await;
            trusted.retain(|_, until| Instant::now() < *until);
            if trusted.contains_key(&digest) {
                return true;
            }
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: Some(vec![self.audience.clone()]),
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let Ok(answer) = api.create(&PostParams::default(), &review).await else {
            return false;
        };
        let Some(status) = answer.status else {
            return false;
        };
        let user = status.user.and_then(|u| u.username).unwrap_or_default();
        let ok = status.authenticated == Some(true)
            && status
                .audiences
                .unwrap_or_default()
                .contains(&self.audience)
            && self.allowed.contains(&user);
        if ok {
            let mut trusted = self.trusted.lock().await;
            if trusted.len() < REMEMBERED {
                trusted.insert(digest, Instant::now() + TRUST_FOR);
            }
        }
        ok
    }
}
