//! A minimal Redis client: RESP2 commands over one TCP connection, the
//! replies the ACL commands give (simple strings, errors, integers, bulk
//! strings, arrays). Arguments may hold secrets, so nothing here logs and
//! errors never echo a command.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One reply.
#[derive(Debug, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The text of a string reply (simple or bulk).
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

pub struct Connection {
    stream: BufReader<TcpStream>,
}

/// Longest bulk string or array accepted from the server.
const MAX_LEN: i64 = 1 << 20;
/// Longest reply line (a type byte, a simple string or a length).
const MAX_LINE: u64 = 64 * 1024;
/// Deepest nesting of arrays (ACL GETUSER nests two).
const MAX_DEPTH: usize = 8;
/// How long one command may wait for its reply.
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Connection {
    pub async fn connect(address: &str) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream: BufReader::new(stream),
        })
    }

    /// Sends one command and reads its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> std::io::Result<Reply> {
        let mut out = zeroize::Zeroizing::new(format!("*{}\r\n", args.len()).into_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&out).await?;
        // A Redis that stops answering must not hold the hook's lock forever.
        match tokio::time::timeout(REPLY_TIMEOUT, self.read(0)).await {
            Ok(reply) => reply,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "redis protocol: no reply in time",
            )),
        }
    }

    fn read(&mut self, depth: usize) -> futures::future::BoxFuture<'_, std::io::Result<Reply>> {
        Box::pin(async move {
            if depth > MAX_DEPTH {
                return Err(bad("replies nested too deep"));
            }
            let mut line = String::new();
            let n = (&mut self.stream)
                .take(MAX_LINE)
                .read_line(&mut line)
                .await?;
            if n == 0 {
                return Err(bad("connection closed"));
            }
            if !line.ends_with('\n') {
                return Err(bad("reply line too long"));
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let (kind, rest) = line.split_at(line.len().min(1));
            let number = || rest.parse::<i64>().map_err(|_| bad("bad length"));
            Ok(match kind {
                "+" => Reply::Simple(rest.to_string()),
                "-" => Reply::Error(rest.to_string()),
                ":" => Reply::Int(number()?),
                "$" => match number()? {
                    n if n < 0 => Reply::Bulk(None),
                    n if n > MAX_LEN => return Err(bad("bulk string too long")),
                    n => {
                        let mut buf = vec![0; n as usize + 2];
                        self.stream.read_exact(&mut buf).await?;
                        buf.truncate(n as usize);
                        Reply::Bulk(Some(buf))
                    }
                },
                "*" => match number()? {
                    n if n < 0 => Reply::Array(None),
                    n if n > MAX_LEN => return Err(bad("array too long")),
                    n => {
                        // Grown as elements arrive, not reserved from the length.
                        let mut items = Vec::with_capacity((n as usize).min(64));
                        for _ in 0..n {
                            items.push(self.read(depth + 1).await?);
                        }
                        Reply::Array(Some(items))
                    }
                },
                _ => return Err(bad("unknown reply type")),
            })
        })
    }
}

fn bad(what: &'static str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("redis protocol: {what}"),
    )
}
