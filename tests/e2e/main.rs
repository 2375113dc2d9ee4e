//! End-to-end suite on a real Kubernetes control plane (tests/cluster/up:
//! etcd, kube-apiserver, controller-manager, scheduler and kwok nodes, all on
//! 127.0.0.1). The real `keyrotor` binary runs with a ServiceAccount token
//! bound to the RBAC that deploy/ ships; an observer records every Secret and
//! Pod change and checks the invariants over the whole history.
//!
//! Without `KEYROTOR_E2E_KUBECONFIG` every test returns at once, after one
//! loud notice. With it:
//!
//!     tests/cluster/up && source tests/cluster/.run/env
//!     cargo test --all-features --test e2e

// The shared helpers (keyrotor-testsupport), under the names the scenarios use.
use keyrotor_testsupport::e2e::{cluster, realnode, scenario};
use keyrotor_testsupport::{observer, volume};

mod operator;

mod alerts;
mod argocd;
mod argocd_cm;
mod cel;
mod consent;
mod crash;
mod deletion;
mod evidence;
mod flux;
mod gateway;
mod gitops;
mod helm;
mod hook;
mod ingress;
mod leader;
mod libraries;
mod messages;
mod namespaces;
mod outage;
mod postgres;
mod quiet;
mod readiness;
mod realpods;
mod report;
mod revoke;
mod rollout;
mod upgrade;
mod usernames;
