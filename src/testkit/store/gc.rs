//! Garbage collection by ownerReferences, orphaning, and namespace content deletion.

use super::{ObjKey, State, meta};
use crate::testkit::resources::ResourceType;
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

    /// A written object whose owners are all absent (e.g. the owner was deleted just before
    /// the dependent was created) is collected, as the real collector eventually would.
    pub(super) fn collect_garbage_if_owned(&mut self, obj: &Value) {
        if obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty())
        {
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
