//! Garbage collection by ownerReferences, orphaning, and namespace content deletion.

use super::{ObjKey, State, meta};
use crate::resources::ResourceType;
use serde_json::Value;

impl State {
    pub(super) fn delete_namespace_contents(&mut self, ns: &str) {
        let types = self.types.clone();
        for ty in types.iter().filter(|t| t.namespaced) {
            let keys: Vec<ObjKey> = self
                .objects
                .get(&ty.store_key())
                .map(|m| m.keys().filter(|k| k.0 == ns).cloned().collect())
                .unwrap_or_default();
            for key in keys {
                if let Ok(entry) = self.entry(ty, &key) {
                    self.delete_entry(ty, key, entry);
                }
            }
        }
    }

    pub(super) fn type_for_store_key(&self, store_key: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.store_key() == store_key)
            .cloned()
    }

    /// Background garbage collection: an object whose every owner is gone is deleted
    /// (finalizers respected), repeatedly, so chains of dependents go too.
    pub(super) fn collect_garbage(&mut self) {
        loop {
            let live: std::collections::HashSet<String> = self
                .objects
                .values()
                .flat_map(|m| m.values())
                .filter_map(|e| meta(&e.obj, "uid"))
                .collect();
            let mut doomed = vec![];
            for (store_key, objs) in &self.objects {
                for (key, e) in objs {
                    let owners = e
                        .obj
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array);
                    let Some(owners) = owners.filter(|o| !o.is_empty()) else {
                        continue;
                    };
                    let all_gone = owners.iter().all(|o| {
                        o.get("uid")
                            .and_then(Value::as_str)
                            .is_none_or(|u| !live.contains(u))
                    });
                    if all_gone && e.obj.pointer("/metadata/deletionTimestamp").is_none() {
                        doomed.push((store_key.clone(), key.clone()));
                    }
                }
            }
            if doomed.is_empty() {
                return;
            }
            for (store_key, key) in doomed {
                let Some(ty) = self.type_for_store_key(&store_key) else {
                    continue;
                };
                if let Ok(entry) = self.entry(&ty, &key) {
                    self.delete_entry(&ty, key, entry);
                }
            }
        }
    }

    /// After deleting the object with `uid`: a collection, if anything ever named it as owner.
    pub(super) fn collect_garbage_after(&mut self, uid: &str) {
        if self.owners_seen.contains(uid) {
            self.collect_garbage();
        }
    }

    /// Whether the owner an ownerReference names exists (same uid) in `ns` or cluster-wide.
    fn owner_exists(&self, ns: &str, owner: &Value) -> bool {
        let field = |f: &str| owner.get(f).and_then(Value::as_str).unwrap_or("");
        let Some(ty) = self
            .types
            .iter()
            .find(|t| t.kind == field("kind") && t.api_version() == field("apiVersion"))
        else {
            return false;
        };
        let Some(objects) = self.objects.get(&ty.store_key()) else {
            return false;
        };
        [ns, ""].iter().any(|n| {
            objects
                .get(&(n.to_string(), field("name").to_string()))
                .is_some_and(|e| meta(&e.obj, "uid").as_deref() == Some(field("uid")))
        })
    }

    /// A written object whose owners are all absent (e.g. the owner was deleted just before
    /// the dependent was created) is collected, as the real collector eventually would.
    /// Its owners are looked up directly, so a write does not scan every object.
    pub(super) fn collect_garbage_if_owned(&mut self, obj: &Value) {
        let Some(owners) = obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .filter(|r| !r.is_empty())
        else {
            return;
        };
        for o in owners {
            if let Some(uid) = o.get("uid").and_then(Value::as_str) {
                self.owners_seen.insert(uid.to_string());
            }
        }
        let ns = meta(obj, "namespace").unwrap_or_default();
        if !owners.iter().any(|o| self.owner_exists(&ns, o)) {
            self.collect_garbage();
        }
    }

    /// `propagationPolicy: Orphan`: dependents lose their reference to the owner.
    pub(super) fn orphan_dependents(&mut self, owner_uid: &str) {
        let mut targets = vec![];
        for (store_key, objs) in &self.objects {
            for (key, e) in objs {
                let refs = e
                    .obj
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array);
                if refs.is_some_and(|r| {
                    r.iter()
                        .any(|o| o.get("uid").and_then(Value::as_str) == Some(owner_uid))
                }) {
                    targets.push((store_key.clone(), key.clone()));
                }
            }
        }
        for (store_key, key) in targets {
            let Some(ty) = self.type_for_store_key(&store_key) else {
                continue;
            };
            let Ok(entry) = self.entry(&ty, &key) else {
                continue;
            };
            let mut new = entry.obj.clone();
            if let Some(refs) = new
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|o| o.get("uid").and_then(Value::as_str) != Some(owner_uid));
            }
            let managers = entry.managers.clone();
            let _ = self.finish_write(&ty, key, Some(entry), new, managers);
        }
    }
}
