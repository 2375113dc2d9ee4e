//! The testkit's conformance suite, one test binary: each module checks the
//! in-memory API against the apiserver rules, faults or client machinery it
//! names, through a real `kube::Client`.

mod support;

mod controller;
mod faults;
mod kubectl;
mod metadata;
mod operator_writes;
mod reads;
mod rules;
mod selectors;
mod stale_halt;
