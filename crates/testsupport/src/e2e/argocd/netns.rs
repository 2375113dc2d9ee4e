//! A network namespace with only loopback, for a process that binds
//! `0.0.0.0` with no flag to say otherwise (Argo CD's application controller
//! and its metrics port 8082), and relays that carry its connections to
//! ports on the host's loopback. The namespace lives as long as its holder
//! (`sleep`, started by `unshare --net` and stopped by its PID); a relay
//! listens inside it, on a socket a thread made after entering it (a socket
//! belongs to the namespace of the thread that creates it), and connects on
//! the host's side. Nothing leaves loopback.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

pub struct Netns {
    holder: Child,
    /// `/proc/<holder>/ns/net`.
    path: PathBuf,
}

impl Netns {
    /// A new network namespace whose loopback is up.
    pub fn new() -> Netns {
        let mut holder = Command::new("unshare")
            .args(["--net", "--", "sh", "-c"])
            .arg("ip link set lo up && echo up && exec sleep 86400")
            .stdout(Stdio::piped())
            .spawn()
            .expect("run unshare (util-linux) and ip (iproute2) as root");
        let mut line = String::new();
        let stdout = holder.stdout.take().expect("the holder's stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        let path = PathBuf::from(format!("/proc/{}/ns/net", holder.id()));
        let ns = Netns { holder, path };
        assert_eq!(
            line.trim(),
            "up",
            "the network namespace's loopback is not up"
        );
        ns
    }

    /// `program` run inside the namespace. nsenter execs it, so the child's
    /// PID is the program's own.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path.display()))
            .arg("--")
            .arg(program);
        c
    }

    /// Carries connections to 127.0.0.1:`port` inside the namespace to
    /// 127.0.0.1:`port` on the host, until the relay is dropped.
    pub fn relay(&self, port: u16) -> Relay {
        let ns = File::open(&self.path).expect("open the network namespace");
        let listener = std::thread::spawn(move || {
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))?;
            let l = TcpListener::bind(("127.0.0.1", port))?;
            l.set_nonblocking(true)?;
            Ok::<_, std::io::Error>(l)
        })
        .join()
        .expect("the thread that entered the namespace")
        .expect("listen inside the network namespace");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let accept = std::thread::spawn(move || {
            // Polled, so that a drop ends it; connections end with their peers.
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((inside, _)) => carry(inside, port),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Relay {
            stop,
            accept: Some(accept),
        }
    }
}

/// Copies both ways between a connection made inside the namespace and a
/// new one to the host's port, each way on its own thread.
fn carry(inside: TcpStream, port: u16) {
    let Ok(host) = TcpStream::connect(("127.0.0.1", port)) else {
        return; // the client sees its connection closed, as if refused
    };
    let _ = inside.set_nonblocking(false);
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    };
    if let (Ok(inside2), Ok(host2)) = (inside.try_clone(), host.try_clone()) {
        pipe(inside, host);
        pipe(host2, inside2);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

pub struct Relay {
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}
