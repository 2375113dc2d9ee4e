//! The HTTP client of hooks (docs/hooks.md): one POST per step over
//! HTTP/1.1, plain `http://` inside the cluster or `https://` with the
//! spec's CA bundle, with the bearer token it is given. A few quick retries
//! inside one call absorb a blip; anything longer fails the reconcile, which
//! raises `HookFailed` and backs off. The answer is read by the protocol's
//! own reader ([`Outcome::read`]) within its size cap: done, pending and
//! refused answers come back as they are, a failed status as an error.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use keyrotor_consumer::hook::{AnswerError, HookRequest, MAX_ANSWER, Outcome};
use tokio::net::TcpStream;
use tracing::{debug, info};
use zeroize::{Zeroize, Zeroizing};

use super::error::HookError;

/// Attempts within one call; between them 250 ms, then 1 s.
const ATTEMPTS: u32 = 3;
const FIRST_PAUSE: Duration = Duration::from_millis(250);

/// Where and how to reach the hook.
pub struct Endpoint {
    pub url: String,
    pub ca_bundle: Option<String>,
    pub timeout: Duration,
}

/// Parsed `http(s)://host[:port]/path`.
struct Url {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse(url: &str) -> Result<Url, HookError> {
    let bad = |why| HookError::Url(url.to_string(), why);
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad("not http:// or https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => {
            let port = authority[i + 1..].parse().map_err(|_| bad("bad port"))?;
            (&authority[..i], port)
        }
        _ => (authority, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok(Url {
        tls,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
        path: path.to_string(),
    })
}

/// Sends `request` with bounded retries; the answer once the hook answered
/// done (an issuer's carries the key), pending or refused. A failed status
/// ([`Outcome::Failed`]) is an error, never returned as an outcome.
pub async fn call(
    endpoint: &Endpoint,
    token: &str,
    request: &HookRequest,
) -> Result<Outcome, HookError> {
    let url = parse(&endpoint.url)?;
    let body = request.to_json();
    let tls = if url.tls {
        Some(tls_config(endpoint.ca_bundle.as_deref())?)
    } else {
        None
    };
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        let once = tokio::time::timeout(
            endpoint.timeout,
            post(&url, tls.clone(), token, Bytes::copy_from_slice(&body)),
        );
        let result = match once.await {
            Ok(r) => r,
            Err(_) => Err(HookError::Timeout(endpoint.timeout)),
        };
        match result {
            Ok(outcome) => {
                if matches!(outcome, Outcome::Done(_)) {
                    info!(hook = %request.idempotency_key, attempt, "hook answered done");
                }
                return Ok(outcome);
            }
            Err(e) if e.transient() && attempt < ATTEMPTS => {
                debug!(hook = %request.idempotency_key, attempt, error = %e, "hook call failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 4;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn tls_config(ca_bundle: Option<&str>) -> Result<Arc<rustls::ClientConfig>, HookError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_bundle {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| HookError::CaBundle(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| HookError::CaBundle(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(HookError::CaBundle("no CERTIFICATE block".into()));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HookError::CaBundle(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn post(
    url: &Url,
    tls: Option<Arc<rustls::ClientConfig>>,
    token: &str,
    body: Bytes,
) -> Result<Outcome, HookError> {
    let authority = format!("{}:{}", url.host, url.port);
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| HookError::Connect(authority.clone(), e.to_string()))?;
    let request = Request::post(url.path.as_str())
        .header(hyper::header::HOST, authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::new(body))
        .map_err(|e| HookError::Http(e.to_string()))?;
    match tls {
        None => exchange(TokioIo::new(tcp), request).await,
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                .map_err(|e| HookError::Tls(authority.clone(), e.to_string()))?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| HookError::Tls(authority.clone(), e.to_string()))?;
            exchange(TokioIo::new(stream), request).await
        }
    }
}

async fn exchange<S>(io: TokioIo<S>, request: Request<Full<Bytes>>) -> Result<Outcome, HookError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| HookError::Http(e.to_string()))?;
    let conn = tokio::spawn(conn);
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| HookError::Http(e.to_string()));
    let result = match answer {
        Ok(response) => read_answer(response).await,
        Err(e) => Err(e),
    };
    conn.abort();
    result
}

/// Reads the answer's status and body (at most [`MAX_ANSWER`] bytes) into
/// an [`Outcome`]; a failed status is an error that says what to check.
async fn read_answer(
    response: hyper::Response<hyper::body::Incoming>,
) -> Result<Outcome, HookError> {
    let status = response.status().as_u16();
    let outcome = match read_body(response).await {
        Ok(mut body) => {
            // An issuer's answer holds a key: wipe the buffer once read.
            let outcome = Outcome::read(status, &body);
            body.zeroize();
            outcome?
        }
        Err(e) => match Outcome::read(status, b"") {
            // A failed status says more than its unreadable body.
            Ok(failed @ Outcome::Failed(_)) => failed,
            _ => return Err(e),
        },
    };
    match outcome {
        Outcome::Failed(code) => Err(HookError::Status(code, hint(code))),
        outcome => Ok(outcome),
    }
}

async fn read_body(
    response: hyper::Response<hyper::body::Incoming>,
) -> Result<Zeroizing<Vec<u8>>, HookError> {
    let body = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                HookError::Answer(AnswerError::TooLarge)
            } else {
                HookError::Http(e.to_string())
            }
        })?
        .to_bytes();
    Ok(match body.try_into_mut() {
        Ok(unique) => Zeroizing::new(Vec::from(unique)),
        Err(shared) => Zeroizing::new(shared.to_vec()),
    })
}

/// What to check after a failed status.
fn hint(status: u16) -> &'static str {
    match status {
        401 | 403 => {
            ": the hook refused keyrotor's token; check tokenSecretRef or serviceAccountToken.audience"
        }
        _ if status >= 500 => ": the hook or the system behind it failed; see the hook's own log",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_host_port_and_path() {
        let u = parse("http://hook.ns.svc:8080/v1/redis").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "hook.ns.svc", 8080, "/v1/redis")
        );
        let u = parse("https://hook.example").unwrap();
        assert_eq!((u.tls, u.port, u.path.as_str()), (true, 443, "/"));
        let u = parse("http://[::1]:9/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert!(parse("ftp://x").is_err());
        assert!(parse("http://:80/").is_err());
    }
}
