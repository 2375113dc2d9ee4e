//! Clients of the test PostgreSQL that log in the way an app of
//! alternating users does: the user name and password of their presenter
//! Secret, read together, a new session every 25 ms.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use keyrotor_hooks::postgres::wire::{Connection, Login};
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use super::PostgresServer;

/// What a client's volume holds: the user name and password of one
/// version, and the revision that says when it changed.
pub struct Credential {
    pub username: String,
    pub password: Zeroizing<String>,
    pub revision: String,
}

/// A client's presenter Secret as the API holds it: `username` and `key`
/// from one read (a keyrotor presenter Secret with user names, or the
/// naive rotation's), and the report of what the client loaded.
pub struct PresenterSecret {
    pub volume: crate::redis::SecretVolume,
}

impl PresenterSecret {
    /// Reads the Secret; panics on a key without a user name, which no
    /// client of alternating users could log in with.
    pub async fn load(&self) -> Option<Credential> {
        let s = self
            .volume
            .secrets
            .get_opt(&self.volume.name)
            .await
            .ok()??;
        let data = s.data.as_ref()?;
        let text = |f: &str| Some(String::from_utf8_lossy(&data.get(f)?.0).into_owned());
        let password = Zeroizing::new(text(keyrotor::wire::KEY)?);
        let username = text(keyrotor::wire::USERNAME_FILE).unwrap_or_else(|| {
            panic!(
                "Secret {} has a key but no `username` file: the presenter Secret of a \
                 rotation with spec.usernames must carry the version's user name",
                self.volume.name
            )
        });
        let revision = text(keyrotor::wire::REVISION_FILE).unwrap_or_else(|| password.to_string());
        Some(Credential {
            username,
            password,
            revision,
        })
    }
}

/// Login outcomes of the clients: refused by PostgreSQL (a wrong
/// password, a role that cannot log in), or failed otherwise.
#[derive(Default)]
pub struct Logins {
    pub ok: AtomicU64,
    pub refused: AtomicU64,
    pub errors: AtomicU64,
}

impl Logins {
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
    pub fn total(&self) -> u64 {
        self.ok() + self.refused() + self.errors()
    }
}

/// Clients of one PostgreSQL: each opens a new session every 25 ms with
/// the user name and password it loaded last, and reloads them 100–600 ms
/// after a change (a kubelet's lag, each client its own), so a change
/// reaches the clients one by one.
pub struct Clients {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    logins: Arc<Logins>,
}

impl Clients {
    pub fn start(pg: &PostgresServer, sources: Vec<PresenterSecret>) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let logins = Arc::new(Logins::default());
        let tasks = sources
            .into_iter()
            .enumerate()
            .map(|(i, source)| {
                let (stop, logins, address) = (stop.clone(), logins.clone(), pg.address());
                tokio::spawn(client(i as u64, address, source, stop, logins))
            })
            .collect();
        Clients {
            stop,
            tasks,
            logins,
        }
    }

    /// Stops them; a client's panic (a Secret without a user name) is the
    /// caller's.
    pub async fn stop(self) -> Arc<Logins> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            if let Err(e) = t.await
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        self.logins
    }
}

async fn client(
    seed: u64,
    address: String,
    source: PresenterSecret,
    stop: Arc<AtomicBool>,
    logins: Arc<Logins>,
) {
    let mut rng = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut lag = move || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Duration::from_millis(100 + (rng >> 33) % 500)
    };
    let mut held: Option<Credential> = None;
    let mut reload_at = tokio::time::Instant::now();
    // Bounded: a test stops its clients; 30 minutes is the backstop.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1800);
    while !stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
        if tokio::time::Instant::now() >= reload_at {
            if let Some(fresh) = source.load().await
                && held.as_ref().map(|c| &c.revision) != Some(&fresh.revision)
            {
                let revision = fresh.revision.clone();
                held = Some(fresh);
                crate::redis::KeySource::loaded(&source.volume, revision).await;
            }
            reload_at = tokio::time::Instant::now() + lag();
        }
        if let Some(c) = &held {
            let login = Login {
                user: c.username.clone(),
                password: c.password.clone(),
                database: "postgres".into(),
            };
            let counter = match Connection::login(&address, &login).await {
                Ok(session) => {
                    session.close().await;
                    &logins.ok
                }
                Err(e) if e.sqlstate().is_some_and(|s| s.starts_with("28")) => &logins.refused,
                Err(_) => &logins.errors,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
