//! Hand edits, undone: version Secrets deleted while their key still sits in a
//! projection are re-created from it (same key, same fingerprint), and
//! projected Secrets whose content no longer matches what they publish are
//! flagged so the planner rewrites them. A key that is truly gone is left to
//! the planner, which reports it and rotates it out (never silently).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;

use super::error::Result;
use super::observe::{Observation, key_of};
use super::render::{KEY, Layout, version_secret_name};
use crate::api::{FIELD_MANAGER, VerifierFormat};
use crate::keys::SecretKey;
use crate::rotation::{Origin, Published, Requests, Target, Version, VersionObs};

/// Re-creates the version Secrets of published versions whose Secret is gone
/// but whose key a projection still holds. Returns the recovered versions.
pub async fn recover_versions(
    secrets: &Api<Secret>,
    layout: &Layout<'_>,
    obs: &mut Observation,
    now: Timestamp,
) -> Result<Vec<Version>> {
    let mut wanted: BTreeSet<Version> = BTreeSet::new();
    if let Some(v) = &obs.observed.verifier {
        wanted.extend(v.accepted.iter().copied());
    }
    if let Some(c) = obs.observed.presenter.as_ref().and_then(|p| p.current) {
        wanted.insert(c);
    }
    let mut recovered = Vec::new();
    for v in wanted {
        if obs.keys.contains_key(&v) || obs.observed.versions.contains_key(&v) {
            continue; // present (an emptied immutable Secret cannot be refilled: lost)
        }
        let name = version_secret_name(layout.rotation, v);
        // Listed a moment ago, but that list may predate the Secret: look again
        // before calling anything lost.
        if let Some(s) = secrets.get_opt(&name).await?
            && let Some((n, vo, key)) = super::render::version_obs(&s)
        {
            if let Some(key) = key {
                obs.keys.insert(n, key);
            }
            obs.observed.versions.insert(n, vo);
            continue;
        }
        let Some(key) = key_in_projections(v, obs, layout.format) else {
            continue;
        };
        let record = obs
            .observed
            .record
            .history
            .iter()
            .find(|r| r.version == v)
            .cloned();
        // A projection edited by hand must not smuggle a different key in.
        if record
            .as_ref()
            .is_some_and(|r| !r.fingerprint.is_empty() && r.fingerprint != key.fingerprint())
        {
            continue;
        }
        let origin = record.as_ref().map_or(Origin::Generated, |r| r.origin);
        let created_at = record.as_ref().map_or(now, |r| r.created_at);
        let secret = layout.version_secret(v, &key, origin, &Requests::default(), created_at);
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let key = match secrets.create(&params, &secret).await {
            Ok(_) => key,
            // Re-created meanwhile (a lost answer): that Secret's key wins.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                match secrets.get_opt(&name).await?.as_ref().and_then(key_of) {
                    Some(k) => k,
                    None => continue,
                }
            }
            Err(e) => return Err(e.into()),
        };
        obs.observed.versions.insert(
            v,
            VersionObs {
                fingerprint: key.fingerprint(),
                has_key: true,
                created_at,
                origin,
                requests: Requests::default(),
                abandoned: None,
            },
        );
        obs.keys.insert(v, key);
        recovered.push(v);
    }
    Ok(recovered)
}

/// Version `v`'s key as a projection holds it: the presenter's `key` file
/// when `v` is current, or a plain verifier's `v<N>.key`.
fn key_in_projections(v: Version, obs: &Observation, format: VerifierFormat) -> Option<SecretKey> {
    let file = |s: &Option<Secret>, name: &str| -> Option<SecretKey> {
        let b = s.as_ref()?.data.as_ref()?.get(name)?;
        SecretKey::adopt(b.0.clone()).ok()
    };
    let text = |s: &Option<Secret>, name: &str| -> Option<String> {
        let b = s.as_ref()?.data.as_ref()?.get(name)?;
        String::from_utf8(b.0.clone()).ok()
    };
    let presenter_has_it = text(&obs.presenter_secret, "version").and_then(|t| t.parse().ok())
        == Some(v)
        && obs.observed.presenter.as_ref().and_then(|p| p.current) == Some(v);
    let from_presenter = presenter_has_it
        .then(|| file(&obs.presenter_secret, KEY))
        .flatten();
    let from_verifier = (format == VerifierFormat::Plain)
        .then(|| file(&obs.verifier_secret, &format!("v{v}.key")))
        .flatten();
    let key = from_presenter.or(from_verifier)?;
    // A verifier digest, when there is one, must agree.
    let digest = text(&obs.verifier_secret, &format!("v{v}.sha256"));
    if digest.is_some_and(|d| d != key.digest()) {
        return None;
    }
    Some(key)
}

/// Flags projected Secrets whose keyrotor-written files differ from what
/// their published state renders to (an edit by hand) and, for those, takes
/// the published state from what consumers were actually given, so the
/// rewrite never moves them to a version the protocol has not reached.
pub fn detect_tampering(
    layout: &Layout<'_>,
    obs: &mut Observation,
    combined: bool,
    now: Timestamp,
) {
    let verifier_target = if combined {
        Target::Combined
    } else {
        Target::Verifier
    };
    if let Some(fixed) = check(layout, verifier_target, obs, now) {
        obs.observed.verifier = Some(fixed.clone());
        obs.observed.verifier_tampered = true;
        if combined {
            obs.observed.presenter = Some(fixed);
        }
    }
    if !combined && let Some(fixed) = check(layout, Target::Presenter, obs, now) {
        obs.observed.presenter = Some(fixed);
        obs.observed.presenter_tampered = true;
    }
}

/// `Some(what consumers were given)` when the Secret of `target` was edited.
fn check(
    layout: &Layout<'_>,
    target: Target,
    obs: &Observation,
    now: Timestamp,
) -> Option<Published> {
    let (secret, published) = match target {
        Target::Presenter => (
            obs.presenter_secret.as_ref()?,
            obs.observed.presenter.as_ref()?,
        ),
        _ => (
            obs.verifier_secret.as_ref()?,
            obs.observed.verifier.as_ref()?,
        ),
    };
    let actual = secret.data.clone().unwrap_or_default();
    let file = |k: &str| {
        actual
            .get(k)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    // Annotations that claim other than the files say (e.g. another current
    // version) are an edit even when the claimed key cannot be rendered.
    let files_agree = match target {
        Target::Presenter => {
            file("version").and_then(|v| v.trim().parse().ok()) == published.current
        }
        _ => {
            let accepted: BTreeSet<Version> = file("accepted")
                .map(|a| a.split(',').filter_map(|v| v.trim().parse().ok()).collect())
                .unwrap_or_default();
            accepted == published.accepted
        }
    };
    if !files_agree {
        return Some(given(published, &actual, obs, target));
    }
    let expected = layout
        .projected_secret(
            target,
            &published.accepted,
            published.current,
            published.revision,
            published.highest,
            &obs.keys,
            Some(secret),
            now,
        )
        .ok()?; // a key is missing: the planner deals with lost keys
    // Only keyrotor's own files count: fields someone else added are theirs.
    let intact = expected
        .data
        .as_ref()?
        .iter()
        .all(|(k, v)| actual.get(k) == Some(v));
    if intact {
        return None;
    }
    Some(given(published, &actual, obs, target))
}

/// The published state as consumers see it in the files, made safe: the
/// accepted set only grows (union with the annotations and status), and the
/// current version is the one status remembers when the two disagree.
fn given(
    published: &Published,
    data: &BTreeMap<String, ByteString>,
    obs: &Observation,
    target: Target,
) -> Published {
    let text = |k: &str| {
        data.get(k)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    let rec = &obs.observed.record;
    let mut fixed = published.clone();
    if let Some(r) = text("revision").and_then(|r| r.trim().parse().ok()) {
        fixed.revision = fixed.revision.max(r);
    }
    if target != Target::Presenter {
        let from_files: BTreeSet<Version> = text("accepted")
            .map(|a| a.split(',').filter_map(|v| v.trim().parse().ok()).collect())
            .unwrap_or_default();
        fixed.accepted = published
            .accepted
            .iter()
            .chain(&from_files)
            .chain(&rec.accepted)
            .copied()
            // Only versions whose key or digest keyrotor can still write.
            .filter(|v| obs.keys.contains_key(v) || data.contains_key(&format!("v{v}.sha256")))
            .collect();
    }
    if target != Target::Verifier {
        let in_files: Option<Version> = text("version").and_then(|v| v.trim().parse().ok());
        let candidates = [published.current, in_files];
        fixed.current = match rec.current {
            Some(c) if candidates.contains(&Some(c)) => Some(c),
            _ => in_files
                .filter(|v| obs.keys.contains_key(v))
                .or(published.current),
        };
    }
    fixed
}
