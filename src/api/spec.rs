//! The `ApiKeyRotation` spec (`keyrotor.dev/v1alpha1`). Doc comments become
//! the CRD's descriptions, so `kubectl explain apikeyrotation.spec` reads them.
//! CEL rules on the types reject bad input at `kubectl apply`; `validate.rs`
//! repeats every rule in Rust for clusters and tools that skip CEL.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::ApiKeyRotationStatus;
use crate::rotation::{Mode, OnTimeout, WorkloadKind};

/// Go-style duration as CEL's `duration()` accepts it.
pub(crate) const DURATION_RE: &str = "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$";
/// The longest duration any field takes: ten years. Each duration field's CEL
/// rule first checks that the text is short enough (at most 16 characters,
/// 6 digits a number) that `duration()` cannot overflow, which CEL would
/// report as a bare "type conversion error"; `&&` short-circuits, so an
/// absurd value gets the rule's message, naming the field and this limit.
pub const MAX_DURATION: &str = "87600h";
/// A user name a version may carry (`spec.usernames`): what a database or
/// cache accepts as a role or user name without quoting, at most 63
/// characters (PostgreSQL's limit).
pub(crate) const USERNAME_RE: &str = "^[A-Za-z_][A-Za-z0-9_.-]{0,62}$";
/// DNS-1123 subdomain: a valid Secret or workload name.
pub(crate) const NAME_RE: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// The desired rotation: the Secrets consumers mount, the shape of the key,
/// when it rotates, who uses it and how each group confirms a change.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    doc = "ApiKeyRotation rotates one API key with zero failed requests. keyrotor generates key versions into Secrets, publishes each new version to the verifiers (the servers that accept the key) before the presenters (the clients that send it), and retires an old version only once every consumer confirmed it moved. keyrotor writes the status; users write the spec.",
    group = "keyrotor.dev",
    version = "v1alpha1",
    kind = "ApiKeyRotation",
    plural = "apikeyrotations",
    shortname = "akr",
    category = "keyrotor",
    namespaced,
    status = "ApiKeyRotationStatus",
    derive = "PartialEq",
    printcolumn(name = "Current", type_ = "integer", description = "Version presenters send", json_path = ".status.currentVersion"),
    printcolumn(name = "Stage", type_ = "string", description = "Stage of the rotation cycle", json_path = ".status.stage"),
    printcolumn(name = "Ready", type_ = "string", description = "Ready condition", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", priority = 1, description = "Ready condition reason", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    // A string, not a date: kubectl prints a future date as `<invalid>`.
    printcolumn(name = "Next", type_ = "string", description = "Next scheduled rotation (UTC)", json_path = ".status.nextRotationTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 200").message("metadata.name must be at most 200 characters, so version Secret names (<name>-v<N>) stay valid")
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = super::schema::kubernetes_formats)]
pub struct ApiKeyRotationSpec {
    /// The projected Secrets consumers mount.
    pub secrets: ProjectedSecrets,

    /// Shape of generated keys.
    #[serde(default)]
    pub key: KeyFormat,

    /// When rotations start on their own. Without a schedule, keys rotate only on
    /// demand (`rotationRequest` or `kubectl keyrotor rotate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,

    /// How long the previous version stays accepted after presenters got the new one.
    #[serde(default)]
    pub grace_period: GracePeriod,

    /// A cycle whose waiting group has had no consumer confirm for this long
    /// is stalled: `MigrationStalled` (reason VerifiersStalled,
    /// PresentersStalled or HookStalled) names whom it waits for, long before
    /// `gracePeriod.maximum`. Nothing is retired for it: the old key stays
    /// valid. A confirmation starts the time again. From 1s to 87600h.
    #[serde(default = "default_progress_deadline")]
    #[schemars(regex(pattern = DURATION_RE), length(max = 32))]
    #[x_kube(validation = Rule::new("size(self) <= 16 && self.matches('^([0-9]{1,6}([.][0-9]{1,6})?(ms|s|m|h))+$') && duration(self) <= duration('87600h') && duration(self) >= duration('1s')").message("progressDeadline must be between 1s and 87600h (ten years)"))]
    pub progress_deadline: String,

    /// Who uses the key and how each group confirms a change.
    #[serde(default)]
    pub consumers: Consumers,

    /// How many retired versions status keeps (live versions are always listed).
    #[serde(default = "default_history_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub history_limit: u32,

    /// On-demand rotation from Git: set or change this to any new value and a
    /// rotation starts (after the cycle in flight, if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub rotation_request: Option<String>,

    /// Rollback: set or change this to any new value while the previous version
    /// is still accepted, and presenters return to it; the newer version is abandoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub rollback_request: Option<String>,

    /// Emergency revocation: versions listed here leave the accepted set at once
    /// and their key material is deleted; if the current version is listed, a
    /// fresh key is promoted immediately (verifiers are not waited for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.all(v, v >= 1)").message("revokedVersions entries are version numbers, starting at 1"))]
    pub revoked_versions: Vec<u64>,

    /// Pause rotation: no new cycle starts and a cycle in flight holds where it
    /// is. Every published key stays valid. Revocation still applies.
    #[serde(default)]
    pub suspend: bool,

    /// What happens to the Secrets keyrotor made when this resource is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Import an existing Secret's key as version 1 instead of generating one,
    /// so a key already in use moves under keyrotor without a cut-over.
    /// Read once, when the rotation starts; changes later have no effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt: Option<Adoption>,

    /// An external system that checks the key too (a database, a cache, a
    /// gateway's key store): keyrotor asks it to accept each new version
    /// before any presenter gets it, and to stop accepting a version only
    /// after every presenter moved off it. Protocol: docs/hooks.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier_hook: Option<HookEndpoint>,

    /// An external system that mints the keys (a SaaS, a key service):
    /// keyrotor asks it for each new version's key (`issue`) instead of
    /// generating one, stores the answer as the version Secret, and tells it
    /// to revoke a version (`retire`) only after every presenter moved off
    /// it. The issued key counts as accepted where it was minted. Same
    /// endpoint fields as `verifierHook`; protocol: docs/hooks.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_hook: Option<HookEndpoint>,

    /// The user name each version carries beside its key, for systems that
    /// take a user and a password (a database role, a Redis ACL user).
    /// Presenters find it in the file `username` beside `key` (docs/wire.md),
    /// hooks in each request's `username`. One name: every version carries
    /// it. Two names (alternating users, docs/postgres.md): a new version
    /// carries the name the current version does not (after a revoke, the
    /// one no version presenters may still send carries), so the password
    /// of the user presenters send is never touched while they move; the
    /// first version, adopted or not, carries the first name. A version
    /// keeps the name it was created with: editing this list changes only
    /// versions created afterwards. Left out: versions carry no user name
    /// and the Secrets have no `username` file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 2), inner(length(min = 1, max = 63), regex(pattern = USERNAME_RE)))]
    #[x_kube(validation = Rule::new("size(self) <= 2").message("usernames must have at most 2 items: one name for every version, or two that alternate"))]
    #[x_kube(validation = Rule::new("self.all(n, self.exists_one(m, m == n))").message("usernames lists a name twice: two alternating users need two different names"))]
    #[x_kube(validation = Rule::new("self.all(n, n.matches('^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'))").message("usernames entries must start with a letter or '_' and hold only letters, digits, '_', '.' and '-' (at most 63 characters)"))]
    pub usernames: Vec<String>,
}

fn default_history_limit() -> u32 {
    10
}

fn default_progress_deadline() -> String {
    "10m".into()
}

/// Names of the Secrets consumers mount. Use one name for both to get a single
/// Secret that serves verifiers and presenters.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProjectedSecrets {
    /// Secret mounted by verifiers (the servers that accept the key). Holds every
    /// accepted version: `v<N>.sha256` digests, or `v<N>.key` when `verifierFormat` is Plain.
    #[schemars(length(min = 1, max = 253), regex(pattern = NAME_RE))]
    pub verifier: String,

    /// Secret mounted by presenters (the clients that send the key). Holds the
    /// current key as `key` and its number as `version`.
    #[schemars(length(min = 1, max = 253), regex(pattern = NAME_RE))]
    pub presenter: String,

    /// What verifiers receive for each accepted version.
    #[serde(default)]
    pub verifier_format: VerifierFormat,
}

/// What verifiers receive for each accepted version.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VerifierFormat {
    /// SHA-256 digests (hex): a verifier can check a key but never leak one.
    #[default]
    Sha256,
    /// The keys themselves, for verifiers that must compare plain text.
    Plain,
}

/// Shape of generated keys: `<prefix><random part>[<checksum>]`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.length) && has(self.entropyBits))").message("set key.length or key.entropyBits, not both"))]
#[x_kube(validation = Rule::new("!has(self.length) || (self.alphabet == 'Hex' ? self.length >= 32 : self.alphabet == 'Base32' ? self.length >= 26 : self.length >= 22)").message("key.length gives less than 128 bits of entropy for this alphabet (Hex needs 32, Base32 26, Base62 and Base64Url 22)"))]
pub struct KeyFormat {
    /// Characters of the random part.
    #[serde(default)]
    pub alphabet: KeyAlphabet,

    /// Length of the random part in characters (at least 128 bits of entropy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 16, max = 512))]
    pub length: Option<u32>,

    /// Entropy of the random part in bits; the length follows from the
    /// alphabet. Default 192 when neither length nor entropyBits is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 128, max = 2048))]
    pub entropy_bits: Option<u32>,

    /// Fixed text before the random part (e.g. `acme_live_`) so secret scanners
    /// and people recognise the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]*$"))]
    pub prefix: Option<String>,

    /// Append a checksum so scanners can tell a real key from random text.
    #[serde(default)]
    pub checksum: KeyChecksum,
}

/// Alphabet of the random part.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KeyAlphabet {
    /// 0-9, A-Z, a-z (about 5.95 bits per character).
    #[default]
    Base62,
    /// URL-safe base64 alphabet, A-Z a-z 0-9 - _ (6 bits per character).
    Base64Url,
    /// 0-9, a-f (4 bits per character).
    Hex,
    /// RFC 4648 base32, A-Z 2-7 (5 bits per character).
    Base32,
}

/// Checksum appended to generated keys.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KeyChecksum {
    /// No checksum.
    #[default]
    None,
    /// Six base62 characters of CRC-32 over prefix and random part.
    Crc32,
}

/// When rotations start on their own: exactly one of interval or cron.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.interval) != has(self.cron)").message("schedule needs exactly one of interval or cron"))]
#[x_kube(validation = Rule::new("!has(self.timeZone) || has(self.cron)").message("schedule.timeZone applies to cron schedules only"))]
pub struct Schedule {
    /// Time between the starts of two rotations, as a duration (e.g. `720h`). From 1m to 87600h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_RE), length(max = 32))]
    #[x_kube(validation = Rule::new("size(self) <= 16 && self.matches('^([0-9]{1,6}([.][0-9]{1,6})?(ms|s|m|h))+$') && duration(self) <= duration('87600h') && duration(self) >= duration('1m')").message("schedule.interval must be between 1m and 87600h (ten years)"))]
    pub interval: Option<String>,

    /// Five-field cron expression (minute hour day-of-month month day-of-week),
    /// or a macro such as `@weekly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(validation = Rule::new("self.startsWith('@') || self.split(' ').filter(f, f != '').size() == 5").message("schedule.cron needs five fields: minute hour day-of-month month day-of-week"))]
    pub cron: Option<String>,

    /// IANA time zone the cron expression is read in (e.g. `Europe/Berlin`). Default UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,
}

/// How long the previous version stays accepted after presenters got the new one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(size(self.minimum) <= 16 && self.minimum.matches('^([0-9]{1,6}([.][0-9]{1,6})?(ms|s|m|h))+$') && size(self.maximum) <= 16 && self.maximum.matches('^([0-9]{1,6}([.][0-9]{1,6})?(ms|s|m|h))+$')) || duration(self.minimum) <= duration(self.maximum)").message("gracePeriod.minimum must not exceed gracePeriod.maximum"))]
pub struct GracePeriod {
    /// The old version stays accepted at least this long after promotion, even
    /// when every presenter confirmed sooner.
    #[serde(default = "default_grace_minimum")]
    #[schemars(regex(pattern = DURATION_RE), length(max = 32))]
    #[x_kube(validation = Rule::new("size(self) <= 16 && self.matches('^([0-9]{1,6}([.][0-9]{1,6})?(ms|s|m|h))+$') && duration(self) <= duration('87600h')").message("gracePeriod.minimum must be at most 87600h (ten years)"))]
    pub minimum: String,

    /// After this long without every presenter confirming, `onTimeout` applies.
    #[serde(default = "default_grace_maximum")]
    #[schemars(regex(pattern = DURATION_RE), length(max = 32))]
    #[x_kube(validation = Rule::new("size(self) <= 16 && self.matches('^([0-9]{1,6}([.][0-9]{1,6})?(ms|s|m|h))+$') && duration(self) <= duration('87600h')").message("gracePeriod.maximum must be at most 87600h (ten years)"))]
    pub maximum: String,

    /// At the maximum: Wait (keep the old version, raise MigrationStalled) or
    /// Retire (retire it anyway; lagging presenters will be rejected).
    #[serde(default)]
    pub on_timeout: OnTimeout,
}

fn default_grace_minimum() -> String {
    "5m".into()
}

fn default_grace_maximum() -> String {
    "168h".into()
}

impl Default for GracePeriod {
    fn default() -> Self {
        GracePeriod {
            minimum: default_grace_minimum(),
            maximum: default_grace_maximum(),
            on_timeout: OnTimeout::default(),
        }
    }
}

/// Who uses the key. By default a group is every running pod of the
/// rotation's namespace whose spec references its projected Secret (volume,
/// projected volume, env, envFrom): none is forgotten. A group in which
/// fewer consumers are found than its `minConsumers` (default 1) holds the
/// cycle where it stands: missing evidence is never confirmation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Consumers {
    /// Pods that accept the key.
    #[serde(default)]
    #[x_kube(validation = Rule::new("!has(self.traffic)").message("traffic applies to presenters only: verifiers are the ones reporting it"))]
    pub verifiers: ConsumerGroup,

    /// Pods that send the key.
    #[serde(default)]
    pub presenters: ConsumerGroup,
}

/// One consumer group and how it confirms a change.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.confirmation != 'Rollout' || (has(self.workloads) && size(self.workloads) > 0)").message("confirmation Rollout needs at least one workload to restart"))]
#[x_kube(validation = Rule::new("self.confirmation != 'Rollout' || !(has(self.namespaces) || has(self.namespaceSelector))").message("confirmation Rollout restarts workloads of the rotation's namespace only: use Report for a group in other namespaces"))]
pub struct ConsumerGroup {
    /// Report: each pod reports the revision it loaded (reporter sidecar or
    /// client library). Rollout: keyrotor restarts the listed workloads one at
    /// a time and waits for each rollout. Delay: wait `propagationDelay`.
    /// A pod that reads the key through an environment variable
    /// (`secretKeyRef`, `envFrom`) never loads a new version: in Report and
    /// Delay mode it is named at once (`MigrationStalled` reason
    /// ConsumersCannotConfirm) and never counted as confirmed; use Rollout
    /// for its workload.
    #[serde(default)]
    pub confirmation: Mode,

    /// Adds pods that obtain the key another way (e.g. from a file synced by an agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,

    /// Workloads to restart in Rollout mode, in this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub workloads: Vec<WorkloadRef>,

    /// Delay mode: how long kubelet may take to update a mounted Secret.
    #[serde(default = "default_propagation_delay")]
    #[schemars(regex(pattern = DURATION_RE), length(max = 32))]
    #[x_kube(validation = Rule::new("size(self) <= 16 && self.matches('^([0-9]{1,6}([.][0-9]{1,6})?(ms|s|m|h))+$') && duration(self) <= duration('87600h')").message("propagationDelay must be at most 87600h (ten years)"))]
    pub propagation_delay: String,

    /// The fewest consumers the group must find before a change counts as
    /// confirmed. Report: running pods that reference its Secret or match
    /// `selector` (for verifiers, a `verifierHook` or `issuerHook` counts as
    /// one). Rollout: at 1 or more every listed workload must exist. Fewer
    /// hold the cycle where it stands, the old key valid, and say so at once
    /// (`MigrationStalled` reason NoConsumers, and an event naming the
    /// Secret, the namespace searched and what to do). 0 declares that the
    /// group's consumers are all out of keyrotor's sight (another namespace,
    /// outside the cluster): nothing is then waited for in it. Delay mode
    /// ignores it, and the first key needs no consumer.
    #[serde(default = "default_min_consumers")]
    #[x_kube(validation = Rule::new("self <= 1000").message("minConsumers must be at most 1000"))]
    pub min_consumers: u32,

    /// After each Secret write, touch an annotation on the group's pods so
    /// kubelet refreshes their volumes at once instead of within 60–90 s.
    #[serde(default = "default_true")]
    pub nudge: bool,

    /// Other namespaces this group's consumers run in (a Pod mounts only
    /// Secrets of its own namespace). keyrotor keeps a copy of the group's
    /// Secret, under the same name, in each of them; looks for consumers
    /// there as in the rotation's namespace; and waits for them before every
    /// step, as for its own. Each such namespace must have agreed: a cluster
    /// admin annotates it `keyrotor.dev/accept-from` with this rotation's
    /// namespace (or `<namespace>/<name>`), comma-separated; until then the
    /// rotation holds where it stands (`Ready=False`, reason
    /// TargetNotPermitted) and nothing is written there. A Secret of the
    /// same name keyrotor does not own blocks (SecretConflict). Each listed
    /// namespace needs at least one running consumer of the group (unless
    /// `minConsumers` is 0). Dropping a namespace from the list removes its
    /// copy once no pod there references it (docs/namespaces.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 63)))]
    #[x_kube(validation = Rule::new("self.all(n, size(n) <= 63 && n.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))").message("namespaces entries must be namespace names (lowercase DNS labels, at most 63 characters)"))]
    #[x_kube(validation = Rule::new("self.all(n, self.exists_one(m, m == n))").message("namespaces lists a namespace twice"))]
    pub namespaces: Vec<String>,

    /// Adds every namespace whose labels match, as if it were listed in
    /// `namespaces` (the same consent rule applies to each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Presenters only: retire the old version only once no verifier has seen it
    /// presented for this quiet window (catches clients outside the cluster).
    /// The window counts only while a usage reporter is alive: a verifier
    /// pod (client library or `keyrotor verifier`) must report traffic a
    /// whole window after the old version was last seen. Silence is not
    /// quiet: with no report within the window, `MigrationStalled` says
    /// NoUsageReporter and the old version stays accepted. With Traffic, an
    /// empty presenter group needs `minConsumers: 0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
}

fn default_propagation_delay() -> String {
    "90s".into()
}

fn default_min_consumers() -> u32 {
    1
}

fn default_true() -> bool {
    true
}

impl Default for ConsumerGroup {
    fn default() -> Self {
        ConsumerGroup {
            confirmation: Mode::default(),
            selector: None,
            workloads: Vec::new(),
            propagation_delay: default_propagation_delay(),
            min_consumers: default_min_consumers(),
            nudge: true,
            namespaces: Vec::new(),
            namespace_selector: None,
            traffic: None,
        }
    }
}

/// Traffic confirmation for presenters.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Traffic {
    /// How long the old version must go unseen by every verifier before it retires.
    #[schemars(regex(pattern = DURATION_RE), length(max = 32))]
    #[x_kube(validation = Rule::new("size(self) <= 16 && self.matches('^([0-9]{1,6}([.][0-9]{1,6})?(ms|s|m|h))+$') && duration(self) <= duration('87600h') && duration(self) >= duration('1s')").message("traffic.quietWindow must be between 1s and 87600h (ten years)"))]
    pub quiet_window: String,
}

/// A workload in the rotation's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// Deployment, StatefulSet or DaemonSet.
    pub kind: WorkloadKind,
    /// Name of the workload.
    #[schemars(length(min = 1, max = 253), regex(pattern = NAME_RE))]
    pub name: String,
}

/// A Kubernetes label selector (the same shape as `metav1.LabelSelector`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("size(self.matchLabels) + size(self.matchExpressions) > 0").message("an empty selector would select every pod; leave selector out instead"))]
pub struct LabelSelector {
    /// Labels a pod must carry, all of them.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements, all of them.
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based label requirement.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(self.operator == 'In' || self.operator == 'NotIn') ? size(self.values) > 0 : size(self.values) == 0").message("In and NotIn need values; Exists and DoesNotExist take none"))]
pub struct LabelSelectorRequirement {
    /// Label key.
    #[schemars(length(min = 1, max = 317))]
    pub key: String,
    /// In, NotIn, Exists or DoesNotExist.
    pub operator: SelectorOperator,
    /// Values for In and NotIn.
    #[serde(default)]
    pub values: Vec<String>,
}

/// Label selector operator.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// What happens to keyrotor's Secrets when the rotation is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Delete version and projected Secrets (consumers lose the key).
    #[default]
    Delete,
    /// Leave the projected Secrets in place for consumers; delete version Secrets.
    Orphan,
}

/// Where an existing key is adopted from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Adoption {
    /// Secret in the rotation's namespace that holds the key today.
    #[schemars(length(min = 1, max = 253), regex(pattern = NAME_RE))]
    pub secret_name: String,
    /// Data key inside that Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = "^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// URL a hook may be reached at: any `https://` URL, or plain `http://` only
/// inside the cluster (a Service name, or loopback for a sidecar).
pub(crate) const HOOK_URL_RE: &str = "^(https://[^\\s]+|http://(localhost|127\\.0\\.0\\.1|\\[::1\\]|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\\.svc(\\.cluster\\.local)?)(:[0-9]{1,5})?(/[^\\s]*)?)$";

/// A hook endpoint reached over HTTP (docs/hooks.md): a verifier's
/// successful answer is a confirmation, like a verifier pod's report; an
/// issuer's answer is the new version's key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.caBundle) || self.url.startsWith('https://')").message("caBundle is used only with an https:// url"))]
#[x_kube(validation = Rule::new("has(self.tokenSecretRef) != has(self.serviceAccountToken)").message("set exactly one of tokenSecretRef and serviceAccountToken"))]
pub struct HookEndpoint {
    /// Where keyrotor POSTs each step: `https://…`, or `http://` to a
    /// Service in the cluster (`http://name.namespace.svc[:port]/path`) or
    /// to loopback.
    #[schemars(length(min = 1, max = 2048), regex(pattern = HOOK_URL_RE))]
    pub url: String,
    /// PEM certificates that sign the hook's serving certificate (https only).
    /// Without it, the system's trust roots are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536))]
    pub ca_bundle: Option<String>,
    /// Secret in the rotation's namespace holding the bearer token keyrotor
    /// sends as `Authorization: Bearer <token>`. Or `serviceAccountToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<HookTokenRef>,
    /// Send a token of keyrotor's own ServiceAccount instead, minted with
    /// the TokenRequest API for this audience; the hook checks it with a
    /// TokenReview. Or `tokenSecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_token: Option<HookServiceAccountToken>,
    /// How long one call may take before it counts as failed (1–60 s).
    #[serde(default = "default_hook_timeout")]
    #[schemars(range(min = 1, max = 60))]
    pub timeout_seconds: u32,
}

fn default_hook_timeout() -> u32 {
    10
}

/// An audience-bound token of the operator's ServiceAccount.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HookServiceAccountToken {
    /// The audience the token is minted for; the hook accepts only tokens
    /// of its own audience, so a token is good for that hook alone.
    #[schemars(length(min = 1, max = 253))]
    pub audience: String,
    /// Lifetime of each token (600–86400 s); keyrotor mints the next one
    /// when 80 % of it has passed.
    #[serde(default = "default_token_lifetime")]
    #[schemars(range(min = 600, max = 86400))]
    pub expiration_seconds: u32,
}

fn default_token_lifetime() -> u32 {
    3600
}

/// A data key in a Secret of the rotation's namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HookTokenRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253), regex(pattern = NAME_RE))]
    pub name: String,
    /// Data key inside that Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = "^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}
