//! A step a hook answered without doing it: "not yet" (HTTP 202, pending)
//! or "never" (a 4xx refusal). Neither is a failed call and neither is
//! acceptance: the step holds where it is, and the plan stops there. The
//! messages here are what the rotation's conditions and events say.

use keyrotor_consumer::hook::Step;

use super::HookRole;
use crate::api::HookRefusal;
use crate::rotation::Version;
use crate::wire::RETRY_HOOK;

/// A step a hook did not carry out and that keyrotor does not ask again for
/// a while: until `retry_after` seconds passed (pending), or until the spec
/// or `keyrotor.dev/retry-hook` changes (refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookHold {
    pub role: HookRole,
    pub step: Step,
    pub version: Version,
    pub answer: HoldKind,
    /// The hook's reason, as `clean_reason` keeps it.
    pub reason: Option<String>,
}

/// How the hook answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldKind {
    /// HTTP 202: ask again after this many seconds (1–3600).
    Pending { retry_after: u32 },
    /// A 4xx refusal, with its status.
    Refused { status: u16 },
}

impl HookHold {
    /// Whether this hold answers for the call of `step` of `version` to the
    /// `role` hook.
    pub fn names(&self, role: HookRole, step: Step, version: Version) -> bool {
        (self.role, self.step, self.version) == (role, step, version)
    }

    /// What the rotation's condition and event say, naming the hook, the
    /// step, the version, the reason and what happens next.
    pub fn message(&self, namespace: &str, rotation: &str) -> String {
        let (hook, version) = (self.role.noun(), self.version);
        let status = match self.answer {
            HoldKind::Pending { .. } => 202,
            HoldKind::Refused { status } => status,
        };
        // `(HTTP 409): why`, or `(HTTP 409, no reason given)`.
        let answered = match (&self.reason, status) {
            (Some(r), _) => format!("(HTTP {status}): {r}"),
            (None, 404 | 405) => {
                format!("(HTTP {status}, no reason given; check the url's path)")
            }
            (None, _) => format!("(HTTP {status}, no reason given)"),
        };
        match self.answer {
            HoldKind::Pending { retry_after } => format!(
                "the {hook} has not finished {} version {version} {answered}; asking again in {retry_after} s",
                gerund(self.step)
            ),
            HoldKind::Refused { .. } => format!(
                "the {hook} refused to {} version {version} {answered}; fix the cause, then change the spec or run kubectl annotate apikeyrotation {rotation} -n {namespace} {RETRY_HOOK}=<any new value> --overwrite to ask again",
                self.step.as_str()
            ),
        }
    }

    /// The status record of a refusal, for a rotation at `generation` whose
    /// `keyrotor.dev/retry-hook` annotation is `retry_token` (`None`: the
    /// hold is pending).
    pub fn record(
        &self,
        generation: Option<i64>,
        retry_token: Option<&str>,
    ) -> Option<HookRefusal> {
        let HoldKind::Refused { status } = self.answer else {
            return None;
        };
        Some(HookRefusal {
            hook: self.role.key().to_string(),
            step: self.step.as_str().to_string(),
            version: self.version,
            status,
            reason: self.reason.clone(),
            generation,
            retry_token: retry_token.map(str::to_string),
        })
    }

    /// A refusal as status recorded it (`None`: a record this version of
    /// keyrotor cannot read, which then holds nothing).
    pub fn of_record(record: &HookRefusal) -> Option<HookHold> {
        let role = HookRole::ALL.into_iter().find(|r| r.key() == record.hook)?;
        Some(HookHold {
            role,
            step: Step::from_name(&record.step)?,
            version: record.version,
            answer: HoldKind::Refused {
                status: record.status,
            },
            reason: record.reason.clone(),
        })
    }
}

fn gerund(step: Step) -> &'static str {
    match step {
        Step::Issue => "issuing",
        Step::Stage => "staging",
        Step::Retire => "retiring",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(answer: HoldKind, reason: Option<&str>) -> HookHold {
        HookHold {
            role: HookRole::Verifier,
            step: Step::Stage,
            version: 3,
            answer,
            reason: reason.map(str::to_string),
        }
    }

    #[test]
    fn a_pending_answer_says_which_step_waits_why_and_when_keyrotor_asks_again() {
        let pending = hold(HoldKind::Pending { retry_after: 30 }, Some("propagating"));
        assert_eq!(
            pending.message("shop", "cache"),
            "the verifier hook has not finished staging version 3 (HTTP 202): propagating; asking again in 30 s"
        );
        assert_eq!(pending.record(Some(1), None), None, "nothing to record");
    }

    #[test]
    fn a_refusal_says_what_was_refused_and_how_to_ask_again() {
        let refused = hold(
            HoldKind::Refused { status: 409 },
            Some("role app_b is missing"),
        );
        assert_eq!(
            refused.message("shop", "cache"),
            "the verifier hook refused to stage version 3 (HTTP 409): role app_b is missing; fix the cause, then change the spec or run kubectl annotate apikeyrotation cache -n shop keyrotor.dev/retry-hook=<any new value> --overwrite to ask again"
        );
        let lost = hold(HoldKind::Refused { status: 404 }, None).message("shop", "cache");
        assert!(
            lost.contains("(HTTP 404, no reason given; check the url's path)"),
            "{lost}"
        );
    }

    #[test]
    fn a_recorded_refusal_reads_back_as_the_same_hold_and_stands_until_the_spec_or_annotation_changes()
     {
        let refused = hold(HoldKind::Refused { status: 422 }, Some("no such user"));
        let record = refused.record(Some(4), Some("a")).unwrap();
        assert_eq!(
            (record.hook.as_str(), record.step.as_str()),
            ("verifierHook", "stage")
        );
        assert_eq!(HookHold::of_record(&record), Some(refused));
        assert!(record.in_force(Some(4), Some("a")));
        assert!(!record.in_force(Some(5), Some("a")), "the spec changed");
        assert!(!record.in_force(Some(4), Some("b")), "asked to retry");
        assert!(!record.in_force(Some(4), None), "annotation removed");
        let unknown = HookRefusal {
            step: "promote".into(),
            ..record
        };
        assert_eq!(HookHold::of_record(&unknown), None);
    }
}
