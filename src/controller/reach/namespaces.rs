//! The namespace cache: every Namespace's labels (for `namespaceSelector`)
//! and its consent annotation (`keyrotor.dev/accept-from`), from one
//! cluster-wide metadata watch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;

use crate::api::LabelSelector;
use crate::controller::objects::pods::selector_matches_with;
use crate::controller::objects::targets::NamespaceInfo;
use crate::wire::ACCEPT_FROM;

fn info(ns: &PartialObjectMeta<Namespace>) -> NamespaceInfo {
    NamespaceInfo {
        labels: ns.labels().clone(),
        accept_from: ns.annotations().get(ACCEPT_FROM).cloned(),
    }
}

type Map = HashMap<String, Arc<NamespaceInfo>>;

#[derive(Default)]
struct State {
    namespaces: Map,
    relist: Option<Map>,
}

/// Namespaces by name.
#[derive(Default)]
pub struct Namespaces {
    state: RwLock<State>,
    ready: AtomicBool,
}

impl Namespaces {
    /// Applies one watch event, in order.
    pub fn apply(&self, event: &Event<PartialObjectMeta<Namespace>>) {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Apply(ns) => {
                st.namespaces.insert(ns.name_any(), Arc::new(info(ns)));
            }
            Event::Delete(ns) => {
                st.namespaces.remove(&ns.name_any());
            }
            Event::Init => st.relist = Some(Map::new()),
            Event::InitApply(ns) => {
                let info = Arc::new(info(ns));
                match st.relist.as_mut() {
                    Some(relist) => relist.insert(ns.name_any(), info),
                    None => st.namespaces.insert(ns.name_any(), info),
                };
            }
            Event::InitDone => {
                if let Some(relist) = st.relist.take() {
                    st.namespaces = relist;
                }
                self.ready.store(true, Ordering::Release);
            }
        }
    }

    /// Whether the first full list has been applied.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn get(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.namespaces.get(name).cloned()
    }

    /// The namespaces whose labels `selector` matches, sorted.
    pub fn matching(&self, selector: &LabelSelector) -> Vec<String> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<String> = st
            .namespaces
            .iter()
            .filter(|(_, info)| {
                selector_matches_with(selector, |k| info.labels.get(k).map(String::as_str))
            })
            .map(|(name, _)| name.clone())
            .collect();
        out.sort();
        out
    }

    /// Namespaces held (for tests and the cost figures).
    pub fn len(&self) -> usize {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.namespaces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(
        name: &str,
        labels: &[(&str, &str)],
        accept: Option<&str>,
    ) -> PartialObjectMeta<Namespace> {
        let mut meta = PartialObjectMeta::<Namespace>::default();
        meta.metadata.name = Some(name.into());
        meta.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        if let Some(a) = accept {
            meta.metadata.annotations = Some([(ACCEPT_FROM.to_string(), a.to_string())].into());
        }
        meta
    }

    #[test]
    fn a_selector_finds_namespaces_by_label_and_a_relist_replaces_them_whole() {
        let cache = Namespaces::default();
        cache.apply(&Event::Apply(ns(
            "checkout",
            &[("team", "pay")],
            Some("orders"),
        )));
        cache.apply(&Event::Apply(ns("billing", &[("team", "pay")], None)));
        cache.apply(&Event::Apply(ns("web", &[("team", "web")], None)));
        let sel: LabelSelector =
            serde_json::from_value(serde_json::json!({"matchLabels": {"team": "pay"}})).unwrap();
        assert_eq!(cache.matching(&sel), ["billing", "checkout"]);
        assert_eq!(
            cache.get("checkout").unwrap().accept_from.as_deref(),
            Some("orders")
        );
        assert!(!cache.is_ready());
        cache.apply(&Event::Init);
        cache.apply(&Event::InitApply(ns("web", &[("team", "web")], None)));
        assert_eq!(
            cache.len(),
            3,
            "the old view holds until the list completes"
        );
        cache.apply(&Event::InitDone);
        assert!(cache.is_ready());
        assert!(cache.matching(&sel).is_empty());
        assert!(cache.get("checkout").is_none());
    }
}
