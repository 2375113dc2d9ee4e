//! How the tests' and benches' tiny HTTP/1.1 servers (a hook, an
//! upstream) read a request: bytes up to the blank line, then
//! Content-Length bytes of body. One reader, so each server says only what
//! it answers.

use tokio::io::{AsyncRead, AsyncReadExt};

/// The next whole request on `stream` (head and body), taken off the front
/// of `buf`, which keeps what a pipelining client sent after it; None once
/// the peer has closed or the read failed.
pub async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(len) = whole(buf) {
            return Some(buf.drain(..len).collect());
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The length of the first whole request in `buf`, if it holds one.
fn whole(buf: &[u8]) -> Option<usize> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let body: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (buf.len() >= end + body).then_some(end + body)
}

#[cfg(test)]
mod tests {
    use super::whole;

    #[test]
    fn a_request_is_whole_once_its_body_is_in() {
        let head = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(whole(&head[..head.len() - 1]), None);
        assert_eq!(whole(head), None);
        let mut full = head.to_vec();
        full.extend_from_slice(b"abcGET / HTTP/1.1\r\n");
        assert_eq!(whole(&full), Some(head.len() + 3));
        assert_eq!(whole(b"GET / HTTP/1.1\r\n\r\n"), Some(18));
    }
}
