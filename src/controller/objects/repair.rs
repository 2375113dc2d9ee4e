//! Hand edits, found (pure): version Secrets deleted while their key still
//! sits in a projection are offered to the planner to re-create from it
//! (same key, same fingerprint; `rotation::restore`), and projected Secrets
//! whose content no longer matches what they publish are flagged so the
//! planner rewrites them. A key that is truly gone is left to the planner,
//! which reports it and rotates it out (never silently).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::material::Material;
use super::render::Layout;
use crate::api::VerifierFormat;
use crate::keys::SecretKey;
use crate::rotation::{Observed, Published, Target, Version};
use crate::wire::{self as w, KEY};

/// Versions a projection publishes whose version Secret is missing.
pub fn missing_versions(
    observed: &Observed,
    keys: &BTreeMap<Version, SecretKey>,
) -> BTreeSet<Version> {
    let mut wanted: BTreeSet<Version> = BTreeSet::new();
    if let Some(v) = &observed.verifier {
        wanted.extend(v.accepted.iter().copied());
    }
    if let Some(c) = observed.presenter.as_ref().and_then(|p| p.current) {
        wanted.insert(c);
    }
    // Present, or emptied (an immutable Secret cannot be refilled: lost).
    wanted.retain(|v| !keys.contains_key(v) && !observed.versions.contains_key(v));
    wanted
}

/// The keys of missing version Secrets that a projection still holds: the
/// planner restores those Secrets (`Action::RestoreVersion`, same key, same
/// fingerprint) once they join the keys and `observed.recoverable`.
pub fn recoverable(
    observed: &Observed,
    material: &Material,
    format: VerifierFormat,
) -> BTreeMap<Version, SecretKey> {
    missing_versions(observed, &material.keys)
        .into_iter()
        .filter_map(|v| Some((v, key_in_projections(v, observed, material, format)?)))
        .collect()
}

/// Version `v`'s key as a projection holds it: the presenter's `key` file
/// when `v` is current, or a plain verifier's `v<N>.key`.
fn key_in_projections(
    v: Version,
    observed: &Observed,
    obs: &Material,
    format: VerifierFormat,
) -> Option<SecretKey> {
    let file = |s: &Option<Secret>, name: &str| -> Option<SecretKey> {
        let b = s.as_ref()?.data.as_ref()?.get(name)?;
        SecretKey::adopt(b.0.clone()).ok()
    };
    let text = |s: &Option<Secret>, name: &str| -> Option<String> {
        let b = s.as_ref()?.data.as_ref()?.get(name)?;
        String::from_utf8(b.0.clone()).ok()
    };
    let presenter_has_it = text(&obs.presenter_secret, w::VERSION).and_then(|t| t.parse().ok())
        == Some(v)
        && observed.presenter.as_ref().and_then(|p| p.current) == Some(v);
    let from_presenter = presenter_has_it
        .then(|| file(&obs.presenter_secret, KEY))
        .flatten();
    let from_verifier = (format == VerifierFormat::Plain)
        .then(|| file(&obs.verifier_secret, &w::plain_file(v)))
        .flatten();
    let key = from_presenter.or(from_verifier)?;
    // A verifier digest, when there is one, must agree.
    let digest = text(&obs.verifier_secret, &w::digest_file(v));
    if digest.is_some_and(|d| d != key.digest()) {
        return None;
    }
    Some(key)
}

/// `observed` with projected Secrets whose keyrotor-written files differ
/// from what their published state renders to (an edit by hand) flagged and,
/// for those, the published state taken from what consumers were actually
/// given, so the rewrite never moves them to a version the protocol has not
/// reached.
pub fn detect_tampering(
    layout: &Layout<'_>,
    mut observed: Observed,
    material: &Material,
    combined: bool,
    now: Timestamp,
) -> Observed {
    let verifier_target = if combined {
        Target::Combined
    } else {
        Target::Verifier
    };
    if let Some(fixed) = check(layout, verifier_target, &observed, material, now) {
        observed.verifier = Some(fixed.clone());
        observed.verifier_tampered = true;
        if combined {
            observed.presenter = Some(fixed);
        }
    }
    if !combined && let Some(fixed) = check(layout, Target::Presenter, &observed, material, now) {
        observed.presenter = Some(fixed);
        observed.presenter_tampered = true;
    }
    observed
}

/// `Some(what consumers were given)` when the Secret of `target` was edited.
fn check(
    layout: &Layout<'_>,
    target: Target,
    observed: &Observed,
    obs: &Material,
    now: Timestamp,
) -> Option<Published> {
    let (secret, published) = match target {
        Target::Presenter => (obs.presenter_secret.as_ref()?, observed.presenter.as_ref()?),
        _ => (obs.verifier_secret.as_ref()?, observed.verifier.as_ref()?),
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
            file(w::VERSION).and_then(|v| v.trim().parse().ok()) == published.current
        }
        _ => {
            let accepted: BTreeSet<Version> = file(w::ACCEPTED_FILE)
                .map(|a| a.split(',').filter_map(|v| v.trim().parse().ok()).collect())
                .unwrap_or_default();
            accepted == published.accepted
        }
    };
    if !files_agree {
        return Some(given(published, &actual, observed, obs, target));
    }
    let expected = layout
        .projected_secret(
            target,
            &published.accepted,
            published.current,
            published.revision,
            published.highest,
            obs,
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
    Some(given(published, &actual, observed, obs, target))
}

/// The published state as consumers see it in the files, made safe: the
/// accepted set only grows (union with the annotations and status), and the
/// current version is the one status remembers when the two disagree.
fn given(
    published: &Published,
    data: &BTreeMap<String, ByteString>,
    observed: &Observed,
    obs: &Material,
    target: Target,
) -> Published {
    let text = |k: &str| {
        data.get(k)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    let rec = &observed.record;
    let mut fixed = published.clone();
    if let Some(r) = text(w::REVISION_FILE).and_then(|r| r.trim().parse().ok()) {
        fixed.revision = fixed.revision.max(r);
    }
    if target != Target::Presenter {
        let from_files: BTreeSet<Version> = text(w::ACCEPTED_FILE)
            .map(|a| a.split(',').filter_map(|v| v.trim().parse().ok()).collect())
            .unwrap_or_default();
        fixed.accepted = published
            .accepted
            .iter()
            .chain(&from_files)
            .chain(&rec.accepted)
            .copied()
            // Only versions whose key or digest keyrotor can still write.
            .filter(|v| obs.keys.contains_key(v) || data.contains_key(&w::digest_file(*v)))
            .collect();
    }
    if target != Target::Verifier {
        let in_files: Option<Version> = text(w::VERSION).and_then(|v| v.trim().parse().ok());
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
