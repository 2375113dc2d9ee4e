//! The kit's HTTP client: one request per connection over HTTP/1.1, as
//! keyrotor calls a hook (plain `http://` or `https://` with a CA bundle),
//! every exchange bounded by the timeout keyrotor would give it. Besides a
//! POST read to the end it can lose an answer on purpose (hang up as the
//! answer starts) and GET the health endpoints. Bodies are read up to one byte past
//! the protocol's cap, so an oversized answer is seen as one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use keyrotor_consumer::hook::MAX_ANSWER;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use super::Error;

/// The hook's address, parsed from `http(s)://host[:port]/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, Error> {
        let bad = |why| Error::Url(url.to_string(), why);
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("not http:// or https://"));
        };
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                let port = authority[i + 1..].parse().map_err(|_| bad("bad port"))?;
                (&authority[..i], port)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Url {
            tls,
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What came back: the status and the body (at most [`MAX_ANSWER`] + 1
/// bytes, wiped when dropped: an issuer's answer holds a key).
pub struct Reply {
    pub status: u16,
    pub body: Zeroizing<Vec<u8>>,
}

/// Why no answer came back.
#[derive(Debug)]
pub enum NoReply {
    Connect(String),
    Timeout(Duration),
    Exchange(String),
}

impl std::fmt::Display for NoReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoReply::Connect(e) => write!(f, "cannot connect: {e}"),
            NoReply::Timeout(t) => write!(f, "no answer within {} s", t.as_secs_f32()),
            NoReply::Exchange(e) => write!(f, "HTTP exchange failed: {e}"),
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Where the kit sends its requests, and how long it waits for each.
pub struct Client {
    pub url: Url,
    pub timeout: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    /// A client for `url`; `ca_pem` is the CA bundle of an https:// hook
    /// (else the system's roots).
    pub fn new(url: Url, timeout: Duration, ca_pem: Option<&str>) -> Result<Client, Error> {
        let tls = url.tls.then(|| tls_config(ca_pem)).transpose()?;
        Ok(Client { url, timeout, tls })
    }

    /// POSTs `body` to the hook's URL, with `token` as the bearer if any,
    /// and reads the answer.
    pub async fn post(&self, body: &[u8], token: Option<&str>) -> Result<Reply, NoReply> {
        let mut request = Request::post(self.url.path.as_str())
            .header(hyper::header::HOST, self.url.authority())
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| NoReply::Exchange(e.to_string()))?;
        self.bounded(async { exchange(self.connect().await?, request).await })
            .await
    }

    /// GETs `path` on the hook's host without a token (a kubelet probe).
    pub async fn get(&self, path: &str) -> Result<Reply, NoReply> {
        let request = Request::get(path)
            .header(hyper::header::HOST, self.url.authority())
            .body(Empty::<Bytes>::new())
            .map_err(|e| NoReply::Exchange(e.to_string()))?;
        self.bounded(async { exchange(self.connect().await?, request).await })
            .await
    }

    /// Sends the POST of [`Client::post`], waits until the hook starts to
    /// answer (so it has acted) and hangs up without reading the answer:
    /// the answer is lost, as when keyrotor restarts or its call times out
    /// just then.
    pub async fn post_and_hang_up(&self, body: &[u8], token: Option<&str>) -> Result<(), NoReply> {
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.url.path,
            self.url.authority(),
            body.len()
        );
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        let mut message = Zeroizing::new(head.into_bytes());
        message.extend_from_slice(body);
        self.bounded(async {
            let mut io = self.connect().await?;
            let exchanged = async {
                io.write_all(&message).await?;
                io.flush().await?;
                // The answer's first byte, then nothing more.
                io.read(&mut [0u8; 1]).await
            };
            match exchanged.await {
                Ok(0) => Err(NoReply::Exchange("closed without an answer".into())),
                Ok(_) => Ok(()),
                Err(e) => Err(NoReply::Exchange(e.to_string())),
            }
        })
        .await
    }

    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, NoReply>>,
    ) -> Result<T, NoReply> {
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or(Err(NoReply::Timeout(self.timeout)))
    }

    async fn connect(&self) -> Result<Box<dyn Io>, NoReply> {
        let authority = self.url.authority();
        let tcp = TcpStream::connect((self.url.host.as_str(), self.url.port))
            .await
            .map_err(|e| NoReply::Connect(format!("{authority}: {e}")))?;
        let Some(config) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let name = rustls::pki_types::ServerName::try_from(self.url.host.clone())
            .map_err(|e| NoReply::Connect(format!("{authority}: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| NoReply::Connect(format!("TLS with {authority}: {e}")))?;
        Ok(Box::new(stream))
    }
}

async fn exchange<B>(io: Box<dyn Io>, request: Request<B>) -> Result<Reply, NoReply>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let failed = |e: hyper::Error| NoReply::Exchange(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(failed)?;
    let conn = tokio::spawn(conn);
    let result = async {
        let response = sender.send_request(request).await.map_err(failed)?;
        let status = response.status().as_u16();
        // One byte past the cap is enough to know an answer is too long.
        let mut body = Zeroizing::new(Vec::new());
        let mut limited = Limited::new(response.into_body(), MAX_ANSWER + 1);
        while let Some(frame) = limited.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        body.extend_from_slice(data);
                    }
                }
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    body.resize(MAX_ANSWER + 1, b' ');
                    break;
                }
                Err(e) => return Err(NoReply::Exchange(e.to_string())),
            }
        }
        Ok(Reply { status, body })
    }
    .await;
    conn.abort();
    result
}

fn tls_config(ca_pem: Option<&str>) -> Result<Arc<rustls::ClientConfig>, Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let bad = |e: String| Error::CaBundle(e);
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots
                    .add(cert.map_err(|e| bad(e.to_string()))?)
                    .map_err(|e| bad(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(bad("no CERTIFICATE block".into()));
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
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_host_port_and_path() {
        let u = Url::parse("http://hook.ns.svc:8080/v1/redis").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "hook.ns.svc", 8080, "/v1/redis")
        );
        let u = Url::parse("https://hook.example").unwrap();
        assert_eq!((u.tls, u.port, u.path.as_str()), (true, 443, "/"));
        let u = Url::parse("http://[::1]:9/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.authority().as_str()),
            ("::1", 9, "[::1]:9")
        );
        assert!(Url::parse("ftp://x").is_err());
        assert!(Url::parse("http://:80/").is_err());
        assert!(Url::parse("http://h:port/").is_err());
    }
}
