//! What a hook answers: one [`HookAnswer`], read the way keyrotor reads it
//! (size cap, shape, `done`), and an issuer's key checked before keyrotor
//! stores it ([`Issued`]).

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::keys::{KeyError, SecretKey};

/// Largest answer keyrotor reads; a longer one is a failed call.
pub const MAX_ANSWER: usize = 64 * 1024;
/// Longest `keyId` an issuer may return (it is stored as an annotation).
pub const MAX_KEY_ID: usize = 253;

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

impl HookAnswer {
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
            .finish()
    }
}
