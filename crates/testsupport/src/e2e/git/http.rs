//! Git's smart HTTP protocol on loopback, for clients that take no
//! `file://` URL (Flux's GitRepository accepts http, https and ssh only):
//! each request runs `git http-backend`, Git's own CGI program, and its
//! answer goes back as the HTTP response. One connection per request
//! (`Connection: close`); the server stops when dropped. Read-only: pushes
//! are refused (http-backend's default without an authenticated user).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::GitRepo;

pub struct GitServer {
    port: u16,
    root: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl GitServer {
    /// Serves the repositories in directory `root` (each by its directory
    /// name) on a free port of 127.0.0.1.
    pub fn start(root: &Path) -> GitServer {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("listen on loopback");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (stopped, dir) = (stop.clone(), root.to_path_buf());
        let accept = std::thread::spawn(move || {
            // Polled, so that a drop ends it.
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let dir = dir.clone();
                        std::thread::spawn(move || serve(conn, &dir));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        GitServer {
            port,
            root: root.to_path_buf(),
            stop,
            accept: Some(accept),
        }
    }

    /// The HTTP URL of `repo`, which must be a directory in the root.
    pub fn url(&self, repo: &GitRepo) -> String {
        assert_eq!(
            repo.dir.parent(),
            Some(self.root.as_path()),
            "the repository is not served here"
        );
        let name = repo.dir.file_name().unwrap().to_string_lossy();
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// One request: parsed, handed to `git http-backend`, answered, closed.
fn serve(conn: TcpStream, root: &Path) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(conn.try_clone().expect("clone the connection"));
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let response = match backend(&request, root) {
        Ok(cgi) => cgi_to_http(&cgi),
        Err(e) => {
            let body = format!("git http-backend: {e}\n");
            let head = "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n";
            http_response(head, body.as_bytes())
        }
    };
    let mut conn = conn;
    let _ = conn.write_all(&response);
    let _ = conn.flush();
}

struct Request {
    method: String,
    path: String,
    query: String,
    /// Lower-cased header names.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(k, _)| k == name);
        found.map(|(_, v)| v.as_str())
    }
}

fn read_request(r: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (path, query) = (path.to_string(), query.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut req = Request {
        method,
        path,
        query,
        headers,
        body: Vec::new(),
    };
    if req.header("transfer-encoding") == Some("chunked") {
        req.body = read_chunked(r)?;
    } else if let Some(n) = req.header("content-length") {
        let mut body = vec![0; n.parse().ok()?];
        r.read_exact(&mut body).ok()?;
        req.body = body;
    }
    Some(req)
}

/// A chunked body (RFC 9112 §7.1), trailers ignored.
fn read_chunked(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size).ok()?;
        let size = size.trim().split(';').next()?;
        let n = usize::from_str_radix(size, 16).ok()?;
        if n == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut t = String::new();
                r.read_line(&mut t).ok()?;
                if t.trim().is_empty() {
                    return Some(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + n, 0);
        r.read_exact(&mut body[start..]).ok()?;
        let mut crlf = [0; 2];
        r.read_exact(&mut crlf).ok()?;
    }
}

/// Runs `git http-backend` for `req` (the CGI variables it reads); its
/// whole output.
fn backend(req: &Request, root: &Path) -> std::io::Result<Vec<u8>> {
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &req.method)
        .env("PATH_INFO", &req.path)
        .env("QUERY_STRING", &req.query)
        .env("CONTENT_LENGTH", req.body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (header, var) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(v) = req.header(header) {
            cmd.env(var, v);
        }
    }
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let body = req.body.clone();
    // Written beside the read: a large answer must not block the request.
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let out = child.wait_with_output()?;
    let _ = writer.join();
    Ok(out.stdout)
}

/// A CGI answer (headers, a `Status:` among them or 200, an empty line,
/// the body) as an HTTP/1.1 response.
fn cgi_to_http(cgi: &[u8]) -> Vec<u8> {
    let split = [&b"\r\n\r\n"[..], &b"\n\n"[..]].iter().find_map(|sep| {
        cgi.windows(sep.len())
            .position(|w| w == *sep)
            .map(|i| (i, sep.len()))
    });
    let Some((end, sep)) = split else {
        let head = "HTTP/1.1 502 Bad Gateway\r\n";
        return http_response(head, b"git http-backend gave no headers\n");
    };
    let headers = String::from_utf8_lossy(&cgi[..end]);
    let mut status = "200 OK".to_string();
    let mut head = String::new();
    for h in headers.lines().map(str::trim_end).filter(|h| !h.is_empty()) {
        match h.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
            _ => head.push_str(&format!("{h}\r\n")),
        }
    }
    http_response(&format!("HTTP/1.1 {status}\r\n{head}"), &cgi[end + sep..])
}

fn http_response(head: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_clones_a_repository_over_the_server_and_sees_its_latest_commit() {
        let root = std::env::temp_dir().join(format!("keyrotor-git-http-{}", std::process::id()));
        let repo = GitRepo::init(&root.join("repo"));
        repo.write("a.txt", "one\n");
        repo.commit("one");
        repo.write("a.txt", "two\n");
        let head = repo.commit("two");
        let server = GitServer::start(&root);
        let clone = root.join("clone");
        let out = Command::new("git")
            .args(["clone", "-q", "--branch", "main", &server.url(&repo)])
            .arg(&clone)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(clone.join("a.txt")).unwrap();
        let cloned = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&clone)
            .output()
            .unwrap();
        drop(server);
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(text, "two\n");
        assert_eq!(String::from_utf8_lossy(&cloned.stdout).trim(), head);
    }
}
