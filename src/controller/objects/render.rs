//! The Secrets keyrotor writes, built as plain values (no I/O), and the
//! parsing of what it wrote back into the planner's observations.
//!
//! Projected Secret files (what consumers read; see docs/consumers.md):
//! presenters get `key` and `version`, and `username` when the current
//! version carries one; verifiers get one `v<N>.sha256` (or `v<N>.key` when
//! plain keys are asked for) per accepted version and `accepted`; every
//! projected Secret has `revision`, `rotation` and `role`.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::material::Material;
use crate::api::VerifierFormat;
use crate::keys::SecretKey;
use crate::rotation::{Origin, Published, Requests, Revision, Target, Version, VersionObs};
use crate::wire::{
    self as k, ABANDONED, CREATED_AT, HIGHEST, KEY, ORIGIN, REQUESTS, USERNAME, USERNAME_FILE,
    WRITTEN_AT, version_secret_name,
};

/// Everything needed to render the Secrets of one rotation.
pub struct Layout<'a> {
    pub rotation: &'a str,
    pub namespace: &'a str,
    pub owner: OwnerReference,
    pub verifier_secret: &'a str,
    pub presenter_secret: &'a str,
    pub format: VerifierFormat,
}

/// Why a Secret could not be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("the key material of version {0} is missing")]
    KeyMissing(Version),
}

impl Layout<'_> {
    fn meta(&self, name: String, role: &str, annotations: BTreeMap<String, String>) -> ObjectMeta {
        let mut labels = BTreeMap::new();
        labels.insert(k::ROTATION_LABEL.to_string(), self.rotation.to_string());
        labels.insert(k::ROLE_LABEL.to_string(), role.to_string());
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }

    /// The immutable Secret holding version `v`'s key, and the user name it
    /// carries, if any.
    pub fn version_secret(&self, v: Version, key: &SecretKey, new: &NewVersion<'_>) -> Secret {
        let mut ann = BTreeMap::new();
        ann.insert(k::FINGERPRINT.to_string(), key.fingerprint());
        ann.insert(CREATED_AT.to_string(), new.created_at.to_string());
        ann.insert(ORIGIN.to_string(), format!("{:?}", new.origin));
        if !new.requests.is_empty() {
            ann.insert(
                REQUESTS.to_string(),
                serde_json::to_string(new.requests).unwrap_or_default(),
            );
        }
        if let Some(name) = new.username {
            ann.insert(USERNAME.to_string(), name.to_string());
        }
        let mut meta = self.meta(version_secret_name(self.rotation, v), k::ROLE_VERSION, ann);
        meta.labels
            .get_or_insert_default()
            .insert(k::VERSION_LABEL.to_string(), v.to_string());
        Secret {
            metadata: meta,
            immutable: Some(true),
            type_: Some("Opaque".into()),
            data: Some(
                [(
                    KEY.to_string(),
                    ByteString(key.expose().as_bytes().to_vec()),
                )]
                .into(),
            ),
            ..Default::default()
        }
    }

    /// A projected Secret: verifiers' view, presenters' view, or both, from
    /// the keys and user names `held`. `previous` lends verifier digests of
    /// versions whose key is gone (a version Secret deleted by hand), so a
    /// rebuild loses nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn projected_secret(
        &self,
        target: Target,
        accepted: &BTreeSet<Version>,
        current: Option<Version>,
        revision: Revision,
        highest: Version,
        held: &Material,
        previous: Option<&Secret>,
        now: Timestamp,
    ) -> Result<Secret, RenderError> {
        let keys = &held.keys;
        let combined = format!("{},{}", k::ROLE_VERIFIER, k::ROLE_PRESENTER);
        let (name, role) = match target {
            Target::Verifier => (self.verifier_secret, k::ROLE_VERIFIER),
            Target::Presenter => (self.presenter_secret, k::ROLE_PRESENTER),
            Target::Combined => (self.verifier_secret, combined.as_str()),
        };
        let mut data: BTreeMap<String, ByteString> = BTreeMap::new();
        let mut put = |k: &str, v: &[u8]| {
            data.insert(k.to_string(), ByteString(v.to_vec()));
        };
        let mut ann = BTreeMap::new();
        ann.insert(k::REVISION.to_string(), revision.to_string());
        ann.insert(WRITTEN_AT.to_string(), now.to_string());
        ann.insert(HIGHEST.to_string(), highest.to_string());
        put(k::REVISION_FILE, revision.to_string().as_bytes());
        put(k::ROTATION_FILE, self.rotation.as_bytes());
        put(k::ROLE_FILE, role.as_bytes());
        if matches!(target, Target::Verifier | Target::Combined) {
            let list = join(accepted);
            ann.insert(k::ACCEPTED.to_string(), list.clone());
            put(k::ACCEPTED_FILE, list.as_bytes());
            for v in accepted {
                let (file, value) = match (self.format, keys.get(v)) {
                    (VerifierFormat::Sha256, Some(key)) => {
                        (k::digest_file(*v), key.digest().into_bytes())
                    }
                    (VerifierFormat::Plain, Some(key)) => {
                        (k::plain_file(*v), key.expose().as_bytes().to_vec())
                    }
                    (VerifierFormat::Sha256, None) => {
                        let file = k::digest_file(*v);
                        let kept = previous
                            .and_then(|s| s.data.as_ref())
                            .and_then(|d| d.get(&file))
                            .ok_or(RenderError::KeyMissing(*v))?;
                        (file, kept.0.clone())
                    }
                    (VerifierFormat::Plain, None) => return Err(RenderError::KeyMissing(*v)),
                };
                put(&file, &value);
            }
        }
        if matches!(target, Target::Presenter | Target::Combined)
            && let Some(c) = current
        {
            let key = keys.get(&c).ok_or(RenderError::KeyMissing(c))?;
            ann.insert(k::CURRENT.to_string(), c.to_string());
            put(KEY, key.expose().as_bytes());
            put(k::VERSION, c.to_string().as_bytes());
            // In the same write as `key`: a consumer never reads one
            // version's key with another's user name.
            if let Some(name) = held.usernames.get(&c) {
                put(USERNAME_FILE, name.as_bytes());
            }
        }
        Ok(Secret {
            metadata: self.meta(name.to_string(), k::ROLE_PROJECTION, ann),
            type_: Some("Opaque".into()),
            data: Some(data),
            ..Default::default()
        })
    }
}

/// What a new version Secret records besides its key.
pub struct NewVersion<'a> {
    pub origin: Origin,
    /// The rotate requests it answers.
    pub requests: &'a Requests,
    pub created_at: Timestamp,
    /// The user name it carries (`spec.usernames`), chosen by the planner.
    pub username: Option<&'a str>,
}

/// What a projected Secret publishes, read from its annotations.
pub fn published(secret: &Secret) -> Option<Published> {
    let ann = secret.metadata.annotations.as_ref()?;
    let num = |key: &str| ann.get(key).and_then(|v| v.parse::<u64>().ok());
    Some(Published {
        revision: num(k::REVISION)?,
        accepted: ann.get(k::ACCEPTED).map(|s| split(s)).unwrap_or_default(),
        current: num(k::CURRENT),
        written_at: ann.get(WRITTEN_AT).and_then(|t| t.parse().ok())?,
        highest: num(HIGHEST).unwrap_or(0),
    })
}

/// A version Secret as the planner sees it, with its key if it has one.
pub fn version_obs(secret: &Secret) -> Option<(Version, VersionObs, Option<SecretKey>)> {
    let v: Version = secret
        .metadata
        .labels
        .as_ref()?
        .get(k::VERSION_LABEL)?
        .parse()
        .ok()?;
    let ann = secret.metadata.annotations.clone().unwrap_or_default();
    let key = secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .and_then(|b| SecretKey::adopt(b.0.clone()).ok());
    let fingerprint = key
        .as_ref()
        .map(SecretKey::fingerprint)
        .or_else(|| ann.get(k::FINGERPRINT).cloned())
        .unwrap_or_default();
    let created_at = ann
        .get(CREATED_AT)
        .and_then(|t| t.parse().ok())
        .or_else(|| secret.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let obs = VersionObs {
        fingerprint,
        has_key: key.is_some(),
        created_at,
        origin: if ann.get(ORIGIN).map(String::as_str) == Some("Adopted") {
            Origin::Adopted
        } else {
            Origin::Generated
        },
        requests: ann
            .get(REQUESTS)
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default(),
        abandoned: ann
            .get(ABANDONED)
            .and_then(|j| serde_json::from_str(j).ok()),
        hook_accepted: ann.contains_key(k::HOOK_ACCEPTED),
        username: ann.get(USERNAME).cloned(),
    };
    Some((v, obs, key))
}

fn join(set: &BTreeSet<Version>) -> String {
    set.iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn split(s: &str) -> BTreeSet<Version> {
    s.split(',').filter_map(|p| p.trim().parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Alphabet, KeySpec};

    fn layout(format: VerifierFormat) -> Layout<'static> {
        Layout {
            rotation: "api",
            namespace: "ns",
            owner: OwnerReference {
                name: "api".into(),
                uid: "u1".into(),
                ..Default::default()
            },
            verifier_secret: "api-verifier",
            presenter_secret: "api-presenter",
            format,
        }
    }

    fn keys() -> BTreeMap<Version, SecretKey> {
        let spec = KeySpec {
            alphabet: Alphabet::Base62,
            length: 32,
            prefix: String::new(),
            checksum: false,
        };
        (1..=2)
            .map(|v| (v, SecretKey::generate(&spec).unwrap()))
            .collect()
    }

    fn held(keys: &BTreeMap<Version, SecretKey>) -> Material {
        Material {
            keys: keys.clone(),
            ..Default::default()
        }
    }

    fn text(s: &Secret, file: &str) -> Option<String> {
        s.data
            .as_ref()?
            .get(file)
            .map(|b| String::from_utf8(b.0.clone()).unwrap())
    }

    #[test]
    fn verifiers_get_digests_and_never_the_keys_by_default() {
        let keys = keys();
        let now = Timestamp::UNIX_EPOCH;
        let s = layout(VerifierFormat::Sha256)
            .projected_secret(
                Target::Verifier,
                &[1, 2].into(),
                Some(1),
                4,
                2,
                &held(&keys),
                None,
                now,
            )
            .unwrap();
        assert_eq!(text(&s, "v1.sha256").unwrap(), keys[&1].digest());
        assert_eq!(text(&s, "v2.sha256").unwrap(), keys[&2].digest());
        assert_eq!(text(&s, "accepted").unwrap(), "1,2");
        let all = format!("{:?}", s.data);
        for key in keys.values() {
            assert!(!all.contains(&format!("{:?}", key.expose().as_bytes())));
        }
        assert!(text(&s, KEY).is_none());
        let p = published(&s).unwrap();
        assert_eq!((p.revision, p.accepted, p.highest), (4, [1, 2].into(), 2));
    }

    #[test]
    fn presenters_get_only_the_current_key() {
        let keys = keys();
        let s = layout(VerifierFormat::Sha256)
            .projected_secret(
                Target::Presenter,
                &[1, 2].into(),
                Some(2),
                7,
                2,
                &held(&keys),
                None,
                Timestamp::UNIX_EPOCH,
            )
            .unwrap();
        assert_eq!(text(&s, KEY).unwrap(), keys[&2].expose());
        assert_eq!(text(&s, "version").unwrap(), "2");
        assert!(text(&s, "v1.sha256").is_none());
        assert_eq!(published(&s).unwrap().current, Some(2));
    }

    #[test]
    fn a_digest_survives_the_loss_of_its_version_secret() {
        let mut keys = keys();
        let l = layout(VerifierFormat::Sha256);
        let now = Timestamp::UNIX_EPOCH;
        let before = l
            .projected_secret(
                Target::Verifier,
                &[1, 2].into(),
                Some(1),
                1,
                2,
                &held(&keys),
                None,
                now,
            )
            .unwrap();
        let digest = keys[&1].digest();
        keys.remove(&1);
        let missing = l.projected_secret(
            Target::Verifier,
            &[1, 2].into(),
            Some(1),
            2,
            2,
            &held(&keys),
            None,
            now,
        );
        assert_eq!(missing.unwrap_err(), RenderError::KeyMissing(1));
        let rebuilt = l
            .projected_secret(
                Target::Verifier,
                &[1, 2].into(),
                Some(1),
                2,
                2,
                &held(&keys),
                Some(&before),
                now,
            )
            .unwrap();
        assert_eq!(text(&rebuilt, "v1.sha256").unwrap(), digest);
    }

    #[test]
    fn version_secrets_are_immutable_and_read_back() {
        let keys = keys();
        let req = Requests {
            spec: Some("r1".into()),
            annotation: None,
        };
        let new = NewVersion {
            origin: Origin::Generated,
            requests: &req,
            created_at: Timestamp::UNIX_EPOCH,
            username: None,
        };
        let s = layout(VerifierFormat::Sha256).version_secret(2, &keys[&2], &new);
        assert_eq!(s.metadata.name.as_deref(), Some("api-v2"));
        assert_eq!(s.immutable, Some(true));
        let (v, obs, key) = version_obs(&s).unwrap();
        assert_eq!(v, 2);
        assert_eq!(obs.fingerprint, keys[&2].fingerprint());
        assert_eq!(obs.requests, req);
        assert!(obs.has_key && key.is_some());
    }

    /// `pairs` as a Secret's data.
    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect()
    }

    fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The key of version 2 in the exact-content tests below.
    fn fixed_key() -> SecretKey {
        SecretKey::adopt(b"k2-0123456789abcdefghij".to_vec()).unwrap()
    }

    /// The metadata every Secret of rotation `api` has, written out.
    fn meta(name: &str, role: &str, annotations: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            labels: Some(strings(&[
                ("keyrotor.dev/rotation", "api"),
                ("keyrotor.dev/role", role),
            ])),
            annotations: Some(strings(annotations)),
            owner_references: Some(vec![layout(VerifierFormat::Sha256).owner]),
            ..Default::default()
        }
    }

    /// Version 2 projected by `target` at revision 7, with the key alone.
    fn projected_v2(target: Target) -> Secret {
        layout(VerifierFormat::Sha256)
            .projected_secret(
                target,
                &[2].into(),
                Some(2),
                7,
                2,
                &held(&[(2, fixed_key())].into()),
                None,
                Timestamp::UNIX_EPOCH,
            )
            .unwrap()
    }

    const PUBLISHED: [(&str, &str); 4] = [
        ("keyrotor.dev/revision", "7"),
        ("keyrotor.dev/written-at", "1970-01-01T00:00:00Z"),
        ("keyrotor.dev/highest-version", "2"),
        ("keyrotor.dev/current", "2"),
    ];

    #[test]
    fn without_a_user_name_a_presenter_secret_is_exactly_what_it_always_was() {
        let key = fixed_key();
        let files = [
            ("revision", "7"),
            ("rotation", "api"),
            ("role", "presenter"),
            ("key", key.expose()),
            ("version", "2"),
        ];
        let want = Secret {
            metadata: meta("api-presenter", "projection", &PUBLISHED),
            type_: Some("Opaque".into()),
            data: Some(data(&files)),
            ..Default::default()
        };
        assert_eq!(projected_v2(Target::Presenter), want);
    }

    #[test]
    fn without_a_user_name_a_combined_secret_is_exactly_what_it_always_was() {
        let key = fixed_key();
        let digest = key.digest();
        let files = [
            ("revision", "7"),
            ("rotation", "api"),
            ("role", "verifier,presenter"),
            ("accepted", "2"),
            ("v2.sha256", &digest),
            ("key", key.expose()),
            ("version", "2"),
        ];
        let annotations = [&PUBLISHED[..], &[("keyrotor.dev/accepted", "2")]].concat();
        let want = Secret {
            metadata: meta("api-verifier", "projection", &annotations),
            type_: Some("Opaque".into()),
            data: Some(data(&files)),
            ..Default::default()
        };
        assert_eq!(projected_v2(Target::Combined), want);
    }

    #[test]
    fn without_a_user_name_a_version_secret_is_exactly_what_it_always_was() {
        let key = fixed_key();
        let new = NewVersion {
            origin: Origin::Generated,
            requests: &Requests::default(),
            created_at: Timestamp::UNIX_EPOCH,
            username: None,
        };
        let fingerprint = key.fingerprint();
        let mut metadata = meta(
            "api-v2",
            "version",
            &[
                ("keyrotor.dev/fingerprint", &fingerprint),
                ("keyrotor.dev/created-at", "1970-01-01T00:00:00Z"),
                ("keyrotor.dev/origin", "Generated"),
            ],
        );
        let labels = metadata.labels.as_mut().unwrap();
        labels.insert("keyrotor.dev/version".into(), "2".into());
        let want = Secret {
            metadata,
            immutable: Some(true),
            type_: Some("Opaque".into()),
            data: Some(data(&[("key", key.expose())])),
            ..Default::default()
        };
        assert_eq!(
            layout(VerifierFormat::Sha256).version_secret(2, &key, &new),
            want
        );
    }

    #[test]
    fn presenters_get_the_current_versions_user_name_beside_its_key() {
        let keys = keys();
        let mut held = held(&keys);
        held.usernames.insert(1, "app_blue".into());
        held.usernames.insert(2, "app_green".into());
        let l = layout(VerifierFormat::Sha256);
        let render = |target, current, held: &Material| {
            l.projected_secret(
                target,
                &[1, 2].into(),
                current,
                3,
                2,
                held,
                None,
                Timestamp::UNIX_EPOCH,
            )
            .unwrap()
        };
        for (current, name) in [(1, "app_blue"), (2, "app_green")] {
            for target in [Target::Presenter, Target::Combined] {
                let s = render(target, Some(current), &held);
                assert_eq!(text(&s, USERNAME_FILE).as_deref(), Some(name));
                assert_eq!(text(&s, KEY).unwrap(), keys[&current].expose());
            }
        }
        let verifier = render(Target::Verifier, Some(2), &held);
        assert_eq!(
            text(&verifier, USERNAME_FILE),
            None,
            "verifiers need no user name"
        );
        held.usernames.remove(&2);
        let without = render(Target::Presenter, Some(2), &held);
        assert_eq!(
            text(&without, USERNAME_FILE),
            None,
            "a version without a name: no file, whatever older versions carry"
        );
    }

    #[test]
    fn a_version_secret_records_its_user_name_and_reads_it_back() {
        let keys = keys();
        let l = layout(VerifierFormat::Sha256);
        let new = NewVersion {
            origin: Origin::Generated,
            requests: &Requests::default(),
            created_at: Timestamp::UNIX_EPOCH,
            username: Some("app_green"),
        };
        let s = l.version_secret(2, &keys[&2], &new);
        assert_eq!(
            s.metadata
                .annotations
                .as_ref()
                .unwrap()
                .get(USERNAME)
                .map(String::as_str),
            Some("app_green")
        );
        let (_, obs, _) = version_obs(&s).unwrap();
        assert_eq!(obs.username.as_deref(), Some("app_green"));
        let mut held = Material::default();
        held.hold(2, &obs, None);
        assert_eq!(held.usernames[&2], "app_green");
    }
}
