//! Scenario: the upgrade from the previous release, as cert-manager's
//! `hack/verify-upgrade.sh` does it, on the real node. The previous
//! release's operator (`.ci/previous-release`: built from this repository's
//! history at the commit Cargo.toml records, imaged by the same recipe) is
//! installed with `helm install` of its own chart (its CRD and RBAC). Two
//! rotations run under it with real verifier and presenter pods calling each
//! other; in each, one consumer's reporter may not write its report yet (its
//! ServiceAccount lacks the reporter's RoleBinding), so one rotation holds
//! mid-Staging (a verifier) and the other mid-Promoting (a presenter). Then
//! `helm upgrade` to this chart and image, as CHANGELOG.md's "Upgrading from
//! 0.1.0" says (the CRD and the Namespaces RBAC come with it); the new
//! operator must hold both where they are until the test grants the
//! RoleBinding, then complete both, and rotate again. The downgrade, as
//! CHANGELOG.md's "Downgrading to 0.1.0" says: both held again under the new
//! operator, and a third rotation that uses a field the previous release
//! does not know (`usernames`) suspended; `helm rollback` to the previous
//! release; the held two, released, complete and rotate once more, and the
//! suspended one stays as it was, its key and user name unchanged.
//!
//! Throughout: no request refused, I1 and I5 over the Secrets' whole
//! history, exactly one key per version number, the key of each version read
//! before a switch equal to the one after, no key in any operator's log,
//! event or status. The figures are printed.
//!
//! Ignored in the parallel suite: it replaces the cluster's CRD with the
//! previous release's (every other scenario's rotations would go with it).
//! `.ci/run` runs it alone, after the suite; it puts crds/ back when done.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret};
use keyrotor::rotation::Stage;
use keyrotor::wire as k;
use keyrotor_testsupport::eventually;
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use super::cluster::{self, Cluster, TestNamespace};
use super::observer::Observer;
use super::operator::keyrotor;
use super::realnode::{
    Consumers, PreviousRelease, ROTATION, Tally, all_report, deployment, free_port, helm_release,
    now_ms, operator_log, prepare, presenter_args, previous_release, real_node_values, real_nodes,
    release_image, requests, run_helm, start_presenters, start_verifiers, tally, template,
    uninstall_operator, verifier_args, wait_traffic,
};
use super::scenario::{
    apply, assert_no_key_material, check_history, get, report, request_rotation, rotation,
    wait_stable,
};

const CRD: &str = "apikeyrotations.keyrotor.dev";
/// How long a held rotation is watched to stay where it is.
const HOLD: Duration = Duration::from_secs(10);
/// The ServiceAccount of the held consumers: no reporter RoleBinding until
/// [`release`].
const HELD_SA: &str = "held";
const HELD_BINDING: &str = "held-keyrotor-reporter";
/// The rotation in each namespace.
const NAME: &str = ROTATION;

/// The stage each side's held consumer keeps its rotation in.
const SIDES: [(&str, Stage); 2] = [
    ("e2e-upgrade-staging", Stage::Staging),
    ("e2e-upgrade-promoting", Stage::Promoting),
];

#[tokio::test]
#[ignore = "replaces the cluster's CRD with the previous release's: run alone (.ci/run does, after the suite)"]
async fn rotations_held_mid_staging_and_mid_promoting_complete_across_an_upgrade_and_a_downgrade() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    if !real_nodes(cluster) {
        return;
    }
    let mut run = Run::start(cluster).await;
    let before = run.hold(2).await;
    run.switch("helm upgrade to this release", Switch::Upgrade)
        .await;
    run.still_held(2, true).await;
    run.complete(2, &before).await;
    run.rotate(3).await;

    let named = Named::start(&run).await;
    let before = run.hold(4).await;
    run.switch("helm rollback to the previous release", Switch::Rollback)
        .await;
    run.still_held(4, false).await;
    named.kept_under_the_previous_release(&run).await;
    run.complete(4, &before).await;
    run.rotate(5).await;
    run.finish().await;
}

/// The scenario's cluster, operator release, rotations and what it measured.
struct Run {
    cluster: &'static Cluster,
    client: Client,
    operator_ns: TestNamespace,
    /// The namespaces the operator watches (comma-separated).
    watch: String,
    previous: &'static PreviousRelease,
    current: &'static str,
    sides: Vec<Side>,
    /// The operators' logs, each taken before it was replaced.
    logs: Vec<(String, String)>,
    figures: Figures,
    _crd: CrdSwap,
}

/// How the operator release is switched.
enum Switch {
    /// `helm upgrade` to this repository's chart and image.
    Upgrade,
    /// `helm rollback` to the first revision: the previous release.
    Rollback,
}

impl Run {
    /// The images, the previous release installed by helm with its CRD and
    /// RBAC, and both rotations Stable at 1 under it with their consumers.
    async fn start(cluster: &'static Cluster) -> Run {
        let mut figures = Figures::default();
        let t = Instant::now();
        let previous = previous_release(cluster);
        let current = release_image(cluster);
        figures.phase(
            "images (previous release built or cached; both imported)",
            t,
        );

        let operator_ns = "e2e-upgrade-operator";
        uninstall_operator(cluster, operator_ns);
        let client = cluster.client().await;
        let mut sides = Vec::new();
        for (ns, held) in SIDES {
            sides.push(Side::prepare(cluster, ns, held).await);
        }
        let crd = CrdSwap::begin(cluster);
        let operator_ns = cluster.namespace(operator_ns).await;
        let watch = SIDES.map(|(ns, _)| ns).join(",");
        let t = Instant::now();
        let chart = previous.chart.to_str().unwrap();
        helm(cluster, "install", chart, &operator_ns.name, &watch);
        cluster.ok(&["wait", "--for=condition=Established", &format!("crd/{CRD}")]);
        wait_operator(cluster, &operator_ns.name, &previous.image).await;
        figures.phase("helm install of the previous release", t);

        let t = Instant::now();
        for side in &mut sides {
            side.start(&client).await;
        }
        figures.phase("previous release: both Stable at 1, consumers running", t);
        Run {
            cluster,
            client,
            operator_ns,
            watch,
            previous,
            current,
            sides,
            logs: Vec::new(),
            figures,
            _crd: crd,
        }
    }

    /// `helm upgrade` or `helm rollback`, then the new operator alone
    /// running, from the image, with the CRD and RBAC, of that release.
    async fn switch(&mut self, what: &str, switch: Switch) {
        let (cluster, ns) = (self.cluster, self.operator_ns.name.as_str());
        self.logs.push(operator_log(cluster, ns));
        let t = Instant::now();
        let (image, upgraded) = match switch {
            Switch::Upgrade => {
                helm(cluster, "upgrade", "charts/keyrotor", ns, &self.watch);
                (self.current, true)
            }
            Switch::Rollback => {
                let release = helm_release(ns);
                #[rustfmt::skip]
                run_helm(cluster, &[
                    "rollback", &release, "1", "--namespace", ns, "--wait", "--timeout", "180s",
                ]);
                (self.previous.image.as_str(), false)
            }
        };
        wait_operator(cluster, ns, image).await;
        assert_upgraded_crd_and_rbac(cluster, ns, upgraded);
        self.figures.phase(what, t);
    }
}

/// `helm VERB` (install or upgrade) of `chart` as the operator release of
/// `operator_ns`, with the chart's own CRD and RBAC and its default image.
fn helm(cluster: &Cluster, verb: &str, chart: &str, operator_ns: &str, watch: &str) {
    let release = helm_release(operator_ns);
    #[rustfmt::skip]
    let mut args = vec![
        verb, release.as_str(), chart, "--namespace", operator_ns, "--wait", "--timeout", "180s",
    ];
    let values = real_node_values(watch);
    args.extend(values.iter().map(String::as_str));
    run_helm(cluster, &args);
}

/// Waits until the operator release of `operator_ns` runs one pod, ready,
/// from `image`: the replaced operator is gone (it handed the Lease over).
async fn wait_operator(cluster: &Cluster, operator_ns: &str, image: &str) {
    let selector = format!("app.kubernetes.io/instance={}", helm_release(operator_ns));
    let jsonpath = r#"jsonpath={range .items[*]}{.spec.containers[0].image} {.status.containerStatuses[0].ready}{"\n"}{end}"#;
    let want = format!("{image} true");
    let what = format!("the operator to run {image} alone");
    eventually(&what, Duration::from_secs(120), || async {
        let pods = cluster.ok(&[
            "get",
            "pods",
            "-n",
            operator_ns,
            "-l",
            &selector,
            "-o",
            jsonpath,
        ]);
        pods.lines().collect::<Vec<_>>() == [want.as_str()]
    })
    .await;
}

/// Whether the CRD and RBAC are this release's (`upgraded`) or the previous
/// one's, as CHANGELOG.md's upgrade steps 1 and 2 say: the CRD knows
/// `minConsumers`, and the release's ClusterRole lets the operator list and
/// watch Namespaces.
fn assert_upgraded_crd_and_rbac(cluster: &Cluster, operator_ns: &str, upgraded: bool) {
    let crd = cluster.ok(&["get", "crd", CRD, "-o", "json"]);
    assert_eq!(
        crd.contains("\"minConsumers\""),
        upgraded,
        "the CRD's version"
    );
    let sa = format!(
        "--as=system:serviceaccount:{operator_ns}:{}",
        helm_release(operator_ns)
    );
    let can = cluster.kubectl(&["auth", "can-i", "watch", "namespaces", &sa], None);
    assert_eq!(can.status.success(), upgraded, "watch namespaces granted");
}

/// The previous release's CRD in place of the suite's for the scenario:
/// the suite's is deleted so that `helm install` creates the previous
/// release's, as on a cluster that never had keyrotor; crds/ is applied
/// again on drop (also after a failure: later scenarios need it).
struct CrdSwap(&'static Cluster);

impl CrdSwap {
    fn begin(cluster: &'static Cluster) -> CrdSwap {
        // Left by other scenarios: nothing runs their finalizer any more.
        let jsonpath = r#"jsonpath={range .items[*]}{.metadata.namespace}{"\n"}{end}"#;
        let out = cluster.ok(&["get", "apikeyrotations", "-A", "-o", jsonpath]);
        for ns in out.lines().collect::<BTreeSet<_>>() {
            cluster.release_rotations(ns);
        }
        cluster.ok(&["delete", "crd", CRD, "--ignore-not-found", "--timeout=120s"]);
        CrdSwap(cluster)
    }
}

impl Drop for CrdSwap {
    fn drop(&mut self) {
        let _ = self.0.kubectl(
            &["apply", "--server-side", "--force-conflicts", "-f", "crds/"],
            None,
        );
        let _ = self.0.kubectl(
            &["wait", "--for=condition=Established", &format!("crd/{CRD}")],
            None,
        );
    }
}

/// One rotation in its own namespace with its verifier and presenter pods,
/// and one consumer held back (of the verifiers for `held` Staging, of the
/// presenters for Promoting).
struct Side {
    ns: TestNamespace,
    held: Stage,
    records: PathBuf,
    observer: Option<Observer>,
    /// When the presenters' traffic started to count (ms since the epoch).
    since: i64,
}

impl Side {
    async fn prepare(cluster: &'static Cluster, ns: &str, held: Stage) -> Side {
        let ns = cluster.namespace(ns).await;
        let records = prepare(cluster, &ns.name, keyrotor(), "records");
        cluster.ok(&["create", "serviceaccount", HELD_SA, "-n", &ns.name]);
        Side {
            ns,
            held,
            records,
            observer: None,
            since: now_ms(),
        }
    }

    /// The rotation Stable at 1, its consumers running and reporting, and
    /// the held consumer started (it cannot report yet).
    async fn start(&mut self, client: &Client) {
        let ns = self.ns.name.as_str();
        self.observer = Some(Observer::start(client.clone(), ns).await);
        let mut rotation = rotation(ns, NAME, report(), report());
        rotation["spec"]["gracePeriod"]["minimum"] = "1s".into();
        apply(client, ns, &rotation).await;
        wait_stable(client, ns, NAME, 1, Duration::from_secs(60)).await;
        let ports = start_verifiers(client, ns, "verifier", "api-verifier", &self.records).await;
        let presenter = Consumers {
            name: "presenter",
            replicas: 2,
            secret: "api-key",
        };
        start_presenters(client, ns, &presenter, &ports, &self.records).await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        eventually(
            "pods to run and report",
            Duration::from_secs(120),
            || async { all_report(&pods, NAME, 1).await.then_some(()) },
        )
        .await;
        wait_traffic(&self.records, 20).await;
        // Counted from here: until every verifier listened, a presenter's
        // first calls may find no one.
        self.since = now_ms();

        let (secret, args) = match self.held {
            Stage::Staging => ("api-verifier", verifier_args(free_port())),
            _ => ("api-key", json!(presenter_args(&ports))),
        };
        let deployments = Api::namespaced(client.clone(), ns);
        let held = deployment(ns, "held", 1, held_template(secret, args, &self.records));
        deployments
            .create(&Default::default(), &held)
            .await
            .unwrap();
        let lp = ListParams::default().labels("app=held");
        eventually(
            "the held consumer to run",
            Duration::from_secs(60),
            || async { pods.list(&lp).await.unwrap().items.iter().any(running) },
        )
        .await;
    }
}

fn running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Running")
}

/// A consumer pod like the others whose reporter may not write its report
/// until the RoleBinding of [`release`] exists; it retries every 2 s.
fn held_template(secret: &str, args: Value, records: &Path) -> Value {
    let mut t = template("held", secret, args, records);
    t["spec"]["serviceAccountName"] = HELD_SA.into();
    let reporter = t["spec"]["containers"][1]["args"].as_array_mut().unwrap();
    reporter.extend(["--max-backoff-seconds".into(), "2".into()]);
    t
}

/// Lets the held consumers of `ns` report (the reporter's Role, bound).
fn release(cluster: &Cluster, ns: &str) {
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": HELD_BINDING, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "keyrotor-reporter"},
        "subjects": [{"kind": "ServiceAccount", "name": HELD_SA, "namespace": ns}],
    });
    cluster.ok_stdin(&["apply", "-f", "-"], &binding.to_string());
}

/// Takes the reporting right of the held consumers of `ns` away again.
fn hold(cluster: &Cluster, ns: &str) {
    cluster.ok(&[
        "delete",
        "rolebinding",
        HELD_BINDING,
        "-n",
        ns,
        "--ignore-not-found",
    ]);
}

/// The key of each version (by namespace and number) read before a switch
/// of operator, to compare with the one after. No `Debug`: keys (I4).
type Keys = BTreeMap<(String, u64), Vec<u8>>;

impl Run {
    /// Both sides held again, rotating to `version`: the held consumers may
    /// not report, a rotation is requested, and each rotation reaches its
    /// held stage. The keys of `version` and the one before, read now.
    async fn hold(&mut self, version: u64) -> Keys {
        let t = Instant::now();
        let client = &self.client;
        let mut keys = Keys::new();
        for side in &self.sides {
            hold(self.cluster, &side.ns.name);
            request_rotation(client, &side.ns.name, NAME, &format!("to-{version}")).await;
        }
        for side in &self.sides {
            let ns = &side.ns.name;
            let what = format!("{ns}: {:?} at version {version}", side.held);
            eventually(&what, Duration::from_secs(120), || async {
                side.is_held(client, version).await
            })
            .await;
            let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
            for v in [version - 1, version] {
                keys.insert((ns.clone(), v), version_key(&secrets, v).await);
            }
        }
        let what = format!("held mid-Staging and mid-Promoting at {version}");
        self.figures.phase(&what, t);
        keys
    }

    /// Both rotations stay held under the operator now running
    /// ([`Side::still_held`]).
    async fn still_held(&mut self, version: u64, new_status: bool) {
        let t = Instant::now();
        for side in &self.sides {
            side.still_held(&self.client, version, new_status).await;
        }
        self.figures
            .phase(&format!("still held at {version} (for {HOLD:?} each)"), t);
    }
}

/// The key in version `v`'s Secret.
async fn version_key(secrets: &Api<Secret>, v: u64) -> Vec<u8> {
    let name = k::version_secret_name(NAME, v);
    data(&secrets.get(&name).await.unwrap(), k::KEY)
}

fn data(secret: &Secret, file: &str) -> Vec<u8> {
    let value = secret.data.as_ref().and_then(|d| d.get(file));
    value.map(|b| b.0.clone()).unwrap_or_default()
}

impl Side {
    /// Whether the rotation holds mid-cycle to `version`: Staging with
    /// presenters still on the previous version, or Promoting with both
    /// still accepted.
    async fn is_held(&self, client: &Client, version: u64) -> bool {
        let status = get(client, &self.ns.name, NAME).await.status;
        let Some(s) = status else { return false };
        let current = match self.held {
            Stage::Staging => version - 1,
            _ => version,
        };
        s.stage == Some(self.held)
            && s.current_version == Some(current)
            && s.accepted_versions.contains(&(version - 1))
            && s.accepted_versions.contains(&version)
    }

    /// The rotation stays held for [`HOLD`] under the operator now running,
    /// the old version's Secret kept; with `new_status`, once that operator
    /// wrote its status (a field the previous release does not write).
    async fn still_held(&self, client: &Client, version: u64, new_status: bool) {
        let ns = &self.ns.name;
        if new_status {
            let what = format!("{ns}: the new operator's status");
            eventually(&what, Duration::from_secs(60), || async {
                let r = get(client, ns, NAME).await;
                r.status.is_some_and(|s| s.stage_transition_time.is_some())
            })
            .await;
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let old = k::version_secret_name(NAME, version - 1);
        let until = Instant::now() + HOLD;
        while Instant::now() < until {
            let held = self.is_held(client, version).await;
            let r = get(client, ns, NAME).await;
            assert!(
                held,
                "{ns}: no longer {:?} at {version} while a consumer cannot confirm: {}",
                self.held,
                serde_json::to_string(&r.status).unwrap_or_default()
            );
            let kept = secrets.get_opt(&old).await.unwrap().is_some();
            assert!(kept, "{ns}: {old} deleted while a consumer cannot confirm");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Run {
    /// The held consumers released: both rotations complete to `version`,
    /// the version before is pruned, and `version`'s key is the one read
    /// before the switch of operator, in its Secret and in the presenters'.
    async fn complete(&mut self, version: u64, before: &Keys) {
        let t = Instant::now();
        for side in &self.sides {
            release(self.cluster, &side.ns.name);
        }
        for side in &self.sides {
            side.completed(&self.client, version, before).await;
            self.figures.completed += 1;
        }
        self.figures
            .phase(&format!("released: both Stable at {version}"), t);
    }

    /// One more rotation of both to `version`, every consumer reporting.
    async fn rotate(&mut self, version: u64) {
        let t = Instant::now();
        let client = &self.client;
        for side in &self.sides {
            request_rotation(client, &side.ns.name, NAME, &format!("to-{version}")).await;
        }
        for side in &self.sides {
            wait_stable(
                client,
                &side.ns.name,
                NAME,
                version,
                Duration::from_secs(180),
            )
            .await;
            self.figures.completed += 1;
        }
        self.figures
            .phase(&format!("one more rotation: both Stable at {version}"), t);
    }

    /// The figures printed, then every side checked over its whole history
    /// (with every operator's log), and the operator uninstalled.
    async fn finish(mut self) {
        self.logs
            .push(operator_log(self.cluster, &self.operator_ns.name));
        // The last requests in flight are recorded.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let figures = &mut self.figures;
        let measured: Vec<Measured> = self.sides.iter().map(|s| s.measure(figures)).collect();
        figures.print();
        for (side, measured) in self.sides.iter().zip(&measured) {
            side.check(self.cluster, &self.logs, measured);
        }
        assert!(
            uninstall_operator(self.cluster, &self.operator_ns.name),
            "helm uninstall failed"
        );
    }
}

impl Side {
    /// Stable at `version` with only it accepted, the version before
    /// deleted, and `version`'s key the one `before` holds, in its Secret
    /// and the presenters'.
    async fn completed(&self, client: &Client, version: u64, before: &Keys) {
        let ns = &self.ns.name;
        wait_stable(client, ns, NAME, version, Duration::from_secs(180)).await;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let old = k::version_secret_name(NAME, version - 1);
        let what = format!("{ns}: {old} to be deleted");
        eventually(&what, Duration::from_secs(30), || async {
            secrets.get_opt(&old).await.unwrap().is_none()
        })
        .await;
        let status = get(client, ns, NAME).await.status.unwrap();
        assert_eq!(status.accepted_versions, BTreeSet::from([version]), "{ns}");
        let key = &before[&(ns.clone(), version)];
        assert!(
            version_key(&secrets, version).await == *key,
            "{ns}: version {version}'s key changed across the switch of operator"
        );
        let presented = data(&secrets.get("api-key").await.unwrap(), k::KEY);
        assert!(
            presented == *key,
            "{ns}: presenters hold another key than version {version}'s"
        );
    }
}

/// A rotation with a field the previous release does not know
/// (`spec.usernames`), made under this release and suspended before the
/// downgrade, as CHANGELOG.md's downgrade notes say: the previous release
/// would rotate it without its user names. Suspended, it must stay as it
/// is, its key and user name what presenters hold.
struct Named {
    ns: String,
    /// The presenter Secret's `key` and `username` when suspended.
    files: (Vec<u8>, Vec<u8>),
}

impl Named {
    const NAME: &str = "named";

    async fn start(run: &Run) -> Named {
        let (client, ns) = (&run.client, run.sides[0].ns.name.clone());
        let nobody = json!({"minConsumers": 0});
        let mut r = rotation(&ns, Named::NAME, nobody.clone(), nobody);
        r["spec"]["usernames"] = json!(["app_a", "app_b"]);
        apply(client, &ns, &r).await;
        wait_stable(client, &ns, Named::NAME, 1, Duration::from_secs(60)).await;
        r["spec"]["suspend"] = true.into();
        apply(client, &ns, &r).await;
        // This release saw the suspension (Stable for the latest spec).
        wait_stable(client, &ns, Named::NAME, 1, Duration::from_secs(60)).await;
        let named = Named {
            files: Named::files(client, &ns).await,
            ns,
        };
        assert_eq!(named.files.1, b"app_a", "the first version's user name");
        named
    }

    async fn files(client: &Client, ns: &str) -> (Vec<u8>, Vec<u8>) {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let presenter = secrets.get(&format!("{}-key", Named::NAME)).await.unwrap();
        (data(&presenter, k::KEY), data(&presenter, k::USERNAME_FILE))
    }

    /// Under the previous release, whose CRD drops `usernames`: asked to
    /// rotate, it stays Stable at 1, no version is made, and the presenter
    /// Secret keeps its key and user name.
    async fn kept_under_the_previous_release(&self, run: &Run) {
        let (client, ns) = (&run.client, self.ns.as_str());
        let spec = run.cluster.ok(&[
            "get",
            "apikeyrotation",
            Named::NAME,
            "-n",
            ns,
            "-o",
            "jsonpath={.spec}",
        ]);
        assert!(
            !spec.contains("usernames"),
            "the previous CRD kept usernames: {spec}"
        );
        request_rotation(client, ns, Named::NAME, "downgraded").await;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let v2 = k::version_secret_name(Named::NAME, 2);
        let until = Instant::now() + HOLD;
        while Instant::now() < until {
            let status = get(client, ns, Named::NAME)
                .await
                .status
                .unwrap_or_default();
            assert_eq!(
                (status.stage, status.current_version),
                (Some(Stage::Stable), Some(1)),
                "{ns}/{}: a suspended rotation moved under the previous release",
                Named::NAME
            );
            assert!(
                secrets.get_opt(&v2).await.unwrap().is_none(),
                "{v2} was made"
            );
            assert!(
                Named::files(client, ns).await == self.files,
                "{ns}/{}: the presenter's key or user name changed",
                Named::NAME
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// What one side's history and traffic add up to.
struct Measured {
    /// How many different keys each version number had.
    keys: BTreeMap<u64, usize>,
    traffic: Tally,
}

impl Side {
    /// Keys per version and the presenters' requests since traffic
    /// flowed, added to `figures`.
    fn measure(&self, figures: &mut Figures) -> Measured {
        let observer = self.observer.as_ref().unwrap();
        let keys = keys_per_version(observer);
        let traffic = tally(&requests(&self.records, self.since));
        figures.lines.push(format!(
            "{}: held {:?}; versions 1..={}, keys per version {:?}; {} requests, {} refused, {} unanswered",
            self.ns.name,
            self.held,
            keys.keys().max().unwrap_or(&0),
            keys.values().collect::<Vec<_>>(),
            traffic.sent,
            traffic.rejected,
            traffic.unanswered
        ));
        Measured { keys, traffic }
    }

    /// Over the side's whole history: I1, I5 and zero rejections (the
    /// observer), one key per version, no request refused or unanswered,
    /// and no key in `logs`, events or status.
    fn check(&self, cluster: &Cluster, logs: &[(String, String)], measured: &Measured) {
        let ns = &self.ns.name;
        let observer = self.observer.as_ref().unwrap();
        check_history(observer, NAME);
        for (v, n) in &measured.keys {
            assert_eq!(*n, 1, "{ns}: version {v} had {n} keys");
        }
        let traffic = &measured.traffic;
        assert_eq!(traffic.rejected, 0, "{ns}: requests refused");
        assert_eq!(traffic.unanswered, 0, "{ns}: requests unanswered");
        assert!(
            traffic.sent > 100,
            "{ns}: too little traffic: {}",
            traffic.sent
        );
        assert_no_key_material(cluster, ns, observer, logs);
        observer.stop();
    }
}

/// How many different keys each version number had, over every recorded
/// state of its version Secret and of the presenter Secret.
fn keys_per_version(observer: &Observer) -> BTreeMap<u64, usize> {
    let mut keys: BTreeMap<u64, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for s in observer.secret_states("api-key") {
        let version = String::from_utf8(data(&s, k::VERSION)).unwrap_or_default();
        if let Ok(v) = version.parse() {
            keys.entry(v).or_default().insert(data(&s, k::KEY));
        }
    }
    let highest = keys.keys().max().copied().unwrap_or(0);
    for v in 1..=highest {
        for s in observer.secret_states(&k::version_secret_name(NAME, v)) {
            keys.entry(v).or_default().insert(data(&s, k::KEY));
        }
    }
    keys.into_iter().map(|(v, set)| (v, set.len())).collect()
}

/// What the scenario measured, printed at its end for the release notes.
#[derive(Default)]
struct Figures {
    phases: Vec<(String, Duration)>,
    completed: usize,
    lines: Vec<String>,
}

impl Figures {
    fn phase(&mut self, what: &str, since: Instant) {
        self.phases.push((what.to_string(), since.elapsed()));
    }

    fn print(&self) {
        let mut out = String::from("\nupgrade scenario (previous release -> this -> previous):\n");
        for (what, took) in &self.phases {
            out += &format!("  {:>6.1} s  {what}\n", took.as_secs_f64());
        }
        out += &format!("  rotations completed: {}\n", self.completed);
        for line in &self.lines {
            out += &format!("  {line}\n");
        }
        let _ = write!(std::io::stderr(), "{out}");
    }
}
