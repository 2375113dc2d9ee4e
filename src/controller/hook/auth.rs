//! The bearer token keyrotor sends a hook: from the Secret the spec names
//! (`tokenSecretRef`), read at each call so a rotated token is used at
//! once, or a token of keyrotor's own ServiceAccount (`serviceAccountToken`)
//! minted with the TokenRequest API for the hook's audience, so a token is
//! good for that hook alone, and cached per audience until 80 % of its
//! lifetime has passed.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::PostParams;
use kube::{Api, Client};
use zeroize::Zeroizing;

use super::error::HookError;
use crate::api::{HookEndpoint, HookServiceAccountToken};

/// `NAMESPACE/NAME` of the operator's ServiceAccount; the chart sets it.
pub const IDENTITY_ENV: &str = "KEYROTOR_SERVICE_ACCOUNT";

type Cache = HashMap<(String, u32), (Zeroizing<String>, Instant)>;

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The operator's ServiceAccount: `KEYROTOR_SERVICE_ACCOUNT`, or, in a pod,
/// its namespace file with the name alone in that variable.
fn identity() -> Result<(String, String), HookError> {
    let missing = || {
        HookError::Identity(format!(
            "keyrotor does not know its own ServiceAccount; set {IDENTITY_ENV}=NAMESPACE/NAME on the operator (the chart does)"
        ))
    };
    let value = std::env::var(IDENTITY_ENV).map_err(|_| missing())?;
    match value.trim().split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
            Ok((ns.to_string(), name.to_string()))
        }
        None if !value.trim().is_empty() => {
            let ns =
                std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                    .map_err(|_| missing())?;
            Ok((ns.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(missing()),
    }
}

/// The token for the hook at `spec` (the spec field `field`) of a rotation
/// in `namespace`.
pub async fn bearer(
    client: &Client,
    namespace: &str,
    field: &str,
    spec: &HookEndpoint,
) -> Result<Zeroizing<String>, HookError> {
    let Some(r) = &spec.token_secret_ref else {
        let Some(sa) = &spec.service_account_token else {
            return Err(HookError::Identity(format!(
                "{field} names no token; set tokenSecretRef or serviceAccountToken"
            )));
        };
        return service_account_token(client, sa).await;
    };
    let missing = |why: String| HookError::Token(format!("{namespace}/{}", r.name), why);
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(&r.name)
        .await
        .map_err(|e| missing(format!("cannot be read: {e}")))?
        .ok_or_else(|| {
            missing(format!(
                "does not exist; create it or fix {field}.tokenSecretRef"
            ))
        })?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .ok_or_else(|| missing(format!("has no data key {:?}", r.key)))?;
    let token = String::from_utf8(bytes.0.clone())
        .map(|t| Zeroizing::new(t.trim().to_string()))
        .map_err(|_| missing(format!("data key {:?} is not text", r.key)))?;
    if token.is_empty() {
        return Err(missing(format!("data key {:?} is empty", r.key)));
    }
    Ok(token)
}

/// A token of the operator's ServiceAccount for `spec.audience`.
async fn service_account_token(
    client: &Client,
    spec: &HookServiceAccountToken,
) -> Result<Zeroizing<String>, HookError> {
    let key = (spec.audience.clone(), spec.expiration_seconds);
    if let Some((token, renew_at)) = cache().lock().unwrap().get(&key)
        && Instant::now() < *renew_at
    {
        return Ok(token.clone());
    }
    let (ns, name) = identity()?;
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![spec.audience.clone()],
            expiration_seconds: Some(spec.expiration_seconds.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let answer = api
        .create_token_request(&name, &PostParams::default(), &request)
        .await
        .map_err(|e| {
            let why = match &e {
                kube::Error::Api(s) if s.code == 403 => format!(
                    "forbidden ({}); the operator's RBAC needs create on serviceaccounts/token for {name}",
                    s.message
                ),
                other => other.to_string(),
            };
            HookError::Identity(format!("cannot mint a token of ServiceAccount {ns}/{name}: {why}"))
        })?;
    let no_token = || {
        HookError::Identity(format!(
            "the API server returned no token for ServiceAccount {ns}/{name}"
        ))
    };
    let status = answer.status.ok_or_else(no_token)?;
    let token = Zeroizing::new(status.token);
    if token.is_empty() {
        return Err(no_token());
    }
    // The API server may grant less than asked (its maximum lifetime): renew
    // by what it granted.
    let granted = status
        .expiration_timestamp
        .0
        .duration_since(jiff::Timestamp::now());
    let lifetime = Duration::from_secs(spec.expiration_seconds.into())
        .min(Duration::try_from(granted).unwrap_or(Duration::ZERO));
    let renew_at = Instant::now() + lifetime.mul_f64(0.8);
    cache()
        .lock()
        .unwrap()
        .insert(key, (token.clone(), renew_at));
    Ok(token)
}
