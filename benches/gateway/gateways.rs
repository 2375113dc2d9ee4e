//! The gateways the bench puts in front of the endpoint, as host processes
//! on 127.0.0.1, each serving on one thread and each with two routes to the
//! same upstream: `/open` without the check and `/checked` with it. nginx
//! uses `auth_request` as docs/gateways.md shows; Envoy and Traefik run
//! their examples' check configuration (keyrotor_testsupport::gateways),
//! the check switched off per route for `/open`. Each is stopped by PID
//! when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use keyrotor_testsupport::gateways::{self as g, Ports};
use serde_json::{Value, json};

/// A gateway process and the directory of its configuration.
pub struct Running {
    /// What the bench's table names it: the gateway, its version, how it checks.
    pub name: String,
    pub addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keyrotor-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `command`, serving on 127.0.0.1:`port` (the caller waits until
/// its routes answer).
fn start(name: String, mut command: Command, dir: PathBuf, port: u16) -> Result<Running, String> {
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    Ok(Running {
        name,
        addr,
        child,
        dir,
    })
}

/// Debian's nginx, one serving process (`master_process off`: stopping it
/// by PID stops all of nginx), `auth_request` on `/checked`.
pub fn nginx(endpoint: SocketAddr, app: SocketAddr) -> Result<Running, String> {
    let binary = Path::new("/usr/sbin/nginx");
    if !binary.exists() {
        return Err("/usr/sbin/nginx missing: .ci/debs nginx".into());
    }
    let port = free_port();
    let dir = workdir("nginx");
    let conf = format!(
        r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream app {{ server {app}; keepalive 16; keepalive_requests 10000000; }}
  upstream keyrotor_verifier {{ server {endpoint}; keepalive 16; keepalive_requests 10000000; }}
  server {{
    listen 127.0.0.1:{port};
    # One client connection for the whole run (the default closes it after 1,000).
    keepalive_requests 10000000;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location /open {{ proxy_pass http://app; }}
    location /checked {{
      auth_request /_keyrotor;
      proxy_pass http://app;
    }}
    location = /_keyrotor {{
      internal;
      proxy_pass http://keyrotor_verifier;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
    }}
  }}
}}
"#,
        d = dir.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let mut command = Command::new(binary);
    command.arg("-c").arg(&path).args(["-e", "stderr"]);
    let out = Command::new(binary).arg("-v").output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    let version = said.trim().rsplit('/').next().unwrap_or("?").to_string();
    start(format!("nginx {version}, auth_request"), command, dir, port)
}

/// Envoy with `--concurrency 1` (one worker thread), the example's
/// `ext_authz` filter, switched off on `/open`.
pub fn envoy(endpoint: SocketAddr, app: SocketAddr) -> Result<Running, String> {
    let binary = g::envoy()?;
    let port = free_port();
    let ports = Ports {
        gateway: port,
        verifier: endpoint.port(),
        app: app.port(),
    };
    let mut config: Value = serde_yaml::from_str(&g::envoy_yaml(ports)).unwrap();
    let hcm = &mut config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let host = &mut hcm["route_config"]["virtual_hosts"][0];
    let to_api = host["routes"][0]["route"].clone();
    host["routes"] = json!([
        {
            "match": {"prefix": "/open"}, "route": to_api,
            "typed_per_filter_config": {"envoy.filters.http.ext_authz": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
                "disabled": true,
            }},
        },
        {"match": {"prefix": "/checked"}, "route": to_api},
    ]);
    let dir = workdir("envoy");
    let path = dir.join("envoy.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut command = Command::new(&binary);
    command.arg("-c").arg(&path).args([
        "--concurrency",
        "1",
        "--disable-hot-restart",
        "--log-level",
        "warn",
    ]);
    let out = Command::new(&binary).arg("--version").output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    // `<path>  version: <commit>/1.40.0/Clean/RELEASE/BoringSSL`
    let version = said
        .split("version: ")
        .nth(1)
        .and_then(|v| v.split('/').nth(1))
        .unwrap_or("?")
        .to_string();
    start(format!("Envoy {version}, ext_authz"), command, dir, port)
}

/// Traefik with `GOMAXPROCS=1` (Go code on one thread at a time), the
/// example Middleware's `forwardAuth` on `/checked` (file provider).
pub fn traefik(endpoint: SocketAddr, app: SocketAddr) -> Result<Running, String> {
    let binary = g::traefik()?;
    let port = free_port();
    let dir = workdir("traefik");
    let dynamic = json!({"http": {
        "routers": {
            "open": {"entryPoints": ["web"], "rule": "PathPrefix(`/open`)", "service": "app"},
            "checked": {
                "entryPoints": ["web"], "rule": "PathPrefix(`/checked`)", "service": "app",
                "middlewares": ["keyrotor"],
            },
        },
        "middlewares": {"keyrotor": {"forwardAuth": g::traefik_forward_auth(endpoint.port())}},
        "services": {"app": {"loadBalancer": {"servers": [{"url": format!("http://{app}")}]}}},
    }});
    // JSON is YAML, which the file provider reads.
    let path = dir.join("dynamic.yaml");
    std::fs::write(&path, dynamic.to_string()).unwrap();
    let mut command = Command::new(&binary);
    command
        .env("GOMAXPROCS", "1")
        .arg(format!("--entryPoints.web.address=127.0.0.1:{port}"))
        .arg(format!("--providers.file.filename={}", path.display()))
        .args([
            "--global.checkNewVersion=false",
            "--global.sendAnonymousUsage=false",
            "--log.level=ERROR",
        ]);
    let out = Command::new(&binary).arg("version").output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    let version = said
        .lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .unwrap_or("?")
        .trim()
        .to_string();
    start(
        format!("Traefik {version}, ForwardAuth"),
        command,
        dir,
        port,
    )
}
