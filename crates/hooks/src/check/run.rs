//! The runner: gives the cases a fresh rotation and keys, sends each
//! exchange, re-asks a pending step after its `retryAfterSeconds` (bounded
//! by the pending limit), has [`judge`] read every answer, and at the end
//! retires what the hook still holds from the run.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use keyrotor_consumer::hook::{HookRequest, Outcome, Step, idempotency_key};
use keyrotor_consumer::keys::{Alphabet, KeySpec, SecretKey};
use zeroize::Zeroizing;

use super::Options;
use super::cases::{Ask, Carries, Case, Delivery, Exchange, Expect, Post, Rotation, Token, User};
use super::client::{NoReply, Reply};
use super::judge::{self, Judged, KeyRecord, Want};
use super::report::{Report, Row};

/// The namespace the run's requests name.
pub const NAMESPACE: &str = "keyrotor-check";
/// The user name no hook is set up for.
pub const STRANGER: &str = "keyrotor_check_stranger";
/// keyrotor's pause before it retries a call whose answer it lost.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// One run's made-up rotation and what the hook answered so far.
struct Run<'a> {
    options: &'a Options,
    name: String,
    uids: [String; 2],
    /// Keys of staged versions, made on first use.
    keys: HashMap<(Rotation, u64), SecretKey>,
    /// Keys an issuer answered, by digest.
    issued: HashMap<(Rotation, u64), KeyRecord>,
    /// What the hook answered done to `stage` or `issue` and not yet to
    /// `retire`: the clean-up retires it.
    held: BTreeMap<(Rotation, u64), KeyRecord>,
    /// Answers read to requests that carried a key, and the checks whose
    /// answer repeated it.
    keyed_answers: usize,
    echoed: Vec<String>,
}

/// A request ready to send: its body (holding the key, wiped when dropped)
/// and the secrets a reason must not show.
struct Built {
    body: Zeroizing<Vec<u8>>,
    key: Zeroizing<String>,
    digest: String,
}

/// Runs every case, then the clean-up.
pub async fn run(options: &Options) -> Report {
    let mut run = Run::new(options);
    let cases = super::cases::cases(options.role, !options.usernames.is_empty());
    let mut rows = Vec::new();
    for case in &cases {
        rows.push(run.case(case).await);
    }
    if options.role == super::Role::Verifier {
        rows.push(run.echo_row());
    }
    let notes = run.clean_up().await;
    Report {
        url: options.url.clone(),
        role: options.role,
        namespace: NAMESPACE.into(),
        rotation: run.name.clone(),
        uids: run.uids.to_vec(),
        rows,
        notes,
    }
}

impl<'a> Run<'a> {
    /// A fresh rotation: a random name and uids, nothing asked yet.
    fn new(options: &'a Options) -> Run<'a> {
        Run {
            options,
            name: format!("keyrotor-check-{}", random(Alphabet::Hex, 8)),
            uids: [uid(), uid()],
            keys: HashMap::new(),
            issued: HashMap::new(),
            held: BTreeMap::new(),
            keyed_answers: 0,
            echoed: Vec::new(),
        }
    }

    /// One row: every exchange of the case; it passes if each did.
    async fn case(&mut self, case: &Case) -> Row {
        let mut expected = Vec::new();
        let mut got = Vec::new();
        let mut passed = true;
        for ex in &case.exchanges {
            if ex.delivery == Delivery::HangUp {
                if let Err(e) = self.hang_up(ex).await {
                    passed = false;
                    got.push(format!("the request that loses its answer: {e}"));
                }
                continue;
            }
            let judged = self.exchange(&case.name, ex).await;
            expected.push(ex.describe());
            passed &= judged.iter().all(|j| j.passed);
            got.push(said(&judged));
        }
        Row {
            check: case.name.clone(),
            passed,
            expected: expected.join("; "),
            got: got.join("; "),
        }
    }

    /// Sends `ex` (once or twice at once) and judges what came back.
    async fn exchange(&mut self, check: &str, ex: &Exchange) -> Vec<Judged> {
        let post = match &ex.ask {
            Ask::Get(path) => {
                let judged = match self.options.client.get(path).await {
                    Ok(reply) => self.judge(None, ex.expect, &reply, None),
                    Err(e) => Judged::failed(e.to_string()),
                };
                return vec![judged];
            }
            Ask::Post(post) => post,
        };
        let built = match self.build(post) {
            Ok(built) => built,
            Err(why) => return vec![Judged::failed(why)],
        };
        let token = self.token(post.token);
        let token = token.as_deref().map(String::as_str);
        let replies = match ex.delivery {
            Delivery::TwiceAtOnce => {
                let (a, b) =
                    tokio::join!(self.ask(&built.body, token), self.ask(&built.body, token));
                vec![a, b]
            }
            _ => vec![self.ask(&built.body, token).await],
        };
        let mut judged = Vec::new();
        for reply in replies {
            // The second of two at once must match the first's key.
            let expect = match (ex.expect, judged.is_empty()) {
                (Expect::NewKey { .. }, false) => Expect::SameKey,
                (expect, _) => expect,
            };
            let j = match reply {
                Ok((reply, waited)) => {
                    if !built.key.is_empty() {
                        self.keyed_answers += 1;
                        if judge::echoes(&reply.body, &built.key) {
                            self.echoed.push(check.to_string());
                        }
                    }
                    let mut j = self.judge(Some(post), expect, &reply, Some(&built));
                    j.got.push_str(&waited);
                    j
                }
                Err(e) => Judged::failed(e.to_string()),
            };
            self.record(post, &built, &j);
            judged.push(j);
        }
        judged
    }

    /// Judges `reply` to `post` (none: a GET) against `expect`, with the
    /// keys issued so far.
    fn judge(
        &self,
        post: Option<&Post>,
        expect: Expect,
        reply: &Reply,
        built: Option<&Built>,
    ) -> Judged {
        let issued = |of| self.issued.get(&of);
        let want = match expect {
            Expect::Done => Want::Done,
            Expect::Refused => Want::Refused,
            Expect::NotAuthorized => Want::NotAuthorized,
            Expect::Status(code) => Want::Status(code),
            Expect::NewKey { unlike } => Want::NewKey {
                unlike: unlike.and_then(issued),
            },
            Expect::SameKey => match post.and_then(|p| issued((p.rotation, p.version))) {
                Some(first) => Want::SameKey(first),
                None => return Judged::failed("no earlier key of this version to compare with"),
            },
            Expect::Nothing => return Judged::failed("nothing to judge"),
        };
        let secrets = built.map_or([""; 2], |b| [b.key.as_str(), b.digest.as_str()]);
        judge::judge(&want, reply.status, &reply.body, &secrets)
    }

    /// The row on answers that repeat the key their `stage` carried.
    fn echo_row(&self) -> Row {
        let (passed, got) = match (self.keyed_answers, self.echoed.as_slice()) {
            (0, _) => (false, "no answer to a request with a key came back".into()),
            (_, []) => (true, "none did".into()),
            (_, echoed) => (false, format!("the answer to {} did", echoed.join(", "))),
        };
        Row {
            check: "no answer repeats the key it was sent".into(),
            passed,
            expected: "no key in any answer to stage".into(),
            got,
        }
    }

    /// Remembers what a judged answer changed at the hook.
    fn record(&mut self, post: &Post, built: &Built, j: &Judged) {
        let at = (post.rotation, post.version);
        if !j.done || post.api_version != keyrotor_consumer::hook::API_VERSION {
            return;
        }
        match post.step {
            "issue" => {
                if let Some(key) = &j.key {
                    self.issued.entry(at).or_insert_with(|| key.clone());
                    self.held.entry(at).or_insert_with(|| key.clone());
                }
            }
            "stage" if post.carries == Carries::Key => {
                self.held.insert(
                    at,
                    KeyRecord {
                        digest: built.digest.clone(),
                        key_id: None,
                    },
                );
            }
            "retire" if self.held.get(&at).is_some_and(|h| h.digest == built.digest) => {
                self.held.remove(&at);
            }
            _ => {}
        }
    }

    /// Sends the request of `ex` and hangs up, then waits as keyrotor
    /// would before its retry.
    async fn hang_up(&mut self, ex: &Exchange) -> Result<(), String> {
        let Ask::Post(post) = &ex.ask else {
            return Ok(());
        };
        let built = self.build(post)?;
        let token = self.token(post.token);
        let sent = self
            .options
            .client
            .post_and_hang_up(&built.body, token.as_deref().map(String::as_str))
            .await;
        tokio::time::sleep(RETRY_PAUSE).await;
        sent.map_err(|e| e.to_string())
    }

    /// POSTs `body`; a pending answer (202) is asked again after its
    /// `retryAfterSeconds` while the pending limit allows. Returns the last
    /// reply and, if it waited, a note of how long.
    async fn ask(&self, body: &[u8], token: Option<&str>) -> Result<(Reply, String), NoReply> {
        let start = Instant::now();
        let mut pending = 0;
        loop {
            let reply = self.options.client.post(body, token).await?;
            if let Ok(Outcome::Pending { retry_after, .. }) =
                Outcome::read(reply.status, &reply.body)
            {
                let wait = Duration::from_secs(retry_after.into());
                if start.elapsed() + wait <= self.options.pending_limit {
                    pending += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            let waited = match pending {
                0 => String::new(),
                n => format!(
                    " (after {n} pending answer{}, {} s)",
                    if n == 1 { "" } else { "s" },
                    start.elapsed().as_secs()
                ),
            };
            return Ok((reply, waited));
        }
    }

    /// The request `post` names, with this run's identity and keys.
    fn build(&mut self, post: &Post) -> Result<Built, String> {
        let uid = &self.uids[post.rotation as usize];
        // Step::Stage only to fill the identity: `step` is set just below.
        let mut r = HookRequest::new(Step::Stage, NAMESPACE, &self.name, uid, post.version);
        r.step = post.step.into();
        r.idempotency_key = idempotency_key(NAMESPACE, &self.name, uid, post.version, post.step);
        r.api_version = post.api_version.into();
        r.username = self.username(post.version, post.user);
        let at = (post.rotation, post.version);
        match post.carries {
            Carries::Nothing => {}
            Carries::Key | Carries::KeyOtherDigest | Carries::Digest => {
                let key = self.keys.entry(at).or_insert_with(new_key);
                r.sha256 = key.digest();
                if post.carries != Carries::Digest {
                    r.key = Some(key.expose().to_string());
                }
                if post.carries == Carries::KeyOtherDigest {
                    r.sha256 = new_key().digest();
                }
            }
            Carries::UnknownDigest => r.sha256 = new_key().digest(),
            Carries::Issued => {
                let Some(issued) = self.issued.get(&at) else {
                    return Err(format!("no key was issued for v{} to retire", post.version));
                };
                r.sha256 = issued.digest.clone();
                r.key_id = issued.key_id.clone();
            }
        }
        let mut body = r.to_json();
        if post.newer_field {
            // A compatible extension: one more member at the end.
            body.pop();
            body.extend_from_slice(
                br#","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#,
            );
        }
        Ok(Built {
            body,
            key: Zeroizing::new(r.key.clone().unwrap_or_default()),
            digest: r.sha256.clone(),
        })
    }

    fn token(&self, token: Token) -> Option<Zeroizing<String>> {
        let right = &self.options.token;
        match token {
            Token::Right => Some(right.clone()),
            Token::Missing => None,
            Token::Wrong => Some(Zeroizing::new(random(Alphabet::Base62, right.len().max(1)))),
            Token::Extended => Some(Zeroizing::new(format!("{}x", right.as_str()))),
        }
    }

    /// The user name of `version` (`spec.usernames`: one for every version,
    /// or two alternating, odd versions the first).
    fn username(&self, version: u64, user: User) -> Option<String> {
        match (user, self.options.usernames.as_slice()) {
            (_, []) => None,
            (User::Stranger, _) => Some(STRANGER.into()),
            (User::ByRule, [one]) => Some(one.clone()),
            (User::ByRule, [first, second, ..]) => {
                Some(if version % 2 == 1 { first } else { second }.clone())
            }
        }
    }

    /// Retires whatever the hook still holds from this run, oldest first.
    async fn clean_up(&mut self) -> Vec<String> {
        let mut retired = Vec::new();
        let mut notes = Vec::new();
        let held = std::mem::take(&mut self.held);
        for ((rotation, version), key) in held {
            let uid = &self.uids[rotation as usize];
            let mut r = HookRequest::new(Step::Retire, NAMESPACE, &self.name, uid, version);
            r.sha256 = key.digest.clone();
            r.key_id = key.key_id.clone();
            r.username = self.username(version, User::ByRule);
            let label = match rotation {
                Rotation::First => format!("v{version}"),
                Rotation::Recreated => format!("v{version} of the re-created rotation"),
            };
            let token = self.token(Token::Right);
            let j = match self
                .ask(&r.to_json(), token.as_deref().map(String::as_str))
                .await
            {
                Ok((reply, _)) => {
                    judge::judge(&Want::Done, reply.status, &reply.body, &[&key.digest])
                }
                Err(e) => Judged::failed(e.to_string()),
            };
            if j.passed {
                retired.push(label);
            } else {
                notes.push(format!("clean-up: {label} stays at the hook ({})", j.got));
            }
        }
        if !retired.is_empty() {
            notes.insert(0, format!("clean-up: retired {}", retired.join(", ")));
        }
        notes
    }
}

/// How the answers of one exchange read in the table.
fn said(judged: &[Judged]) -> String {
    match judged {
        [one] => one.got.clone(),
        [a, b] if a.got == b.got => format!("both {}", a.got),
        [a, b] => format!("first {}; second {}", a.got, b.got),
        more => more
            .iter()
            .map(|j| j.got.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    }
}

fn new_key() -> SecretKey {
    key_of(Alphabet::Base62, 40)
}

/// Random text from the OS CSPRNG (through the key generator).
fn random(alphabet: Alphabet, length: usize) -> String {
    key_of(alphabet, length).expose().to_string()
}

fn key_of(alphabet: Alphabet, length: usize) -> SecretKey {
    let spec = KeySpec {
        alphabet,
        length,
        prefix: String::new(),
        checksum: false,
    };
    // Only a failing OS random number generator stops it; nothing to check then.
    SecretKey::generate(&spec).expect("the OS random number generator works")
}

/// A random uid in the shape Kubernetes gives (a version 4 UUID's).
fn uid() -> String {
    let h = random(Alphabet::Hex, 32);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests;
