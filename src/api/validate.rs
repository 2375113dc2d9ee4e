//! Validation of an `ApiKeyRotation` in Rust: the CEL rules of the schema plus
//! what CEL cannot check (cron syntax, time zones, name clashes). Returns every
//! problem with its field path, so the controller can say what to fix in one
//! condition; on success returns the typed policy the planner runs on.

use std::collections::BTreeSet;
use std::fmt;

use jiff::SignedDuration;

use super::spec::*;
use crate::keys::{Alphabet, KeySpec};
use crate::rotation::{GroupPolicy, Mode, Policy, WorkloadId, duration, schedule};

/// One problem in a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path from the resource root, e.g. `spec.gracePeriod.minimum`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem of a spec, in one sentence per problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidSpec(pub Vec<FieldError>);

impl fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for InvalidSpec {}

/// A spec that passed validation, in the types the rest of keyrotor uses.
#[derive(Clone, Debug, PartialEq)]
pub struct Validated {
    pub policy: Policy,
    pub key: KeySpec,
    pub verifier_secret: String,
    pub presenter_secret: String,
    pub verifier_format: VerifierFormat,
    /// The external verifier, when the spec names one.
    pub verifier_hook: Option<HookEndpoint>,
    /// `spec.issuerHook`, kept whole for apply (which calls it).
    pub issuer_hook: Option<HookEndpoint>,
}

/// Default entropy of a key when neither length nor entropyBits is given.
pub const DEFAULT_ENTROPY_BITS: u32 = 192;
const MIN_ENTROPY_BITS: f64 = 128.0;

/// Validates the spec of rotation `name`.
pub fn validate(name: &str, spec: &ApiKeyRotationSpec) -> Result<Validated, InvalidSpec> {
    let mut errs = Errors::default();
    if name.len() > 200 {
        errs.add(
            "metadata.name",
            "must be at most 200 characters, so version Secret names (<name>-v<N>) stay valid",
        );
    }
    let key = key_spec(&spec.key, &mut errs);
    let schedule = spec
        .schedule
        .as_ref()
        .and_then(|s| schedule_of(s, &mut errs));
    let (grace_minimum, grace_maximum, progress_deadline) = waits(spec, &mut errs);
    let verifiers = group(
        &spec.consumers.verifiers,
        "spec.consumers.verifiers",
        &mut errs,
    );
    let presenters = group(
        &spec.consumers.presenters,
        "spec.consumers.presenters",
        &mut errs,
    );
    if spec.consumers.verifiers.traffic.is_some() {
        errs.add(
            "spec.consumers.verifiers.traffic",
            "traffic applies to presenters only: verifiers are the ones reporting it",
        );
    }
    let quiet_window = spec.consumers.presenters.traffic.as_ref().and_then(|t| {
        errs.bounded(
            "spec.consumers.presenters.traffic.quietWindow",
            &t.quiet_window,
            Some(SignedDuration::from_secs(1)),
            "traffic.quietWindow must be between 1s and 87600h (ten years)",
        )
    });
    secrets(name, spec, &mut errs);
    if !(1..=100).contains(&spec.history_limit) {
        errs.add("spec.historyLimit", "must be between 1 and 100");
    }
    for (field, value) in [
        ("rotationRequest", &spec.rotation_request),
        ("rollbackRequest", &spec.rollback_request),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| v.is_empty() || v.len() > 253)
        {
            errs.add(&format!("spec.{field}"), "must be 1 to 253 characters");
        }
    }
    if spec.revoked_versions.contains(&0) {
        errs.add(
            "spec.revokedVersions",
            "revokedVersions entries are version numbers, starting at 1",
        );
    }
    if spec.revoked_versions.len() > 64 {
        errs.add("spec.revokedVersions", "at most 64 entries");
    }
    if let Some(a) = &spec.adopt {
        errs.name("spec.adopt.secretName", &a.secret_name);
        if a.key.is_empty()
            || !a
                .key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            errs.add(
                "spec.adopt.key",
                "must be a Secret data key (letters, digits, '-', '_', '.')",
            );
        }
    }
    if let Some(h) = &spec.verifier_hook {
        hook("spec.verifierHook", h, &mut errs);
    }
    if let Some(h) = &spec.issuer_hook {
        hook("spec.issuerHook", h, &mut errs);
    }
    usernames(&spec.usernames, &mut errs);
    if !errs.0.is_empty() {
        return Err(InvalidSpec(errs.0));
    }
    let (
        Some(key),
        Some(grace_minimum),
        Some(grace_maximum),
        Some(progress_deadline),
        Some(verifiers),
        Some(presenters),
    ) = (
        key,
        grace_minimum,
        grace_maximum,
        progress_deadline,
        verifiers,
        presenters,
    )
    else {
        unreachable!("every None above recorded an error");
    };
    Ok(Validated {
        policy: Policy {
            schedule,
            grace_minimum,
            grace_maximum,
            on_timeout: spec.grace_period.on_timeout,
            progress_deadline,
            verifiers,
            presenters,
            quiet_window,
            combined: spec.secrets.verifier == spec.secrets.presenter,
            history_limit: spec.history_limit as usize,
            suspend: spec.suspend,
            revoked: spec.revoked_versions.iter().copied().collect(),
            adopt: spec.adopt.is_some(),
            verifier_hook: spec.verifier_hook.is_some(),
            issuer_hook: spec.issuer_hook.is_some(),
            usernames: spec.usernames.clone(),
        },
        key,
        verifier_secret: spec.secrets.verifier.clone(),
        presenter_secret: spec.secrets.presenter.clone(),
        verifier_format: spec.secrets.verifier_format,
        verifier_hook: spec.verifier_hook.clone(),
        issuer_hook: spec.issuer_hook.clone(),
    })
}

/// How long a cycle waits: the grace period's bounds and the progress
/// deadline.
fn waits(
    spec: &ApiKeyRotationSpec,
    errs: &mut Errors,
) -> (
    Option<SignedDuration>,
    Option<SignedDuration>,
    Option<SignedDuration>,
) {
    let grace_minimum = errs.bounded(
        "spec.gracePeriod.minimum",
        &spec.grace_period.minimum,
        None,
        "gracePeriod.minimum must be at most 87600h (ten years)",
    );
    let grace_maximum = errs.bounded(
        "spec.gracePeriod.maximum",
        &spec.grace_period.maximum,
        None,
        "gracePeriod.maximum must be at most 87600h (ten years)",
    );
    if let (Some(min), Some(max)) = (grace_minimum, grace_maximum)
        && min > max
    {
        errs.add(
            "spec.gracePeriod",
            "gracePeriod.minimum must not exceed gracePeriod.maximum",
        );
    }
    let progress_deadline = errs.bounded(
        "spec.progressDeadline",
        &spec.progress_deadline,
        Some(SignedDuration::from_secs(1)),
        "progressDeadline must be between 1s and 87600h (ten years)",
    );
    (grace_minimum, grace_maximum, progress_deadline)
}

/// The CRD's rules for a hook (`at`: `spec.verifierHook` or
/// `spec.issuerHook`), for clusters that skip CEL.
fn hook(at: &str, h: &HookEndpoint, errs: &mut Errors) {
    let field = |name: &str| format!("{at}.{name}");
    if !hook_url_ok(&h.url) {
        errs.add(
            &field("url"),
            "must be https://…, or http:// to a Service in the cluster (name.namespace.svc[:port]) or to loopback",
        );
    }
    if h.ca_bundle.is_some() && !h.url.starts_with("https://") {
        errs.add(
            &field("caBundle"),
            "caBundle is used only with an https:// url",
        );
    }
    if !(1..=60).contains(&h.timeout_seconds) {
        errs.add(&field("timeoutSeconds"), "must be 1 to 60");
    }
    match (&h.token_secret_ref, &h.service_account_token) {
        (Some(r), None) => {
            errs.name(&field("tokenSecretRef.name"), &r.name);
            if r.key.is_empty() {
                errs.add(&field("tokenSecretRef.key"), "must not be empty");
            }
        }
        (None, Some(t)) => {
            if t.audience.is_empty() {
                errs.add(&field("serviceAccountToken.audience"), "must not be empty");
            }
            if !(600..=86400).contains(&t.expiration_seconds) {
                errs.add(
                    &field("serviceAccountToken.expirationSeconds"),
                    "must be 600 to 86400",
                );
            }
        }
        _ => errs.add(
            at,
            "set exactly one of tokenSecretRef and serviceAccountToken",
        ),
    }
}

/// The CRD's rules for `spec.usernames`, for clusters that skip CEL: at
/// most two names, different, each matching `USERNAME_RE`.
fn usernames(names: &[String], errs: &mut Errors) {
    if names.len() > 2 {
        errs.add(
            "spec.usernames",
            "usernames must have at most 2 items: one name for every version, or two that alternate",
        );
    }
    let mut seen = BTreeSet::new();
    for (i, name) in names.iter().enumerate() {
        let at = format!("spec.usernames[{i}]");
        if !username_ok(name) {
            errs.add(
                &at,
                &format!("{name:?}: usernames entries must start with a letter or '_' and hold only letters, digits, '_', '.' and '-' (at most 63 characters)"),
            );
        }
        if !seen.insert(name) {
            errs.add(
                &at,
                "usernames lists a name twice: two alternating users need two different names",
            );
        }
    }
}

/// Same rule as `USERNAME_RE`.
pub(crate) fn username_ok(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 63
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Same rule as `HOOK_URL_RE`: plain http only inside the cluster.
pub(crate) fn hook_url_ok(url: &str) -> bool {
    if url.len() > 2048 || url.chars().any(char::is_whitespace) {
        return false;
    }
    if let Some(rest) = url.strip_prefix("https://") {
        return !rest.is_empty();
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.find(']') {
        Some(end) => (&authority[..=end], authority[end + 1..].strip_prefix(':')),
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if port.is_some_and(|p| p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let in_cluster = host
        .strip_suffix(".svc")
        .or_else(|| host.strip_suffix(".svc.cluster.local"))
        .is_some_and(|name| {
            !name.is_empty()
                && name.split('.').all(|l| {
                    !l.is_empty()
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                })
        });
    in_cluster || matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

fn key_spec(k: &KeyFormat, errs: &mut Errors) -> Option<KeySpec> {
    let alphabet = match k.alphabet {
        KeyAlphabet::Base62 => Alphabet::Base62,
        KeyAlphabet::Base64Url => Alphabet::Base64Url,
        KeyAlphabet::Hex => Alphabet::Hex,
        KeyAlphabet::Base32 => Alphabet::Base32,
    };
    let length = match (k.length, k.entropy_bits) {
        (Some(_), Some(_)) => {
            errs.add("spec.key", "set key.length or key.entropyBits, not both");
            return None;
        }
        (Some(len), None) => {
            if !(16..=512).contains(&len) {
                errs.add("spec.key.length", "must be between 16 and 512");
                return None;
            }
            len as usize
        }
        (None, bits) => {
            let bits = bits.unwrap_or(DEFAULT_ENTROPY_BITS);
            if !(128..=2048).contains(&bits) {
                errs.add("spec.key.entropyBits", "must be between 128 and 2048");
                return None;
            }
            alphabet.chars_for_bits(bits)
        }
    };
    let spec = KeySpec {
        alphabet,
        length,
        prefix: k.prefix.clone().unwrap_or_default(),
        checksum: k.checksum == KeyChecksum::Crc32,
    };
    if spec.entropy_bits() < MIN_ENTROPY_BITS {
        errs.add("spec.key.length", "key.length gives less than 128 bits of entropy for this alphabet (Hex needs 32, Base32 26, Base62 and Base64Url 22)");
    }
    if let Some(p) = &k.prefix {
        let ok = p.len() <= 32
            && p.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            errs.add(
                "spec.key.prefix",
                "must be 1 to 32 letters, digits, '_' or '-', starting with a letter or digit",
            );
        }
    }
    Some(spec)
}

fn schedule_of(s: &Schedule, errs: &mut Errors) -> Option<schedule::Schedule> {
    match (&s.interval, &s.cron) {
        (Some(_), Some(_)) | (None, None) => {
            errs.add(
                "spec.schedule",
                "schedule needs exactly one of interval or cron",
            );
            None
        }
        (Some(interval), None) => {
            if s.time_zone.is_some() {
                errs.add(
                    "spec.schedule.timeZone",
                    "schedule.timeZone applies to cron schedules only",
                );
            }
            let d = errs.bounded(
                "spec.schedule.interval",
                interval,
                Some(SignedDuration::from_mins(1)),
                "schedule.interval must be between 1m and 87600h (ten years)",
            )?;
            Some(schedule::Schedule::Interval(d))
        }
        (None, Some(cron)) => match schedule::Cron::parse(cron, s.time_zone.as_deref()) {
            Ok(c) => Some(schedule::Schedule::Cron(c)),
            Err(e) => {
                let path = if e.contains("IANA") {
                    "spec.schedule.timeZone"
                } else {
                    "spec.schedule.cron"
                };
                errs.add(path, &e);
                None
            }
        },
    }
}

fn group(g: &ConsumerGroup, path: &str, errs: &mut Errors) -> Option<GroupPolicy> {
    let delay = errs.bounded(
        &format!("{path}.propagationDelay"),
        &g.propagation_delay,
        None,
        "propagationDelay must be at most 87600h (ten years)",
    );
    if g.confirmation == Mode::Rollout && g.workloads.is_empty() {
        errs.add(
            path,
            "confirmation Rollout needs at least one workload to restart",
        );
    }
    if g.min_consumers > 1000 {
        errs.add(
            &format!("{path}.minConsumers"),
            "minConsumers must be at most 1000",
        );
    }
    let mut seen = BTreeSet::new();
    for (i, w) in g.workloads.iter().enumerate() {
        errs.name(&format!("{path}.workloads[{i}].name"), &w.name);
        if !seen.insert((w.kind, w.name.clone())) {
            errs.add(&format!("{path}.workloads[{i}]"), "is listed twice");
        }
    }
    if let Some(sel) = &g.selector {
        selector(sel, &format!("{path}.selector"), "pod", errs);
    }
    if let Some(sel) = &g.namespace_selector {
        selector(sel, &format!("{path}.namespaceSelector"), "namespace", errs);
    }
    namespaces(g, path, errs);
    Some(GroupPolicy {
        mode: g.confirmation,
        nudge: g.nudge,
        propagation_delay: delay?,
        min_consumers: g.min_consumers,
        workloads: g
            .workloads
            .iter()
            .map(|w| WorkloadId {
                kind: w.kind,
                name: w.name.clone(),
            })
            .collect(),
    })
}

fn selector(sel: &LabelSelector, path: &str, what: &str, errs: &mut Errors) {
    if sel.match_labels.is_empty() && sel.match_expressions.is_empty() {
        errs.add(
            path,
            &format!("an empty selector would select every {what}; leave it out instead"),
        );
    }
    for (i, r) in sel.match_expressions.iter().enumerate() {
        let needs_values = matches!(r.operator, SelectorOperator::In | SelectorOperator::NotIn);
        if needs_values == r.values.is_empty() {
            errs.add(
                &format!("{path}.matchExpressions[{i}]"),
                "In and NotIn need values; Exists and DoesNotExist take none",
            );
        }
    }
}

/// The namespaces a group reaches beyond the rotation's own.
fn namespaces(g: &ConsumerGroup, path: &str, errs: &mut Errors) {
    if g.namespaces.len() > 64 {
        errs.add(&format!("{path}.namespaces"), "at most 64 namespaces");
    }
    let mut seen = BTreeSet::new();
    for (i, ns) in g.namespaces.iter().enumerate() {
        let at = format!("{path}.namespaces[{i}]");
        if ns.len() > 63 || ns.contains('.') {
            errs.add(
                &at,
                &format!(
                    "{ns:?} is not a namespace name (a lowercase DNS label, at most 63 characters)"
                ),
            );
        } else {
            errs.name(&at, ns);
        }
        if !seen.insert(ns) {
            errs.add(&at, "is listed twice");
        }
    }
    let reaches = !g.namespaces.is_empty() || g.namespace_selector.is_some();
    if reaches && g.confirmation == Mode::Rollout {
        errs.add(
            path,
            "confirmation Rollout restarts workloads of the rotation's namespace only: use Report for a group in other namespaces",
        );
    }
}

fn secrets(name: &str, spec: &ApiKeyRotationSpec, errs: &mut Errors) {
    for (field, secret) in [
        ("verifier", &spec.secrets.verifier),
        ("presenter", &spec.secrets.presenter),
    ] {
        let path = format!("spec.secrets.{field}");
        errs.name(&path, secret);
        // Version Secrets are named <name>-v<N>; a projected Secret must not collide.
        if let Some(rest) = secret.strip_prefix(&format!("{name}-v"))
            && !rest.is_empty()
            && rest.bytes().all(|b| b.is_ascii_digit())
        {
            errs.add(&path, "clashes with keyrotor's version Secret names (<rotation>-v<N>); choose another name");
        }
        if spec
            .adopt
            .as_ref()
            .is_some_and(|a| &a.secret_name == secret)
        {
            errs.add(
                "spec.adopt.secretName",
                "must differ from the projected Secrets: keyrotor only writes Secrets it owns",
            );
        }
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, path: &str, message: &str) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn duration(&mut self, path: &str, text: &str) -> Option<SignedDuration> {
        match duration::parse(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.add(path, &e);
                None
            }
        }
    }

    /// A duration within `min` (if any) and [`MAX_DURATION`], as the CRD's
    /// rule checks it: a text short enough that CEL's `duration()` cannot
    /// overflow (at most 16 characters, 6 digits on each side of a point),
    /// else `message`, which names the field and the limits.
    fn bounded(
        &mut self,
        path: &str,
        text: &str,
        min: Option<SignedDuration>,
        message: &str,
    ) -> Option<SignedDuration> {
        let d = self.duration(path, text)?;
        let max = duration::parse(MAX_DURATION).expect("a valid duration");
        let fits = text.len() <= 16
            && text
                .split(|c: char| c.is_ascii_alphabetic())
                .filter(|n| !n.is_empty())
                .all(|n| {
                    let (int, frac) = n.split_once('.').unwrap_or((n, ""));
                    int.len() <= 6 && frac.len() <= 6
                });
        if !fits || d > max || min.is_some_and(|m| d < m) {
            self.add(path, message);
            return None;
        }
        Some(d)
    }

    fn name(&mut self, path: &str, name: &str) {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            self.add(path, &format!("{name:?} is not a valid name (lowercase letters, digits, '-' and '.', at most 253 characters)"));
        }
    }
}
