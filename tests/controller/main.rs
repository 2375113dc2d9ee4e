//! The controller on the in-memory API, one test binary: the zero-downtime
//! protocol scenario by scenario, resilience to crashes and API faults,
//! running the operator (readiness, metrics, leader election), and Argo CD.
//! Every scenario runs the real kube-runtime `Controller` in the shared
//! harness (keyrotor-testsupport) and checks the invariants over its history.

mod scenario;

mod argocd;
mod evidence;
mod hook_answers;
mod hook_faults;
mod hook_tls;
mod issuer_hook;
mod kstatus;
mod namespaces;
mod operations;
mod postgres_hook;
mod protocol;
mod redis_hook;
mod resilience;
mod usernames;
