//! The wire contract: every name keyrotor and its consumers agree on outside
//! the code — labels, annotations, Secret data keys (the files consumers
//! read), field managers and the finalizer. This module is their one home;
//! docs/design.md#the-wire-contract tables them, docs/consumers.md shows them
//! to apps written in other languages. Renaming anything here breaks
//! clusters that run an older keyrotor or consumer: treat it as an API.
//!
//! The values consumer pods carry in their annotations have one codec each
//! here too ([`RevisionReport`], [`Nudge`], [`LastSeen`], [`Traffic`]);
//! docs/wire.md is the language-neutral specification of all of it, and
//! tests/wire/ holds its fixtures.

mod codec;

pub use codec::{
    EXCERPT_CHARS, ErrorKind, LastSeen, Lenient, Nudge, RevisionReport, Traffic, WireError,
    earliest_time, parse_number,
};

/// A version number, as in the projected files.
pub type Version = u64;

/// API group of `ApiKeyRotation`.
pub const GROUP: &str = "keyrotor.dev";
/// `apiVersion` of `ApiKeyRotation` objects.
pub const API_VERSION: &str = "keyrotor.dev/v1alpha1";

// --- Field managers and the finalizer --------------------------------------

/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "keyrotor";
/// Field manager of the revision reports (reporter sidecar and client library).
pub const REPORTER_MANAGER: &str = "keyrotor-reporter";
/// Field manager of the `last-seen` usage reports (client library).
pub const USAGE_MANAGER: &str = "keyrotor-usage";
/// Field manager of `kubectl keyrotor` (rotate and rollback requests).
pub const PLUGIN_MANAGER: &str = "kubectl-keyrotor";
/// Finalizer that lets keyrotor apply the deletion policy before a rotation goes.
pub const FINALIZER: &str = "keyrotor.dev/cleanup";

// --- Labels on the Secrets keyrotor owns ------------------------------------

/// Label on every Secret keyrotor owns: the rotation's name.
pub const ROTATION_LABEL: &str = "keyrotor.dev/rotation";
/// Label on version Secrets: the version number.
pub const VERSION_LABEL: &str = "keyrotor.dev/version";
/// Label on Secrets: [`ROLE_VERSION`] or [`ROLE_PROJECTION`].
pub const ROLE_LABEL: &str = "keyrotor.dev/role";
/// [`ROLE_LABEL`] of a version Secret (one key, immutable).
pub const ROLE_VERSION: &str = "version";
/// [`ROLE_LABEL`] of a projected Secret (what consumers mount).
pub const ROLE_PROJECTION: &str = "projection";

/// Label on the copies of a projected Secret keyrotor keeps in other
/// namespaces (`spec.consumers.<group>.namespaces`): the namespace of the
/// rotation they copy. With [`ROTATION_LABEL`] it names their owner (an
/// owner reference cannot cross namespaces).
pub const SOURCE_NAMESPACE_LABEL: &str = "keyrotor.dev/source-namespace";

// --- Annotations on Namespaces -----------------------------------------------

/// Annotation on a Namespace: the rotations that may keep copies of their
/// Secrets in it, comma-separated: `<namespace>` (every rotation of that
/// namespace) or `<namespace>/<name>` (one). Only who may annotate
/// Namespaces (cluster admins, as a rule) can agree for a namespace.
pub const ACCEPT_FROM: &str = "keyrotor.dev/accept-from";

/// Whether a Namespace's [`ACCEPT_FROM`] value lets rotation `name` of
/// namespace `source` keep copies there.
pub fn accepts(accept_from: &str, source: &str, name: &str) -> bool {
    let entries = accept_from
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty());
    entries
        .into_iter()
        .any(|entry| match entry.split_once('/') {
            Some((ns, rotation)) => ns == source && rotation == name,
            None => entry == source,
        })
}

// --- Annotations on Secrets -------------------------------------------------

/// Annotation on version Secrets: the key's fingerprint (`sha256:…`).
pub const FINGERPRINT: &str = "keyrotor.dev/fingerprint";
/// Annotation on version Secrets: when the version was created.
pub const CREATED_AT: &str = "keyrotor.dev/created-at";
/// Annotation on version Secrets: `Generated` or `Adopted`.
pub const ORIGIN: &str = "keyrotor.dev/origin";
/// Annotation on version Secrets: the rotate requests this version answered (JSON).
pub const REQUESTS: &str = "keyrotor.dev/requests";
/// Annotation on version Secrets: set when a rollback abandoned the version (JSON).
pub const ABANDONED: &str = "keyrotor.dev/abandoned";
/// Annotation on version Secrets: the user name the version carries
/// (`spec.usernames`), written at creation and never changed.
pub const USERNAME: &str = "keyrotor.dev/username";
/// Annotation on version Secrets: when the verifier hook answered that it
/// accepts the version (docs/hooks.md); its presence is the confirmation.
pub const HOOK_ACCEPTED: &str = "keyrotor.dev/hook-accepted";
/// Annotation on version Secrets an issuer hook minted: when it answered.
pub const HOOK_ISSUED: &str = "keyrotor.dev/hook-issued";
/// Annotation on version Secrets an issuer hook minted: the `keyId` it gave
/// the key (not secret), sent back to it with `retire`.
pub const HOOK_KEY_ID: &str = "keyrotor.dev/hook-key-id";
/// Annotation on projected Secrets: their revision (grows with every write).
pub const REVISION: &str = "keyrotor.dev/revision";
/// Annotation on verifier Secrets: accepted versions, comma-separated.
pub const ACCEPTED: &str = "keyrotor.dev/accepted";
/// Annotation on presenter Secrets: the current version.
pub const CURRENT: &str = "keyrotor.dev/current";
/// Annotation on projected Secrets: when they were last written.
pub const WRITTEN_AT: &str = "keyrotor.dev/written-at";
/// Annotation on projected Secrets: the highest version number ever issued (I5).
pub const HIGHEST: &str = "keyrotor.dev/highest-version";

// --- Annotations on the ApiKeyRotation --------------------------------------

/// Imperative rotate token (`kubectl keyrotor rotate`; a GitOps sync keeps it).
pub const ROTATE_REQUEST: &str = "keyrotor.dev/rotate";
/// Imperative rollback token (`kubectl keyrotor rollback`).
pub const ROLLBACK_REQUEST: &str = "keyrotor.dev/rollback";
/// Ask a hook again after it refused a step (`status.hookRefusal`): any
/// value other than the one recorded with the refusal.
pub const RETRY_HOOK: &str = "keyrotor.dev/retry-hook";

// --- Annotations on consumer pods (one key per rotation) ---------------------

/// The role of a consumer group in report annotations and projected files.
pub const ROLE_VERIFIER: &str = "verifier";
/// See [`ROLE_VERIFIER`].
pub const ROLE_PRESENTER: &str = "presenter";

/// The domain part every per-rotation pod annotation shares; keyrotor's pod
/// cache keeps only annotations containing it.
pub const POD_ANNOTATION_DOMAIN: &str = ".keyrotor.dev/";

/// Written by a consumer pod on itself: the revision of `role`'s projected
/// Secret it loaded ([`RevisionReport`]). One key per rotation and role, so
/// several reporters never overwrite each other.
pub fn report(rotation: &str, role: &str) -> String {
    format!("{rotation}{POD_ANNOTATION_DOMAIN}{role}-revision")
}

/// The rotation and role a revision-report key names ([`report`]'s
/// inverse); `None` for any other key.
pub fn parse_report(key: &str) -> Option<(&str, &str)> {
    let (rotation, name) = key.split_once(POD_ANNOTATION_DOMAIN)?;
    let role = name.strip_suffix("-revision")?;
    (!rotation.is_empty() && !role.is_empty() && !role.contains('/')).then_some((rotation, role))
}

/// Written by keyrotor on a consumer pod: the last nudge ([`Nudge`],
/// `revision/attempt/unix-seconds`); a pod update makes kubelet resync.
pub fn nudge(rotation: &str) -> String {
    format!("{rotation}{POD_ANNOTATION_DOMAIN}nudge")
}

/// Written by a verifier pod on itself: when each version was last presented
/// ([`LastSeen`], `<version>=<RFC 3339>,…`), for Traffic mode.
pub fn last_seen(rotation: &str) -> String {
    format!("{rotation}{POD_ANNOTATION_DOMAIN}last-seen")
}

/// Written by a `keyrotor verifier` sidecar on its pod: requests it checked
/// since it started ([`Traffic`],
/// `accepted=<v>:<n>,…;retired=<v>:<n>,…;client=<ip>`). Retired counts tell
/// the operator that a client missed a rotation.
pub fn traffic(rotation: &str) -> String {
    format!("{rotation}{POD_ANNOTATION_DOMAIN}traffic")
}

// --- Secret data keys: the files consumers read ------------------------------

/// The key: in a version Secret, and the current key in a presenter Secret.
pub const KEY: &str = "key";
/// Presenter file: the current version number.
pub const VERSION: &str = "version";
/// Presenter file, optional: the user name of the current key's version
/// (`spec.usernames`), when it has one. Not secret.
pub const USERNAME_FILE: &str = "username";
/// Verifier file: accepted versions, comma-separated.
pub const ACCEPTED_FILE: &str = "accepted";
/// Every projected Secret: its revision (what reports confirm).
pub const REVISION_FILE: &str = "revision";
/// Every projected Secret: the rotation's name.
pub const ROTATION_FILE: &str = "rotation";
/// Every projected Secret: its roles, comma-separated (`verifier`, `presenter`).
pub const ROLE_FILE: &str = "role";

/// The roles a [`ROLE_FILE`] names: comma-separated, ASCII whitespace
/// around a name ignored, empty names skipped.
pub fn roles(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(str::trim_ascii)
        .filter(|r| !r.is_empty())
}

/// Verifier file holding version `v`'s SHA-256 digest (the default format).
pub fn digest_file(v: Version) -> String {
    format!("v{v}.sha256")
}

/// Verifier file holding version `v`'s plain key (`verifierFormat: Plain`).
pub fn plain_file(v: Version) -> String {
    format!("v{v}.key")
}

/// Name of version `v`'s Secret: deterministic, so creating it twice is harmless (I6).
pub fn version_secret_name(rotation: &str, v: Version) -> String {
    format!("{rotation}-v{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_rotation_pod_annotations_never_collide_across_rotations_or_roles() {
        let names = [
            report("api", ROLE_VERIFIER),
            report("api", ROLE_PRESENTER),
            report("billing", ROLE_VERIFIER),
            nudge("api"),
            last_seen("api"),
        ];
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        assert_eq!(names[0], "api.keyrotor.dev/verifier-revision");
        assert!(names.iter().all(|n| n.contains(POD_ANNOTATION_DOMAIN)));
    }

    #[test]
    fn a_report_key_names_its_rotation_and_role() {
        let key = report("api.v2", ROLE_PRESENTER);
        assert_eq!(parse_report(&key), Some(("api.v2", ROLE_PRESENTER)));
        for other in [
            nudge("api"),
            last_seen("api"),
            "api.keyrotor.dev/-revision".into(),
        ] {
            assert_eq!(parse_report(&other), None, "{other}");
        }
        let listed: Vec<&str> = roles(" verifier , ,presenter\n").collect();
        assert_eq!(listed, [ROLE_VERIFIER, ROLE_PRESENTER]);
    }

    #[test]
    fn a_namespace_accepts_the_namespaces_and_rotations_it_lists_and_no_other() {
        let value = " orders, payments/api-key ,";
        assert!(accepts(value, "orders", "anything"));
        assert!(accepts(value, "payments", "api-key"));
        assert!(!accepts(value, "payments", "other"));
        assert!(!accepts(value, "order", "x"), "no prefix match");
        assert!(!accepts(value, "", "x"), "an empty entry names nobody");
        assert!(!accepts("*", "orders", "x"), "no wildcard");
    }

    #[test]
    fn api_version_is_the_group_and_version() {
        assert_eq!(API_VERSION, format!("{GROUP}/v1alpha1"));
    }
}
