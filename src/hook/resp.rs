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
        self.read().await
    }

    fn read(&mut self) -> futures::future::BoxFuture<'_, std::io::Result<Reply>> {
        Box::pin(async move {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(bad("connection closed"));
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
                        let mut items = Vec::with_capacity(n as usize);
                        for _ in 0..n {
                            items.push(self.read().await?);
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
