//! Records every Secret and Pod change in one namespace or several (ordered
//! by the global resourceVersion, which etcd keeps across namespaces) and
//! checks, over the whole history, that:
//! - I1: every presenter Secret's current version (the home one and each
//!   copy in another namespace) is in every verifier Secret's accepted set
//!   (the home one and each copy), at every recorded state;
//! - zero rejections: no pod, in any observed namespace, that reported
//!   holding a presenter key sends one that a pod, in any observed
//!   namespace, which reported its verifier revision would reject (I2/I3
//!   as users see them);
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
    /// `(namespace, name)` of a deleted Secret.
    SecretGone(String, String),
    Pod(Box<Pod>),
    /// `namespace/name` of a deleted pod.
    PodGone(String),
    /// A (re)list of one namespace: every Secret at once, one consistent
    /// snapshot. After a watch was lost (an API server restart), the
    /// changes in between are not seen; the snapshot is checked as a
    /// whole, not object by object (each object's own resourceVersion
    /// would order it among states that were never observed).
    Secrets(Vec<Secret>),
    /// The same for pods.
    Pods(Vec<Pod>),
}

/// The latest resourceVersion among a snapshot's objects.
fn max_rv<K: ResourceExt>(objs: &[K]) -> u64 {
    objs.iter().map(rv).max().unwrap_or(0)
}

type Log = Arc<Mutex<Vec<(u64, Change)>>>;

pub struct Observer {
    log: Log,
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

fn namespace(obj: &impl ResourceExt) -> String {
    obj.namespace().unwrap_or_default()
}

/// A pod's key in the history: `namespace/name` (names repeat across namespaces).
fn pod_id(p: &Pod) -> String {
    format!("{}/{}", namespace(p), p.name_any())
}

/// Records one kind's changes into `log`, with `wrap` turning an object, a
/// deletion and a snapshot into changes. Errors (a halted API, a cut watch,
/// 410) are retried with backoff: the history must cover crashes too.
fn record<K>(
    api: Api<K>,
    log: Log,
    one: fn(K) -> Change,
    gone: fn(K) -> Change,
    all: fn(Vec<K>) -> Change,
) -> JoinHandle<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    tokio::spawn(async move {
        let mut s = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut listing = Vec::new();
        while let Some(ev) = s.next().await {
            let Ok(ev) = ev else { continue };
            let mut log = log.lock().unwrap();
            match ev {
                Event::Apply(o) => log.push((rv(&o), one(o))),
                Event::Delete(o) => log.push((u64::MAX, gone(o))),
                Event::Init => listing.clear(),
                Event::InitApply(o) => listing.push(o),
                Event::InitDone => {
                    let snapshot = std::mem::take(&mut listing);
                    log.push((max_rv(&snapshot), all(snapshot)));
                }
            }
        }
    })
}

impl Observer {
    /// Records namespace `ns`.
    pub async fn start(client: Client, ns: &str) -> Observer {
        Observer::start_in(client, &[ns]).await
    }

    /// Records every namespace of `namespaces` (a rotation's home and the
    /// namespaces holding its copies) into one history.
    pub async fn start_in(client: Client, namespaces: &[&str]) -> Observer {
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for ns in namespaces {
            tasks.push(record(
                Api::<Secret>::namespaced(client.clone(), ns),
                log.clone(),
                |s| Change::Secret(Box::new(s)),
                |s| Change::SecretGone(namespace(&s), s.name_any()),
                Change::Secrets,
            ));
            tasks.push(record(
                Api::<Pod>::namespaced(client.clone(), ns),
                log.clone(),
                |p| Change::Pod(Box::new(p)),
                |p| Change::PodGone(pod_id(&p)),
                Change::Pods,
            ));
        }
        Observer { log, tasks }
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

    /// Every recorded state of the Secrets named `name` (in each observed
    /// namespace: copies too), in the order the API server made them.
    pub fn secret_states(&self, name: &str) -> Vec<Secret> {
        self.ordered()
            .into_iter()
            .filter_map(|(_, change, _)| match change {
                Change::Secret(s) if s.name_any() == name => Some(*s),
                _ => None,
            })
            .collect()
    }

    /// The pods that existed at the first recorded Secret change that
    /// satisfies `when` (called on every Secret change in order); None if none did.
    pub fn pods_at(&self, mut when: impl FnMut(&Secret) -> bool) -> Option<Vec<Pod>> {
        let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
        for (_, change, _) in self.ordered() {
            match change {
                Change::Secret(s) if when(&s) => return Some(pods.into_values().collect()),
                Change::Pod(p) => {
                    pods.insert(pod_id(&p), *p);
                }
                Change::PodGone(id) => {
                    pods.remove(&id);
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

    /// Checks the invariants of rotation `rotation` over everything recorded,
    /// in every observed namespace (`verifier` and `presenter` name the
    /// Secrets, which keep their names in each namespace). `excused`
    /// versions may be rejected (revoked, or retired on timeout). Returns
    /// how many changes were checked.
    pub fn check(
        &self,
        rotation: &str,
        verifier: &str,
        presenter: &str,
        excused: &[u64],
    ) -> Result<usize, String> {
        let log = self.ordered();
        let mut state = State::new(rotation, verifier, presenter);
        for (i, (_, change, whole)) in log.iter().enumerate() {
            state.apply(change)?;
            if *whole {
                // Not halfway through a snapshot.
                state
                    .check(excused)
                    .map_err(|e| format!("at change {i}: {e}"))?;
            }
        }
        Ok(log.len())
    }
}

/// What the history says at one point: the Secrets' sets and versions per
/// namespace, and what each pod reported.
struct State<'a> {
    rotation: &'a str,
    verifier: &'a str,
    presenter: &'a str,
    /// Each revision's accepted set (a copy has its home Secret's revision).
    accepted_by_rev: BTreeMap<u64, BTreeSet<u64>>,
    /// Each revision's current version.
    current_by_rev: BTreeMap<u64, u64>,
    /// The verifier Secret's accepted set, per namespace.
    accepted: BTreeMap<String, BTreeSet<u64>>,
    /// The presenter Secret's current version, per namespace.
    current: BTreeMap<String, u64>,
    /// Per pod (`namespace/name`): the verifier and presenter revisions it reported.
    pods: BTreeMap<String, (Option<u64>, Option<u64>)>,
    ledger: VersionLedger,
}

impl<'a> State<'a> {
    fn new(rotation: &'a str, verifier: &'a str, presenter: &'a str) -> State<'a> {
        State {
            rotation,
            verifier,
            presenter,
            accepted_by_rev: BTreeMap::new(),
            current_by_rev: BTreeMap::new(),
            accepted: BTreeMap::new(),
            current: BTreeMap::new(),
            pods: BTreeMap::new(),
            ledger: VersionLedger::default(),
        }
    }

    fn combined(&self) -> bool {
        self.verifier == self.presenter
    }

    fn apply(&mut self, change: &Change) -> Result<(), String> {
        match change {
            Change::Secret(s) => self.secret(s)?,
            Change::SecretGone(ns, name) => {
                if name == self.verifier {
                    self.accepted.remove(ns);
                }
                if name == self.presenter {
                    self.current.remove(ns);
                }
            }
            Change::Pod(p) => {
                let r =
                    |role| RevisionReport::read(p.annotations(), self.rotation, role).map(|r| r.0);
                let reports = (r(k::ROLE_VERIFIER), r(k::ROLE_PRESENTER));
                self.pods.insert(pod_id(p), reports);
            }
            Change::PodGone(id) => {
                self.pods.remove(id);
            }
            Change::Secrets(_) | Change::Pods(_) => unreachable!("spread by ordered()"),
        }
        Ok(())
    }

    fn secret(&mut self, s: &Secret) -> Result<(), String> {
        let (name, ns) = (s.name_any(), namespace(s));
        let combined = self.combined();
        if name == self.verifier {
            if let Some(r) = num(s, k::REVISION) {
                self.accepted_by_rev.insert(r, set(s));
                if let Some(c) = num(s, k::CURRENT).filter(|_| combined) {
                    self.current_by_rev.insert(r, c);
                }
            }
            self.accepted.insert(ns.clone(), set(s));
            if combined {
                self.set_current(&ns, num(s, k::CURRENT));
            }
        } else if name == self.presenter {
            if let (Some(r), Some(c)) = (num(s, k::REVISION), num(s, k::CURRENT)) {
                self.current_by_rev.insert(r, c);
            }
            self.set_current(&ns, num(s, k::CURRENT));
        }
        let ours = s.labels().get(k::ROTATION_LABEL).map(String::as_str) == Some(self.rotation);
        let version = s
            .labels()
            .get(k::VERSION_LABEL)
            .and_then(|v| v.parse().ok());
        if let (true, Some(v), Some(fp)) = (ours, version, s.annotations().get(k::FINGERPRINT)) {
            self.ledger.observe(v, fp)?;
        }
        Ok(())
    }

    fn set_current(&mut self, ns: &str, current: Option<u64>) {
        match current {
            Some(c) => self.current.insert(ns.to_string(), c),
            None => self.current.remove(ns),
        };
    }

    /// I1 between every pair of verifier and presenter Secrets, then no
    /// presenter pod's key that a verifier pod would reject.
    fn check(&self, excused: &[u64]) -> Result<(), String> {
        for (vns, a) in &self.accepted {
            for (pns, c) in &self.current {
                check_current_accepted(a, Some(*c)).map_err(|e| {
                    format!("{e} (presenter Secret in {pns}, verifier Secret in {vns})")
                })?;
            }
        }
        for (p, (_, prev)) in &self.pods {
            let Some(key) = prev.and_then(|r| self.current_by_rev.get(&r)) else {
                continue;
            };
            if excused.contains(key) {
                continue;
            }
            for (q, (vrev, _)) in &self.pods {
                let Some(set) = vrev.and_then(|r| self.accepted_by_rev.get(&r)) else {
                    continue;
                };
                if !set.contains(key) {
                    return Err(format!(
                        "presenter {p} sends version {key} but verifier {q} accepts only {set:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Patch, PatchParams, PostParams};
    use serde_json::{Value, json};

    use super::*;
    use crate::eventually::eventually_every;

    const NAMESPACES: [&str; 3] = ["orders", "checkout", "gateway"];

    /// An in-memory API with the three namespaces, and an observer of them
    /// that has listed each (six empty snapshots).
    async fn observed() -> (keyrotor_testkit::FakeApi, Client, Observer) {
        let api = keyrotor_testkit::FakeApi::new();
        let client = api.client();
        for ns in NAMESPACES {
            let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
            Api::<Namespace>::all(client.clone())
                .create(&PostParams::default(), &ns)
                .await
                .unwrap();
        }
        let observer = Observer::start_in(client.clone(), &NAMESPACES).await;
        recorded(&observer, 6).await;
        (api, client, observer)
    }

    /// Waits until the observer recorded `changes` changes (snapshots count one).
    async fn recorded(observer: &Observer, changes: usize) {
        eventually_every(
            "the observer to record every change",
            Duration::from_secs(5),
            Duration::from_millis(10),
            || async { observer.log.lock().unwrap().len() >= changes },
        )
        .await;
    }

    /// Writes projected Secret `name` of `ns` with keyrotor's `annotations`.
    async fn projected(client: &Client, ns: &str, name: &str, annotations: Value) {
        let s = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "annotations": annotations},
        });
        Api::<Secret>::namespaced(client.clone(), ns)
            .patch(name, &PatchParams::apply("test"), &Patch::Apply(&s))
            .await
            .unwrap();
    }

    fn verifier(accepted: &str, revision: u64) -> Value {
        json!({(k::ACCEPTED): accepted, (k::REVISION): revision.to_string()})
    }

    fn presenter(current: u64, revision: u64) -> Value {
        json!({(k::CURRENT): current.to_string(), (k::REVISION): revision.to_string()})
    }

    /// A pod `name` of `ns` reporting `revision` of rotation `api` for `role`.
    async fn reporting(client: &Client, ns: &str, name: &str, role: &str, revision: u64) {
        let (key, value) = RevisionReport(revision).annotation("api", role);
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {key: value}},
            "spec": {"containers": [{"name": "app", "image": "app"}]},
        }))
        .unwrap();
        Api::<Pod>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &p)
            .await
            .unwrap();
    }

    fn check(observer: &Observer) -> Result<usize, String> {
        observer.check("api", "api-verifier", "api-key", &[])
    }

    #[tokio::test]
    async fn a_presenter_copy_holding_a_version_a_verifier_copy_elsewhere_does_not_accept_is_caught()
     {
        let (_api, client, observer) = observed().await;
        projected(&client, "orders", "api-verifier", verifier("1,2", 4)).await;
        projected(&client, "checkout", "api-key", presenter(2, 5)).await;
        recorded(&observer, 8).await;
        assert!(check(&observer).is_ok());

        // A verifier copy in a third namespace that lags behind.
        projected(&client, "gateway", "api-verifier", verifier("1", 3)).await;
        recorded(&observer, 9).await;
        let e = check(&observer).unwrap_err();
        assert!(
            e.contains("version 2")
                && e.contains("presenter Secret in checkout")
                && e.contains("verifier Secret in gateway"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_presenter_pod_in_one_namespace_sending_what_a_verifier_pod_in_another_rejects_is_caught()
     {
        let (_api, client, observer) = observed().await;
        projected(&client, "orders", "api-verifier", verifier("1", 3)).await;
        projected(&client, "orders", "api-verifier", verifier("1,2", 4)).await;
        projected(&client, "checkout", "api-key", presenter(2, 6)).await;
        reporting(&client, "checkout", "client", k::ROLE_PRESENTER, 6).await;
        recorded(&observer, 10).await;
        assert!(check(&observer).is_ok(), "{:?}", check(&observer));

        // A verifier pod at home still on revision 3 (accepting only 1).
        reporting(&client, "orders", "server", k::ROLE_VERIFIER, 3).await;
        recorded(&observer, 11).await;
        let e = check(&observer).unwrap_err();
        assert!(
            e.contains("presenter checkout/client sends version 2")
                && e.contains("verifier orders/server accepts only {1}"),
            "{e}"
        );
    }
}
