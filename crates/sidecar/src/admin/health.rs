//! Readiness, as `/readyz` reports it: not ready while the process waits
//! for something (the operator: the CRD, the lease, synced caches; the
//! verifier: its mounted Secret). The reason is a sentence, so a person
//! reading `/readyz` knows what it waits for.

use std::sync::Mutex;

#[derive(Debug)]
pub struct Health {
    waiting_for: Mutex<Option<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            waiting_for: Mutex::new(Some("starting".into())),
        }
    }
}

impl Health {
    /// Not ready, because of `reason`.
    pub fn waiting(&self, reason: impl Into<String>) {
        *self.waiting_for.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.into());
    }

    pub fn ready(&self) {
        *self.waiting_for.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// `None` when ready, else what it waits for.
    pub fn waiting_for(&self) -> Option<String> {
        self.waiting_for
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
