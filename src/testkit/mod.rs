//! An in-memory Kubernetes API for controller tests, fault injection and the demo.
