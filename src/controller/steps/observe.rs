//! Observe: read everything one rotation's plan depends on — its version and
//! projected Secrets (from the API server's watch cache when it shows every
//! write keyrotor made, else consistently: `memory::KnownSecrets`), its
//! consumer pods from the slim cache and its workloads (`consumers`) — into
//! a [`Snapshot`]: the planner's `Observed`, plus the key material the writes
//! will need.

use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::consumers;
use super::copies::{self, Reached};
use crate::api::{ApiKeyRotation, validate::Validated};
use crate::controller::context::Context;
use crate::controller::error::Result;
use crate::controller::memory::Read;
use crate::controller::objects::material::Material;
use crate::controller::objects::{render, repair};
use crate::keys::SecretKey;
use crate::rotation::{AdoptionObs, Observed, Requests};
use crate::wire::{self as k, KEY};

/// What one reconcile read from the cluster.
pub struct Snapshot {
    pub observed: Observed,
    pub material: Material,
    /// Projected Secrets (or copies, `<namespace>/<name>`) that exist but
    /// belong to someone else.
    pub conflicts: Vec<String>,
    /// How the rotation's Secrets were read.
    pub secrets_read: Read,
    /// Where its Secrets go beyond its namespace.
    pub reached: Reached,
    /// Its consumer pods, by namespace.
    pub places: Vec<consumers::Found>,
}

pub async fn observe(
    rot: &ApiKeyRotation,
    v: &Validated,
    ctx: &Context,
    mut reached: Reached,
) -> Result<Snapshot> {
    let secrets = Secrets::of(rot, ctx);
    let (listed, secrets_read) = secrets.list().await?;
    let (mut observed, mut material) = sort(listed, v, &secrets.uid);
    let mut conflicts = copies::conflicts(&ctx.client, &ctx.reach.copies, &mut reached).await?;
    let verifier = secrets
        .by_name(
            &v.verifier_secret,
            material.verifier_secret.take(),
            &mut conflicts,
        )
        .await?;
    material.presenter_secret = if v.policy.combined {
        verifier.clone()
    } else {
        let listed = material.presenter_secret.take();
        secrets
            .by_name(&v.presenter_secret, listed, &mut conflicts)
            .await?
    };
    material.verifier_secret = verifier;
    observed.verifier = material
        .verifier_secret
        .as_ref()
        .and_then(render::published);
    observed.presenter = material
        .presenter_secret
        .as_ref()
        .and_then(render::published);

    let pods = consumers::pods(rot, ctx, consumers::places(rot, v, &reached));
    let found = consumers::observe(rot, v, ctx, &pods, &reached).await?;
    (observed.verifiers, observed.presenters, observed.traffic) =
        (found.verifiers, found.presenters, found.traffic);
    observed.refusals = consumers::refusals(rot, v, &pods);
    (observed.rotate, observed.rollback) = requests(rot);
    observed.record = rot.status.clone().unwrap_or_default().record();

    if let Some(key) = secrets.adopt(rot, &observed).await? {
        observed.adoption = Some(AdoptionObs {
            fingerprint: key.fingerprint(),
        });
        material.adopted_key = Some(key);
    }
    // The list may predate a version Secret a projection publishes: look
    // again by name before calling it lost.
    for version in repair::missing_versions(&observed, &material.keys) {
        let name = k::version_secret_name(&rot.name_any(), version);
        let secret = secrets.api.get_opt(&name).await?;
        if let Some((n, vo, key)) = secret.as_ref().and_then(render::version_obs) {
            material.hold(n, &vo, key);
            observed.versions.insert(n, vo);
        }
    }
    for (version, key) in repair::recoverable(&observed, &material, v.verifier_format) {
        observed.recoverable.insert(version, key.fingerprint());
        material.keys.insert(version, key);
    }
    Ok(Snapshot {
        observed,
        material,
        conflicts,
        secrets_read,
        reached,
        places: pods,
    })
}

/// The rotation's Secrets, as the API and keyrotor's memory of them know them.
struct Secrets<'a> {
    api: Api<Secret>,
    obj: ObjectRef<ApiKeyRotation>,
    uid: String,
    ctx: &'a Context,
}

impl Secrets<'_> {
    fn of<'a>(rot: &ApiKeyRotation, ctx: &'a Context) -> Secrets<'a> {
        Secrets {
            api: Api::namespaced(ctx.client.clone(), &rot.namespace().unwrap_or_default()),
            obj: ObjectRef::from_obj(rot),
            uid: rot.uid().unwrap_or_default(),
            ctx,
        }
    }

    fn owned(&self, s: &Secret) -> bool {
        owned_by(s, &self.uid)
    }

    /// One LIST by the rotation label returns the version Secrets and, as
    /// they carry the label too, both projected Secrets. Served from the
    /// API server's watch cache as it stands when it shows every write
    /// keyrotor made, else consistent.
    async fn list(&self) -> Result<(Vec<Secret>, Read)> {
        let memory = &self.ctx.memory;
        let selector = format!("{}={}", k::ROTATION_LABEL, self.obj.name);
        if memory.knows_secrets(&self.obj) {
            let params = ListParams::default().labels(&selector).match_any();
            let list = self.api.list(&params).await?.items;
            if memory.secrets_current(&self.obj, &list) {
                return Ok((list, Read::Cached));
            }
        }
        let list = self
            .api
            .list(&ListParams::default().labels(&selector))
            .await?
            .items;
        memory.secrets_listed(&self.obj, &list);
        Ok((list, Read::Consistent))
    }

    /// A projected Secret the list lacks, read by name: tells "absent" from
    /// "someone else's Secret of that name" (a conflict).
    async fn by_name(
        &self,
        name: &str,
        listed: Option<Secret>,
        conflicts: &mut Vec<String>,
    ) -> Result<Option<Secret>> {
        if listed.is_some() {
            return Ok(listed);
        }
        Ok(match self.api.get_opt(name).await? {
            Some(s) if !self.owned(&s) => {
                conflicts.push(name.to_string());
                None
            }
            other => other,
        })
    }

    /// The adoption source's key, read only before the first version exists.
    async fn adopt(&self, rot: &ApiKeyRotation, observed: &Observed) -> Result<Option<SecretKey>> {
        let uninitialized = observed.versions.is_empty()
            && observed.presenter.is_none()
            && observed.record.current.is_none();
        let Some(adopt) = rot.spec.adopt.as_ref().filter(|_| uninitialized) else {
            return Ok(None);
        };
        let source = self.api.get_opt(&adopt.secret_name).await?;
        Ok(source
            .and_then(|s| s.data)
            .and_then(|d| d.get(&adopt.key).cloned())
            .and_then(|b| SecretKey::adopt(b.0).ok()))
    }
}

fn owned_by(s: &Secret, uid: &str) -> bool {
    s.owner_references().iter().any(|o| o.uid == uid)
}

/// The listed Secrets keyrotor owns, sorted: version Secrets into versions
/// and keys, the projected ones into `material` (read back later).
fn sort(listed: Vec<Secret>, v: &Validated, uid: &str) -> (Observed, Material) {
    let mut observed = Observed::default();
    let mut material = Material::default();
    for s in listed.into_iter().filter(|s| owned_by(s, uid)) {
        let secret_name = s.name_any();
        if secret_name == v.verifier_secret {
            material.verifier_secret = Some(s);
        } else if !v.policy.combined && secret_name == v.presenter_secret {
            material.presenter_secret = Some(s);
        } else if s.labels().get(k::ROLE_LABEL).map(String::as_str) == Some(k::ROLE_VERSION)
            && let Some((version, obs, key)) = render::version_obs(&s)
        {
            material.hold(version, &obs, key);
            if let Some(id) = s.annotations().get(k::HOOK_KEY_ID) {
                material.key_ids.insert(version, id.clone());
            }
            observed.versions.insert(version, obs);
        }
    }
    (observed, material)
}

/// The rotate and rollback requests: the spec's tokens and the annotations'.
fn requests(rot: &ApiKeyRotation) -> (Requests, Requests) {
    let annotation = |key: &str| rot.annotations().get(key).cloned();
    (
        Requests {
            spec: rot.spec.rotation_request.clone(),
            annotation: annotation(k::ROTATE_REQUEST),
        },
        Requests {
            spec: rot.spec.rollback_request.clone(),
            annotation: annotation(k::ROLLBACK_REQUEST),
        },
    )
}

/// The key a version Secret or an adoption source holds.
pub fn key_of(secret: &Secret) -> Option<SecretKey> {
    secret
        .data
        .as_ref()?
        .get(KEY)
        .and_then(|b| SecretKey::adopt(b.0.clone()).ok())
}
