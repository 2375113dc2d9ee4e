//! Records every Secret and Pod change in the namespace (ordered by the global
//! resourceVersion) and checks, over the whole history, that:
//! - I1: the presenter Secret's current version is in the verifier Secret's accepted set;
//! - zero rejections: no pod that reported holding a presenter key sends one
//!   that a pod which reported its verifier revision would reject (I2/I3 as users see them);
//! - I5: a version number never changes its fingerprint and numbers only grow;
//! - I4: no key ever appears in an ApiKeyRotation (spec, status) or Event.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use keyrotor::rotation::invariants::{VersionLedger, check_current_accepted};
use keyrotor::wire::{self as k, RevisionReport};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use tokio::task::JoinHandle;

/// No `Debug`: a recorded Secret holds key material (I4).
#[derive(Clone)]
enum Change {
    Secret(Box<Secret>),
    SecretGone(String),
    Pod(Box<Pod>),
    PodGone(String),
    /// A (re)list: every Secret at once, one consistent snapshot. After a
    /// watch was lost (an API server restart), the changes in between are
    /// not seen; the snapshot is checked as a whole, not object by object
    /// (each object's own resourceVersion would order it among states that
    /// were never observed).
    Secrets(Vec<Secret>),
    /// The same for pods.
    Pods(Vec<Pod>),
}

/// The latest resourceVersion among a snapshot's objects.
fn max_rv<K: ResourceExt>(objs: &[K]) -> u64 {
    objs.iter().map(rv).max().unwrap_or(0)
}

pub struct Observer {
    log: Arc<Mutex<Vec<(u64, Change)>>>,
    tasks: Vec<JoinHandle<()>>,
}

fn rv(obj: &impl ResourceExt) -> u64 {
    obj.resource_version()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn num(s: &Secret, key: &str) -> Option<u64> {
    s.annotations().get(key).and_then(|v| v.parse::<u64>().ok())
}

fn set(s: &Secret) -> BTreeSet<u64> {
    s.annotations()
        .get(k::ACCEPTED)
        .map(|a| a.split(',').filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default()
}

impl Observer {
    pub async fn start(client: Client, ns: &str) -> Observer {
        let log = Arc::new(Mutex::new(Vec::new()));
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let pods: Api<Pod> = Api::namespaced(client, ns);
        let l1 = log.clone();
        let t1 = tokio::spawn(async move {
            // Errors (a halted API, a cut watch, 410) are retried with backoff: the
            // history must cover crashes too.
            let mut s = watcher::watcher(secrets, watcher::Config::default())
                .default_backoff()
                .boxed();
            let mut listing = Vec::new();
            while let Some(ev) = s.next().await {
                let Ok(ev) = ev else { continue };
                let mut log = l1.lock().unwrap();
                match ev {
                    Event::Apply(o) => log.push((rv(&o), Change::Secret(Box::new(o)))),
                    Event::Delete(o) => log.push((u64::MAX, Change::SecretGone(o.name_any()))),
                    Event::Init => listing.clear(),
                    Event::InitApply(o) => listing.push(o),
                    Event::InitDone => {
                        let all = std::mem::take(&mut listing);
                        log.push((max_rv(&all), Change::Secrets(all)));
                    }
                }
            }
        });
        let l2 = log.clone();
        let t2 = tokio::spawn(async move {
            // Errors (a halted API, a cut watch, 410) are retried with backoff: the
            // history must cover crashes too.
            let mut s = watcher::watcher(pods, watcher::Config::default())
                .default_backoff()
                .boxed();
            let mut listing = Vec::new();
            while let Some(ev) = s.next().await {
                let Ok(ev) = ev else { continue };
                let mut log = l2.lock().unwrap();
                match ev {
                    Event::Apply(o) => log.push((rv(&o), Change::Pod(Box::new(o)))),
                    Event::Delete(o) => log.push((u64::MAX, Change::PodGone(o.name_any()))),
                    Event::Init => listing.clear(),
                    Event::InitApply(o) => listing.push(o),
                    Event::InitDone => {
                        let all = std::mem::take(&mut listing);
                        log.push((max_rv(&all), Change::Pods(all)));
                    }
                }
            }
        });
        Observer {
            log,
            tasks: vec![t1, t2],
        }
    }

    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Everything recorded, in the order the API server made the changes;
    /// a snapshot is spread into its objects, and only the last of them is
    /// marked `true` (a state to check: the others are halfway through it).
    fn ordered(&self) -> Vec<(u64, Change, bool)> {
        let mut log = self.log.lock().unwrap().clone();
        // Deletions carry no resourceVersion here; keep them in arrival order
        // after the change they follow.
        let mut last = 0;
        for (v, _) in log.iter_mut() {
            if *v == u64::MAX {
                *v = last;
            } else {
                last = *v;
            }
        }
        log.sort_by_key(|(v, _)| *v);
        let mut flat = Vec::with_capacity(log.len());
        for (v, change) in log {
            let parts: Vec<Change> = match change {
                Change::Secrets(all) => all
                    .into_iter()
                    .map(|o| Change::Secret(Box::new(o)))
                    .collect(),
                Change::Pods(all) => all.into_iter().map(|o| Change::Pod(Box::new(o))).collect(),
                one => vec![one],
            };
            let n = parts.len();
            flat.extend(
                parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| (v, c, i + 1 == n)),
            );
        }
        flat
    }

    /// Every key (plain key material) any recorded Secret held: what must
    /// never show up in logs, events or status (I4).
    pub fn keys(&self) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        for (_, change, _) in self.ordered() {
            let Change::Secret(s) = change else { continue };
            for (name, value) in s.data.iter().flatten() {
                if name == k::KEY || name.ends_with(".key") {
                    keys.insert(String::from_utf8_lossy(&value.0).into_owned());
                }
            }
        }
        keys
    }

    /// The pods that existed at the first recorded Secret change that
    /// satisfies `when` (called on every Secret change in order); None if none did.
    pub fn pods_at(&self, mut when: impl FnMut(&Secret) -> bool) -> Option<Vec<Pod>> {
        let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
        for (_, change, _) in self.ordered() {
            match change {
                Change::Secret(s) if when(&s) => return Some(pods.into_values().collect()),
                Change::Pod(p) => {
                    pods.insert(p.name_any(), *p);
                }
                Change::PodGone(name) => {
                    pods.remove(&name);
                }
                _ => {}
            }
        }
        None
    }

    /// The pods that existed when the verifier Secret `verifier` first stopped
    /// accepting `version` (after having accepted it).
    pub fn pods_when_dropped(&self, verifier: &str, version: u64) -> Option<Vec<Pod>> {
        let mut seen = false;
        self.pods_at(|s| {
            if s.name_any() != verifier {
                return false;
            }
            let accepted = set(s).contains(&version);
            let dropped = seen && !accepted;
            seen |= accepted;
            dropped
        })
    }

    /// Checks the invariants of rotation `rotation` over everything recorded.
    /// `excused` versions may be rejected (revoked, or retired on timeout).
    pub fn check(
        &self,
        rotation: &str,
        verifier: &str,
        presenter: &str,
        excused: &[u64],
    ) -> Result<usize, String> {
        let log = self.ordered();
        let combined = verifier == presenter;
        let mut accepted_by_rev: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
        let mut current_by_rev: BTreeMap<u64, u64> = BTreeMap::new();
        let mut accepted: Option<BTreeSet<u64>> = None;
        let mut current: Option<u64> = None;
        let mut pods: BTreeMap<String, (Option<u64>, Option<u64>)> = BTreeMap::new();
        let mut ledger = VersionLedger::default();
        for (i, (_, change, whole)) in log.iter().enumerate() {
            match change {
                Change::Secret(s) => {
                    let name = s.name_any();
                    if name == verifier || (combined && name == presenter) {
                        if let Some(r) = num(s, k::REVISION) {
                            accepted_by_rev.insert(r, set(s));
                            if let Some(c) = num(s, k::CURRENT).filter(|_| combined) {
                                current_by_rev.insert(r, c);
                            }
                        }
                        accepted = Some(set(s));
                        if combined {
                            current = num(s, k::CURRENT);
                        }
                    } else if name == presenter {
                        if let (Some(r), Some(c)) = (num(s, k::REVISION), num(s, k::CURRENT)) {
                            current_by_rev.insert(r, c);
                        }
                        current = num(s, k::CURRENT);
                    }
                    let ours =
                        s.labels().get(k::ROTATION_LABEL).map(String::as_str) == Some(rotation);
                    if let (true, Some(v), Some(fp)) = (
                        ours,
                        s.labels()
                            .get(k::VERSION_LABEL)
                            .and_then(|v| v.parse().ok()),
                        s.annotations().get(k::FINGERPRINT),
                    ) {
                        ledger.observe(v, fp)?;
                    }
                }
                Change::SecretGone(name) => {
                    if name == verifier {
                        accepted = None;
                    }
                    if name == presenter {
                        current = None;
                    }
                }
                Change::Pod(p) => {
                    let r =
                        |role| RevisionReport::read(p.annotations(), rotation, role).map(|r| r.0);
                    pods.insert(p.name_any(), (r(k::ROLE_VERIFIER), r(k::ROLE_PRESENTER)));
                }
                Change::PodGone(name) => {
                    pods.remove(name);
                }
                Change::Secrets(_) | Change::Pods(_) => unreachable!("spread by ordered()"),
            }
            if !whole {
                continue; // halfway through a snapshot
            }
            if let Some(a) = &accepted {
                check_current_accepted(a, current).map_err(|e| format!("at change {i}: {e}"))?;
            }
            for (p, (_, prev)) in &pods {
                let Some(key) = prev.and_then(|r| current_by_rev.get(&r)) else {
                    continue;
                };
                if excused.contains(key) {
                    continue;
                }
                for (q, (vrev, _)) in &pods {
                    let Some(set) = vrev.and_then(|r| accepted_by_rev.get(&r)) else {
                        continue;
                    };
                    if !set.contains(key) {
                        return Err(format!(
                            "at change {i}: presenter {p} sends version {key} but verifier {q} accepts only {set:?}"
                        ));
                    }
                }
            }
        }
        Ok(log.len())
    }
}
