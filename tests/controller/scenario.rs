//! What the controller scenarios share: rotation `api` over the verifier
//! Secret [`V`] and the presenter Secret [`P`], its spec, the cluster started
//! with it, a rotation request, and the invariant check over the history.

use keyrotor_testsupport::harness::Harness;

pub const V: &str = "api-verifier";
pub const P: &str = "api-key";

/// A family of scenarios on rotation `api`; they differ in the minimum grace.
pub struct Scenario {
    pub min_grace: &'static str,
}

impl Scenario {
    /// The rotation's spec, with `extra` YAML appended. `PLAIN` in `extra`
    /// asks for plain keys on the verifier side.
    pub fn spec(&self, extra: &str) -> String {
        let format = if extra.contains("PLAIN") {
            ", verifierFormat: Plain"
        } else {
            ""
        };
        let extra = extra.replace("PLAIN", "");
        let grace = self.min_grace;
        format!(
            "secrets: {{verifier: {V}, presenter: {P}{format}}}\ngracePeriod: {{minimum: {grace}, maximum: 60s}}\n{extra}"
        )
    }

    /// Two verifiers and two presenters, and the rotation published at version 1.
    pub async fn started(&self, extra: &str) -> Harness {
        Harness::with_rotation(V, P, &self.spec(extra)).await
    }

    pub async fn request_rotation(&self, h: &Harness, extra: &str, token: &str) {
        h.apply(
            "api",
            &format!("{}\nrotationRequest: {token}", self.spec(extra)),
        )
        .await;
    }
}

/// Checks the invariants over the whole recorded history of `api` (versions
/// in `excused` may be rejected); the number of changes recorded.
pub fn check_invariants(h: &Harness, excused: &[u64]) -> usize {
    h.observer
        .check("api", V, P, excused)
        .unwrap_or_else(|e| panic!("{e}"))
}
