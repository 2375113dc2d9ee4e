//! When the controller is ready, for `/readyz`: every scope's caches have
//! synced and no watch it needs is refused.
//!
//! A refused watch (401, 403, 404: RBAC taken away, a kind not served) does
//! not heal by retrying; until someone fixes it the controller works from a
//! cache that never updates, so it must not say ready. Other watch errors
//! (a 410 relist, a dropped connection) heal by themselves within the
//! watcher's backoff, and an API that does not answer is `outage`'s to tell.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kube::runtime::watcher;
use tracing::{info, warn};

use crate::ops::Health;

pub struct Readiness {
    state: Mutex<State>,
    health: Arc<Health>,
}

struct State {
    /// Per scope: have its caches synced?
    synced: Vec<bool>,
    /// (scope, watch) → why the API refuses it.
    refused: BTreeMap<(usize, &'static str), String>,
    /// What `/readyz` says now (`None`: ready).
    said: Option<String>,
}

impl Readiness {
    pub fn new(scopes: usize, health: Arc<Health>) -> Arc<Readiness> {
        let said = Some("waiting for caches to sync".to_string());
        health.waiting(said.clone().unwrap_or_default());
        Arc::new(Readiness {
            state: Mutex::new(State {
                synced: vec![false; scopes],
                refused: BTreeMap::new(),
                said,
            }),
            health,
        })
    }

    /// A scope's caches synced, or (false) it starts afresh. A fresh start
    /// also forgets its refusals: its new watches will tell again.
    pub fn set_synced(&self, scope: usize, synced: bool) {
        self.update(|s| {
            s.synced[scope] = synced;
            if !synced {
                s.refused.retain(|(i, _), _| *i != scope);
            }
        });
    }

    /// What one watch of `scope` yielded: a refusal marks it failing, any
    /// event clears that.
    pub fn watch<K>(&self, scope: usize, watch: &'static str, event: &watcher::Result<K>) {
        let refusal = match event {
            Ok(_) => None,
            Err(e) => match refused(e) {
                Some((code, message)) => Some(format!(
                    "the {watch} watch is refused ({code}): {message}; check the operator's RBAC"
                )),
                None => return,
            },
        };
        self.update(|s| match refusal {
            Some(why) => {
                s.refused.insert((scope, watch), why);
            }
            None => {
                s.refused.remove(&(scope, watch));
            }
        });
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut s);
        let now = if let Some(why) = s.refused.values().next() {
            Some(why.clone())
        } else if s.synced.iter().all(|x| *x) {
            None
        } else {
            Some("waiting for caches to sync".to_string())
        };
        if now == s.said {
            return;
        }
        match &now {
            None => {
                info!("caches synced; ready");
                self.health.ready();
            }
            Some(why) => {
                if s.said.is_none() || s.refused.values().next() == Some(why) {
                    warn!(reason = %why, "not ready");
                }
                self.health.waiting(why.clone());
            }
        }
        s.said = now;
    }
}

/// The status code and message of an error that only a change to the
/// cluster fixes.
fn refused(e: &watcher::Error) -> Option<(u16, &str)> {
    let status = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s))
        | watcher::Error::WatchError(s) => s,
        _ => return None,
    };
    matches!(status.code, 401 | 403 | 404).then_some((status.code, status.message.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn forbidden() -> watcher::Result<()> {
        let status = Status::failure("pods is forbidden", "Forbidden").with_code(403);
        Err(watcher::Error::InitialListFailed(kube::Error::Api(
            Box::new(status),
        )))
    }

    fn gone() -> watcher::Result<()> {
        Err(watcher::Error::WatchError(Box::new(
            Status::failure("too old resource version", "Expired").with_code(410),
        )))
    }

    #[test]
    fn a_refused_watch_is_not_ready_until_it_yields_again() {
        let health = Arc::new(Health::default());
        let r = Readiness::new(2, health.clone());
        r.set_synced(0, true);
        r.set_synced(1, true);
        assert_eq!(health.waiting_for(), None);

        r.watch(1, "Pod", &forbidden());
        let why = health.waiting_for().expect("not ready while refused");
        assert!(why.contains("the Pod watch is refused (403)"), "{why}");
        // Syncing another scope does not hide it.
        r.set_synced(0, true);
        assert!(health.waiting_for().is_some());

        r.watch(1, "Pod", &Ok(()));
        assert_eq!(health.waiting_for(), None);
    }

    #[test]
    fn errors_that_heal_by_themselves_keep_ready() {
        let health = Arc::new(Health::default());
        let r = Readiness::new(1, health.clone());
        r.set_synced(0, true);
        r.watch(0, "Pod", &gone());
        assert_eq!(health.waiting_for(), None);
    }

    #[test]
    fn a_scope_started_afresh_forgets_its_refusals_and_waits_to_sync() {
        let health = Arc::new(Health::default());
        let r = Readiness::new(1, health.clone());
        r.set_synced(0, true);
        r.watch(0, "Secret", &forbidden());
        r.set_synced(0, false);
        assert_eq!(
            health.waiting_for().as_deref(),
            Some("waiting for caches to sync")
        );
        r.set_synced(0, true);
        assert_eq!(health.waiting_for(), None);
    }
}
