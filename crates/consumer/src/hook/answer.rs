//! What a hook answers: an HTTP status and one [`HookAnswer`], read the way
//! keyrotor reads them into an [`Outcome`] (done, pending, refused, failed),
//! and an issuer's key checked before keyrotor stores it ([`Issued`]).

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::keys::{KeyError, SecretKey};

/// Largest answer keyrotor reads; a longer one is a failed call.
pub const MAX_ANSWER: usize = 64 * 1024;
/// Longest `keyId` an issuer may return (it is stored as an annotation).
pub const MAX_KEY_ID: usize = 253;
/// Longest `reason` keyrotor keeps (it goes into a condition); longer ones
/// are cut at a character boundary.
pub const MAX_REASON: usize = 256;
/// `retryAfterSeconds` of a pending answer without one.
pub const DEFAULT_RETRY_AFTER: u32 = 30;
/// Bounds of `retryAfterSeconds`; a value outside is clamped.
pub const RETRY_AFTER_RANGE: std::ops::RangeInclusive<u32> = 1..=3600;

/// How a hook answered one step.
#[derive(Debug)]
pub enum Outcome {
    /// 204, or another 2xx (not 202) with `{"done": true}`: the system
    /// behind the hook holds the step's result. A 204 has no body, so no
    /// issued key: it is done only for `stage` and `retire`.
    Done(HookAnswer),
    /// 202: not yet (a system that needs time to propagate). keyrotor holds
    /// the step without counting a failure and asks again after
    /// `retry_after` seconds (`retryAfterSeconds`, default 30, 1–3600).
    Pending {
        retry_after: u32,
        reason: Option<String>,
    },
    /// 400, 404, 405, 409, 410, 422 or another 4xx but 401, 403, 408, 429:
    /// refused for good. keyrotor stops asking until the rotation's spec
    /// changes or it is told to retry, and shows `reason`.
    Refused { status: u16, reason: Option<String> },
    /// Any other status (401/403: the token; 408/429/5xx: try again; 1xx,
    /// 3xx): a failed call, retried with backoff.
    Failed(u16),
}

/// What a hook answers with HTTP 200: `done: true` once the external system
/// holds the result of the step (also when it already did: idempotency).
/// An issuer's answer to `issue` carries the new `key` (the same one for a
/// repeated idempotency key) and optionally its `keyId`. `message` is for
/// people; keyrotor never copies it into status or logs.
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct HookAnswer {
    pub done: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Pending (202) and refused (4xx) answers: why, for the rotation's
    /// condition. Short, for people, and never a secret: keyrotor shows it
    /// (cut to [`MAX_REASON`], without control characters) unless it
    /// contains the step's key or digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Pending (202) answers: when to ask again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// An issuer's answer, checked: a key keyrotor can store and hand out, and
/// the id to send back with `retire`.
#[derive(Debug)]
pub struct Issued {
    pub key: SecretKey,
    pub key_id: Option<String>,
}

/// Why an answer is a failed call. Display says what was wrong with it,
/// never what it held (an answer may carry a key, or echo one).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("the hook's answer was longer than {MAX_ANSWER} bytes")]
    TooLarge,
    #[error("the hook's answer was not {{\"done\": true}} JSON ({0})")]
    Malformed(&'static str),
    #[error("the issuer's answer has no key")]
    NoKey,
    #[error("the issuer's key is {0}; a key must be printable ASCII without spaces, 16–1024 bytes")]
    BadKey(&'static str),
    #[error("the issuer's keyId is not printable ASCII without spaces of at most 253 bytes")]
    BadKeyId,
}

/// Whether an issuer's `keyId` can be stored and sent back: printable ASCII
/// without spaces, at most [`MAX_KEY_ID`] bytes.
pub fn key_id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_KEY_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

/// `reason` as keyrotor keeps it: control characters dropped, at most
/// [`MAX_REASON`] bytes, `None` when nothing is left or when it contains any
/// of `secrets` (the step's key and digest: a hook that echoes them must
/// not put them into a condition).
pub fn clean_reason(reason: Option<&str>, secrets: &[&str]) -> Option<String> {
    let reason = reason?;
    if secrets.iter().any(|s| !s.is_empty() && reason.contains(s)) {
        return None;
    }
    let mut kept = String::new();
    for c in reason.chars().filter(|c| !c.is_control()) {
        if kept.len() + c.len_utf8() > MAX_REASON {
            break;
        }
        kept.push(c);
    }
    let kept = kept.trim();
    (!kept.is_empty()).then(|| kept.to_string())
}

impl Outcome {
    /// Reads an answer the way keyrotor does: the status decides, and the
    /// body (at most [`MAX_ANSWER`] bytes; the caller wipes it) must be
    /// `{"done": true}` JSON for a done 2xx other than 204. A pending or
    /// refused body that is not JSON only loses its reason.
    pub fn read(status: u16, body: &[u8]) -> Result<Outcome, AnswerError> {
        if body.len() > MAX_ANSWER {
            return Err(AnswerError::TooLarge);
        }
        let loose = || serde_json::from_slice::<HookAnswer>(body).ok();
        Ok(match status {
            204 => Outcome::Done(HookAnswer::done(None)),
            202 => {
                let answer = loose();
                let after = answer.as_ref().and_then(|a| a.retry_after_seconds);
                Outcome::Pending {
                    retry_after: after.map_or(DEFAULT_RETRY_AFTER, |s| {
                        s.clamp(*RETRY_AFTER_RANGE.start(), *RETRY_AFTER_RANGE.end())
                    }),
                    reason: answer.and_then(|mut a| a.reason.take()),
                }
            }
            200..=299 => Outcome::Done(HookAnswer::parse(body)?),
            401 | 403 | 408 | 429 => Outcome::Failed(status),
            400..=499 => Outcome::Refused {
                status,
                reason: loose().and_then(|mut a| a.reason.take()),
            },
            _ => Outcome::Failed(status),
        })
    }
}

impl HookAnswer {
    /// `{"done": true}` with an optional message: a hook's answer to a done
    /// step that issues nothing.
    pub fn done(message: Option<String>) -> HookAnswer {
        HookAnswer {
            done: true,
            message,
            reason: None,
            retry_after_seconds: None,
            key: None,
            key_id: None,
        }
    }

    /// Reads the body of an HTTP 200 answer the way keyrotor does: at most
    /// [`MAX_ANSWER`] bytes (checked before anything is parsed) of JSON of
    /// this shape, saying `done: true`. The caller wipes `body`.
    pub fn parse(body: &[u8]) -> Result<HookAnswer, AnswerError> {
        if body.len() > MAX_ANSWER {
            return Err(AnswerError::TooLarge);
        }
        let answer: HookAnswer = serde_json::from_slice(body)
            .map_err(|_| AnswerError::Malformed("not JSON of that shape"))?;
        if !answer.done {
            return Err(AnswerError::Malformed("done is false"));
        }
        Ok(answer)
    }

    /// An issuer's answer to `issue`, checked: it has a key, the key is
    /// printable ASCII without spaces of 16–1024 bytes (what
    /// [`SecretKey::adopt`] takes), and a `keyId`, if any, passes
    /// [`key_id_ok`].
    pub fn into_issued(mut self) -> Result<Issued, AnswerError> {
        let key = self.key.take().ok_or(AnswerError::NoKey)?;
        let key = SecretKey::adopt(key.into_bytes()).map_err(|e| match e {
            KeyError::Adopted(why) => AnswerError::BadKey(why),
            KeyError::Random(_) => AnswerError::BadKey("unusable"),
        })?;
        let key_id = self.key_id.take();
        if key_id.as_deref().is_some_and(|id| !key_id_ok(id)) {
            return Err(AnswerError::BadKeyId);
        }
        Ok(Issued { key, key_id })
    }
}

impl Drop for HookAnswer {
    fn drop(&mut self) {
        if let Some(k) = &mut self.key {
            k.zeroize();
        }
    }
}

impl std::fmt::Debug for HookAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookAnswer")
            .field("done", &self.done)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("key_id", &self.key_id)
            .field("retry_after_seconds", &self.retry_after_seconds)
            .finish()
    }
}
