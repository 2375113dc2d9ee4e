//! A minimal PostgreSQL client: protocol 3.0 over one TCP connection, a
//! SCRAM-SHA-256 login ([`super::scram`]) and the simple query protocol
//! (row descriptions, data rows as text, command tags, errors). Nothing
//! else: no TLS, no extended protocol, no other login method, so a
//! password is never sent in clear or as MD5. Statements may hold secrets,
//! so nothing here logs, and errors carry the server's SQLSTATE and
//! message, never a statement.

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use super::scram::{Scram, ScramError, base64_encode};

/// Longest message accepted from the server.
const MAX_MESSAGE: usize = 1 << 20;
/// Most rows one query may answer (the hook reads two roles).
const MAX_ROWS: usize = 10_000;
/// How long connecting, logging in, or one query may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whom to log in as. The password stays out of `Debug`.
pub struct Login {
    pub user: String,
    pub password: Zeroizing<String>,
    pub database: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("database", &self.database)
            .finish()
    }
}

/// Why a login or a query failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("postgres: {0}")]
    Io(#[from] std::io::Error),
    #[error("postgres: no answer within {TIMEOUT:?}")]
    TimedOut,
    #[error("postgres protocol: {0}")]
    Protocol(&'static str),
    /// The login needs something this client does not do (cleartext,
    /// MD5, GSS, or no password check at all).
    #[error("postgres login: {0}")]
    Unsupported(&'static str),
    #[error(transparent)]
    Scram(#[from] ScramError),
    /// An ErrorResponse: SQLSTATE (e.g. `28P01` for a wrong password) and
    /// the server's message.
    #[error("postgres {sqlstate}: {message}")]
    Server { sqlstate: String, message: String },
}

impl Error {
    /// The server's SQLSTATE, if the server answered with an error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Server { sqlstate, .. } => Some(sqlstate),
            _ => None,
        }
    }
}

/// What a query answered: the last result set's columns and rows (text,
/// `None` for NULL), and each statement's command tag.
#[derive(Debug, Default, PartialEq)]
pub struct Answer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub tags: Vec<String>,
}

pub struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    /// Connects to `address` (host:port) and logs in with SCRAM-SHA-256.
    pub async fn login(address: &str, login: &Login) -> Result<Connection, Error> {
        bounded(async {
            let stream = TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            let mut c = Connection {
                stream: BufReader::new(stream),
            };
            c.startup(login).await?;
            Ok(c)
        })
        .await
    }

    /// Runs `sql` (one or more statements) with the simple query protocol.
    /// The connection stays usable after a server error.
    pub async fn query(&mut self, sql: &str) -> Result<Answer, Error> {
        bounded(async {
            let mut body = Zeroizing::new(Vec::with_capacity(sql.len() + 1));
            cstring(&mut body, sql);
            self.send(b'Q', &body).await?;
            self.answer().await
        })
        .await
    }

    /// Says goodbye (Terminate) and closes.
    pub async fn close(mut self) {
        let _ = self.send(b'X', &[]).await;
        let _ = self.stream.get_mut().shutdown().await;
    }

    async fn startup(&mut self, login: &Login) -> Result<(), Error> {
        let mut body = 196608u32.to_be_bytes().to_vec(); // protocol 3.0
        for (k, v) in [
            ("user", login.user.as_str()),
            ("database", &login.database),
            ("client_encoding", "UTF8"),
            ("application_name", "keyrotor"),
        ] {
            cstring(&mut body, k);
            cstring(&mut body, v);
        }
        body.push(0);
        let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        self.stream.get_mut().write_all(&out).await?;
        self.authenticate(&login.password).await?;
        // ParameterStatus and BackendKeyData until ready.
        loop {
            let (kind, body) = self.receive().await?;
            match kind {
                b'Z' => return Ok(()),
                b'E' => return Err(server_error(&body)),
                _ => {}
            }
        }
    }

    /// SCRAM-SHA-256 only, and the server must prove it holds the verifier
    /// before its AuthenticationOk counts: a login "proved" by a server that
    /// checks no password would prove nothing.
    async fn authenticate(&mut self, password: &str) -> Result<(), Error> {
        let (kind, body) = self.receive().await?;
        if kind == b'E' {
            return Err(server_error(&body));
        }
        if kind != b'R' {
            return Err(Error::Protocol("expected an authentication request"));
        }
        let mechanisms = match auth_code(&body)? {
            10 => &body[4..],
            0 => return Err(Error::Unsupported("the server checked no password")),
            _ => {
                return Err(Error::Unsupported(
                    "the server asks for a method other than SCRAM-SHA-256",
                ));
            }
        };
        if !mechanisms.split(|b| *b == 0).any(|m| m == b"SCRAM-SHA-256") {
            return Err(Error::Unsupported(
                "the server does not offer SCRAM-SHA-256",
            ));
        }
        let mut scram = Scram::new("", password, &nonce()?)?;
        let first = scram.client_first();
        let mut msg = Vec::new();
        cstring(&mut msg, "SCRAM-SHA-256");
        msg.extend_from_slice(&(first.len() as u32).to_be_bytes());
        msg.extend_from_slice(first.as_bytes());
        self.send(b'p', &msg).await?;
        let server_first = self.sasl_step(11).await?;
        let last = Zeroizing::new(scram.client_final(&server_first)?);
        self.send(b'p', last.as_bytes()).await?;
        scram.verify(&self.sasl_step(12).await?)?;
        match self.receive().await? {
            (b'R', body) if auth_code(&body)? == 0 => Ok(()),
            (b'E', body) => Err(server_error(&body)),
            _ => Err(Error::Protocol("expected AuthenticationOk")),
        }
    }

    /// The data of an AuthenticationSASLContinue (11) or Final (12).
    async fn sasl_step(&mut self, code: u32) -> Result<String, Error> {
        match self.receive().await? {
            (b'R', body) if auth_code(&body)? == code => String::from_utf8(body[4..].to_vec())
                .map_err(|_| Error::Protocol("SASL data is not UTF-8")),
            (b'E', body) => Err(server_error(&body)),
            _ => Err(Error::Protocol("unexpected message during SASL")),
        }
    }

    /// Reads a simple query's answer up to ReadyForQuery.
    async fn answer(&mut self) -> Result<Answer, Error> {
        let mut answer = Answer::default();
        let mut failed = None;
        loop {
            let (kind, body) = self.receive().await?;
            match kind {
                b'T' => {
                    answer.columns = columns(&body)?;
                    answer.rows.clear();
                }
                b'D' if answer.rows.len() >= MAX_ROWS => {
                    return Err(Error::Protocol("too many rows"));
                }
                b'D' => answer.rows.push(row(&body)?),
                b'C' => answer.tags.push(text(&body)?),
                b'E' => failed = Some(server_error(&body)),
                b'Z' => return failed.map_or(Ok(answer), Err),
                // EmptyQueryResponse, notices, parameter changes.
                _ => {}
            }
        }
    }

    async fn send(&mut self, kind: u8, body: &[u8]) -> Result<(), Error> {
        let mut out = Zeroizing::new(Vec::with_capacity(body.len() + 5));
        out.push(kind);
        out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(body);
        self.stream.get_mut().write_all(&out).await?;
        Ok(())
    }

    /// One message: its type byte and body, at most [`MAX_MESSAGE`].
    async fn receive(&mut self) -> Result<(u8, Vec<u8>), Error> {
        let kind = self.stream.read_u8().await?;
        let len = self.stream.read_u32().await? as usize;
        if !(4..=MAX_MESSAGE).contains(&len) {
            return Err(Error::Protocol("message length out of bounds"));
        }
        let mut body = vec![0; len - 4];
        self.stream.read_exact(&mut body).await?;
        Ok((kind, body))
    }
}

async fn bounded<T>(f: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .unwrap_or(Err(Error::TimedOut))
}

/// 18 random bytes from the kernel, base64: the client nonce.
fn nonce() -> Result<String, Error> {
    let mut bytes = [0u8; 18];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(base64_encode(&bytes))
}

fn cstring(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn auth_code(body: &[u8]) -> Result<u32, Error> {
    let b: [u8; 4] = body
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(Error::Protocol("short authentication message"))?;
    Ok(u32::from_be_bytes(b))
}

/// A body that is one NUL-terminated string.
fn text(body: &[u8]) -> Result<String, Error> {
    let s = body
        .strip_suffix(&[0])
        .ok_or(Error::Protocol("unterminated string"))?;
    String::from_utf8(s.to_vec()).map_err(|_| Error::Protocol("text is not UTF-8"))
}

/// ErrorResponse fields: `C` is the SQLSTATE, `M` the message.
fn server_error(body: &[u8]) -> Error {
    let mut sqlstate = String::new();
    let mut message = String::new();
    for field in body.split(|b| *b == 0) {
        if let Some((&code, value)) = field.split_first() {
            let value = String::from_utf8_lossy(value).into_owned();
            match code {
                b'C' => sqlstate = value,
                b'M' => message = value,
                _ => {}
            }
        }
    }
    Error::Server { sqlstate, message }
}

/// A cursor over a message body.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::Protocol("message shorter than it says"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, Error> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    fn i32(&mut self) -> Result<i32, Error> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn cstring(&mut self) -> Result<String, Error> {
        let end = self
            .0
            .iter()
            .position(|b| *b == 0)
            .ok_or(Error::Protocol("unterminated string"))?;
        let s = String::from_utf8(self.take(end)?.to_vec())
            .map_err(|_| Error::Protocol("text is not UTF-8"))?;
        self.take(1)?;
        Ok(s)
    }
}

/// RowDescription: the column names (the rest, types and formats, is
/// not needed: the simple protocol answers text).
fn columns(body: &[u8]) -> Result<Vec<String>, Error> {
    let mut c = Cursor(body);
    let n = c.i16()?.max(0) as usize;
    let mut names = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        names.push(c.cstring()?);
        c.take(18)?;
    }
    Ok(names)
}

/// DataRow: each value as text, `None` for NULL.
fn row(body: &[u8]) -> Result<Vec<Option<String>>, Error> {
    let mut c = Cursor(body);
    let n = c.i16()?.max(0) as usize;
    let mut values = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let len = c.i32()?;
        values.push(match len {
            -1 => None,
            len if len < 0 => return Err(Error::Protocol("negative value length")),
            len => Some(String::from_utf8_lossy(c.take(len as usize)?).into_owned()),
        });
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_shows_its_user_and_database_but_not_its_password() {
        let login = Login {
            user: "keyrotor_admin".into(),
            password: Zeroizing::new("hunter2-secret".into()),
            database: "app".into(),
        };
        let shown = format!("{login:?}");
        assert!(
            shown.contains("keyrotor_admin") && shown.contains("app"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn an_error_response_gives_its_sqlstate_and_message() {
        let body = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user \"app_a\"\0Rauth_failed\0\0";
        let e = server_error(body);
        assert_eq!(e.sqlstate(), Some("28P01"));
        assert_eq!(
            e.to_string(),
            "postgres 28P01: password authentication failed for user \"app_a\""
        );
    }

    #[test]
    fn rows_and_columns_are_read_with_nulls_and_truncation_is_caught() {
        let mut desc = 2i16.to_be_bytes().to_vec();
        for name in ["rolname", "comment"] {
            cstring(&mut desc, name);
            desc.extend_from_slice(&[0; 18]);
        }
        assert_eq!(columns(&desc).unwrap(), ["rolname", "comment"]);
        let mut data = 2i16.to_be_bytes().to_vec();
        data.extend_from_slice(&5i32.to_be_bytes());
        data.extend_from_slice(b"app_a");
        data.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(row(&data).unwrap(), [Some("app_a".to_string()), None]);
        assert!(matches!(row(&data[..8]), Err(Error::Protocol(_))));
        assert!(matches!(columns(&desc[..10]), Err(Error::Protocol(_))));
    }
}
