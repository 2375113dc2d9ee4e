//! Reading one answer against what a check expects, exactly the way
//! keyrotor reads it ([`Outcome::read`], [`HookAnswer::into_issued`]), into
//! a verdict and a few words for the table. Pure: the runner fetches, this
//! decides. What it says of an answer is its status, the outcome keyrotor
//! would see, a refusal's cleaned `reason`, and an issued key's length and
//! `keyId`: never a key, never `message` (which may repeat one).

use keyrotor_consumer::hook::{HookAnswer, Outcome, clean_reason};

/// An issued key as the kit remembers it: by digest only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub digest: String,
    pub key_id: Option<String>,
}

/// What an answer must be, with what to compare an issued key with.
#[derive(Debug)]
pub enum Want<'a> {
    /// A GET: exactly this status.
    Status(u16),
    /// `done` (204, or another 2xx but 202 with `{"done": true}`).
    Done,
    /// Refused for good: a 4xx other than 401, 403, 408, 429.
    Refused,
    /// 401 or 403 (keyrotor's token refused), and no key in the body.
    NotAuthorized,
    /// A key keyrotor can store, other than `unlike`'s if given.
    NewKey { unlike: Option<&'a KeyRecord> },
    /// The very key (and `keyId`) of this record.
    SameKey(&'a KeyRecord),
}

/// A verdict on one answer.
#[derive(Debug)]
pub struct Judged {
    pub passed: bool,
    /// The "got" column.
    pub got: String,
    /// keyrotor would take the step as done.
    pub done: bool,
    /// The key an issuer answered, if it is one keyrotor can store.
    pub key: Option<KeyRecord>,
}

impl Judged {
    pub fn failed(got: impl Into<String>) -> Judged {
        Judged {
            passed: false,
            got: got.into(),
            done: false,
            key: None,
        }
    }
}

/// Judges the answer `status` + `body` to a request that carried
/// `secrets` (its key and digest: a refusal's reason holding either is not
/// shown).
pub fn judge(want: &Want, status: u16, body: &[u8], secrets: &[&str]) -> Judged {
    if let Want::Status(code) = want {
        let mut j = Judged::failed(format!("HTTP {status}"));
        j.passed = status == *code;
        return j;
    }
    let outcome = match Outcome::read(status, body) {
        Ok(outcome) => outcome,
        Err(e) => return Judged::failed(format!("HTTP {status}: {e}")),
    };
    let heard = heard(status, &outcome, secrets);
    let answer = match outcome {
        Outcome::Done(answer) => answer,
        Outcome::Failed(401 | 403) if matches!(want, Want::NotAuthorized) => {
            return if carries_key(body) {
                Judged::failed(format!("{heard}, with a key in the answer"))
            } else {
                let mut j = Judged::failed(heard);
                j.passed = true;
                j
            };
        }
        Outcome::Refused { .. } if matches!(want, Want::Refused) => {
            let mut j = Judged::failed(heard);
            j.passed = true;
            return j;
        }
        _ => return Judged::failed(heard),
    };
    match want {
        Want::Done => Judged {
            passed: true,
            got: heard,
            done: true,
            key: None,
        },
        Want::NewKey { unlike } => issued(answer, status, heard, |k| match unlike {
            Some(other) if other.digest == k.digest => Err("the same key as an earlier version's"),
            _ => Ok(()),
        }),
        Want::SameKey(first) => issued(answer, status, heard, |k| {
            if k.digest != first.digest {
                Err("a different key than the first answer")
            } else if k.key_id != first.key_id {
                Err("the same key with another keyId")
            } else {
                Ok(())
            }
        }),
        // Done where a refusal or a 401 was due: it acted (and what it
        // issued is remembered, for the clean-up).
        Want::Refused | Want::NotAuthorized | Want::Status(_) => Judged {
            passed: false,
            got: heard,
            done: true,
            key: answer.into_issued().ok().map(|i| KeyRecord {
                digest: i.key.digest(),
                key_id: i.key_id.clone(),
            }),
        },
    }
}

/// An issuer's done answer: a key keyrotor can store, then `compare`d.
fn issued(
    answer: HookAnswer,
    status: u16,
    heard: String,
    compare: impl Fn(&KeyRecord) -> Result<(), &'static str>,
) -> Judged {
    let issued = match answer.into_issued() {
        Ok(issued) => issued,
        Err(e) => {
            let mut j = Judged::failed(format!("HTTP {status}: {e}"));
            j.done = true;
            return j;
        }
    };
    let key = KeyRecord {
        digest: issued.key.digest(),
        key_id: issued.key_id.clone(),
    };
    let mut got = format!("{heard}, a {}-byte key", issued.key.expose().len());
    if let Some(id) = &key.key_id {
        got.push_str(&format!(", keyId {id}"));
    }
    let compared = compare(&key);
    if let Err(why) = compared {
        got = format!("{got}: {why}");
    }
    Judged {
        passed: compared.is_ok(),
        got,
        done: true,
        key: Some(key),
    }
}

/// How keyrotor hears an answer, in a few words.
fn heard(status: u16, outcome: &Outcome, secrets: &[&str]) -> String {
    match outcome {
        Outcome::Done(_) => format!("HTTP {status} done"),
        Outcome::Pending {
            retry_after,
            reason,
        } => {
            let reason = clean_reason(reason.as_deref(), secrets);
            format!(
                "HTTP 202 pending{} (ask again in {retry_after} s)",
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            )
        }
        Outcome::Refused { reason, .. } => match clean_reason(reason.as_deref(), secrets) {
            Some(reason) => format!("HTTP {status} refused: {reason}"),
            None => format!("HTTP {status} refused"),
        },
        Outcome::Failed(401 | 403) => format!("HTTP {status}, the token refused"),
        Outcome::Failed(_) => format!("HTTP {status}, a failed call (keyrotor retries it)"),
    }
}

/// Whether a body holds a `key` field: a refusal must not hand one out.
fn carries_key(body: &[u8]) -> bool {
    serde_json::from_slice::<HookAnswer>(body).is_ok_and(|a| a.key.is_some())
}

/// Whether `body` repeats `secret` (a key the request carried).
pub fn echoes(body: &[u8], secret: &str) -> bool {
    !secret.is_empty() && body.windows(secret.len()).any(|w| w == secret.as_bytes())
}

#[cfg(test)]
mod tests;
