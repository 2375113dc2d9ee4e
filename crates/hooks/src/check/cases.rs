//! The checks, as data: each [`Case`] is one row of the table, a short
//! sequence of requests ([`Exchange`]s) with the answer each must get.
//! Requests name versions and keys symbolically; the runner gives them a
//! fresh rotation (random uid, `keyrotor-check-<random>`) and keys.
//!
//! The order is keyrotor's: a version is staged (or issued) before the one
//! after it, and retired only once its successor is accepted. Fault cases
//! use version numbers of their own (10 and up), so a hook that wrongly
//! acts on one does not change what the main sequence sees.

/// Which role of the hook is checked (`spec.verifierHook` or
/// `spec.issuerHook`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Verifier,
    Issuer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Verifier => "verifier",
            Role::Issuer => "issuer",
        }
    }

    /// The step that makes a version usable: `stage` or `issue`.
    fn first_step(self, version: u64) -> Post {
        match self {
            Role::Verifier => post("stage", version).carrying(Carries::Key),
            Role::Issuer => post("issue", version),
        }
    }

    /// `retire` of a version this role made usable.
    fn retire(self, version: u64) -> Post {
        match self {
            Role::Verifier => post("retire", version).carrying(Carries::Digest),
            Role::Issuer => post("retire", version).carrying(Carries::Issued),
        }
    }
}

/// The rotation a request belongs to: the run's, or one deleted and
/// created again under the same name (a new uid, versions from 1 again).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rotation {
    First,
    Recreated,
}

/// The bearer token a request is sent with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token {
    Right,
    Missing,
    /// Random, of the right token's length.
    Wrong,
    /// The right token with characters appended (a prefix comparison).
    Extended,
}

/// What a request carries beside its identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carries {
    /// Nothing (`issue`).
    Nothing,
    /// The version's key and its digest (`stage`).
    Key,
    /// The version's key with another key's digest.
    KeyOtherDigest,
    /// The digest of the version's key (`retire` to a verifier).
    Digest,
    /// The digest of a key nobody staged or issued.
    UnknownDigest,
    /// The digest and `keyId` of the key issued for the version (`retire`
    /// to an issuer).
    Issued,
}

/// Which user name a request carries, when the run has any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    /// The version's, by the alternating rule (odd: first, even: second).
    ByRule,
    /// One the hook was not set up for.
    Stranger,
}

/// One POST.
#[derive(Clone, Debug)]
pub struct Post {
    pub step: &'static str,
    pub rotation: Rotation,
    pub version: u64,
    pub carries: Carries,
    pub token: Token,
    pub user: User,
    pub api_version: &'static str,
    /// With a field this protocol version does not define (a newer
    /// keyrotor's compatible extension).
    pub newer_field: bool,
}

fn post(step: &'static str, version: u64) -> Post {
    Post {
        step,
        rotation: Rotation::First,
        version,
        carries: Carries::Nothing,
        token: Token::Right,
        user: User::ByRule,
        api_version: keyrotor_consumer::hook::API_VERSION,
        newer_field: false,
    }
}

impl Post {
    fn carrying(self, carries: Carries) -> Post {
        Post { carries, ..self }
    }
    fn token(self, token: Token) -> Post {
        Post { token, ..self }
    }
}

/// What is asked.
#[derive(Clone, Debug)]
pub enum Ask {
    /// A GET of this path on the hook's host, without a token.
    Get(&'static str),
    Post(Post),
}

/// How a request is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Once,
    /// Sent, then the connection closed before anything is read.
    HangUp,
    /// Two identical requests on two connections at the same moment.
    TwiceAtOnce,
}

/// The answer a request must get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Status(u16),
    Done,
    Refused,
    NotAuthorized,
    /// A key keyrotor can store, other than the key of that version if
    /// given; remembered as the version's key.
    NewKey {
        unlike: Option<(Rotation, u64)>,
    },
    /// The key remembered for the request's version.
    SameKey,
    /// Nothing is read (a lost answer).
    Nothing,
}

/// One request and its expected answer.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub ask: Ask,
    pub delivery: Delivery,
    pub expect: Expect,
}

impl Exchange {
    /// The "expected" column.
    pub fn describe(&self) -> String {
        let one = match self.expect {
            Expect::Status(code) => format!("HTTP {code}, without a token"),
            Expect::Done => "done: 204, or 2xx with {\"done\": true}".into(),
            Expect::Refused => "refused: 4xx but 401, 403, 408, 429".into(),
            Expect::NotAuthorized => "401 or 403, not done".into(),
            Expect::NewKey { unlike: None } => "done with a key keyrotor can store".into(),
            Expect::NewKey { unlike: Some(_) } => "done with a new key".into(),
            Expect::SameKey => "done with the same key and keyId".into(),
            Expect::Nothing => String::new(),
        };
        match (self.delivery, self.expect) {
            (Delivery::TwiceAtOnce, Expect::NewKey { .. }) => "both done with one new key".into(),
            (Delivery::TwiceAtOnce, _) => format!("both {one}"),
            _ => one,
        }
    }
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub exchanges: Vec<Exchange>,
}

fn case(name: impl Into<String>, exchanges: impl IntoIterator<Item = Exchange>) -> Case {
    Case {
        name: name.into(),
        exchanges: exchanges.into_iter().collect(),
    }
}

fn once(post: Post, expect: Expect) -> Exchange {
    Exchange {
        ask: Ask::Post(post),
        delivery: Delivery::Once,
        expect,
    }
}

fn hang_up(post: Post) -> Exchange {
    Exchange {
        ask: Ask::Post(post),
        delivery: Delivery::HangUp,
        expect: Expect::Nothing,
    }
}

fn twice(post: Post, expect: Expect) -> Exchange {
    Exchange {
        ask: Ask::Post(post),
        delivery: Delivery::TwiceAtOnce,
        expect,
    }
}

fn get(path: &'static str) -> Exchange {
    Exchange {
        ask: Ask::Get(path),
        delivery: Delivery::Once,
        expect: Expect::Status(200),
    }
}

/// Every check for `role`, in order; the user-name check only when the
/// run has user names.
pub fn cases(role: Role, with_usernames: bool) -> Vec<Case> {
    let mut cases = vec![
        case("GET /healthz", [get("/healthz")]),
        case("GET /readyz", [get("/readyz")]),
    ];
    cases.extend(tokens(role));
    cases.extend(refusals(role, with_usernames));
    cases.extend(match role {
        Role::Verifier => verifier(),
        Role::Issuer => issuer(),
    });
    cases
}

/// A wrong token is not keyrotor: 401 (or 403), whatever it asks.
fn tokens(role: Role) -> Vec<Case> {
    [
        (10, "without a token", Token::Missing),
        (11, "with a wrong token", Token::Wrong),
        (12, "with the token and more characters", Token::Extended),
    ]
    .into_iter()
    .map(|(v, how, token)| {
        let ask = role.first_step(v).token(token);
        case(
            format!("{} v{v} {how}", ask.step),
            [once(ask, Expect::NotAuthorized)],
        )
    })
    .collect()
}

/// Requests a hook must refuse rather than act on or fail.
fn refusals(role: Role, with_usernames: bool) -> Vec<Case> {
    let newer = Post {
        api_version: "hooks.keyrotor.dev/v2",
        ..role.first_step(13)
    };
    let mut cases = vec![
        case(
            format!("{} v13 of apiVersion hooks.keyrotor.dev/v2", newer.step),
            [once(newer, Expect::Refused)],
        ),
        case(
            "step \"promote\", not in this protocol version",
            [once(
                post("promote", 14).carrying(Carries::Digest),
                Expect::Refused,
            )],
        ),
    ];
    if role == Role::Verifier {
        cases.push(case(
            "stage v15 whose sha256 is another key's",
            [once(
                post("stage", 15).carrying(Carries::KeyOtherDigest),
                Expect::Refused,
            )],
        ));
    }
    if with_usernames {
        let stranger = Post {
            user: User::Stranger,
            ..role.first_step(16)
        };
        cases.push(case(
            format!(
                "{} v16 for a user name the hook was not given",
                stranger.step
            ),
            [once(stranger, Expect::Refused)],
        ));
    }
    cases
}

fn verifier() -> Vec<Case> {
    let stage = |v| Role::Verifier.first_step(v);
    let retire = |v| Role::Verifier.retire(v);
    use Expect::Done;
    vec![
        case("stage v1", [once(stage(1), Done)]),
        case("stage v1 again (a retry)", [once(stage(1), Done)]),
        case(
            "stage v1 with a field of a newer keyrotor",
            [once(
                Post {
                    newer_field: true,
                    ..stage(1)
                },
                Done,
            )],
        ),
        case(
            "stage v2, answer lost, asked again",
            [hang_up(stage(2)), once(stage(2), Done)],
        ),
        case("retire v1", [once(retire(1), Done)]),
        case("retire v1 again (a retry)", [once(retire(1), Done)]),
        case(
            "retire v17, never staged",
            [once(
                post("retire", 17).carrying(Carries::UnknownDigest),
                Done,
            )],
        ),
        case("stage v3 twice at once", [twice(stage(3), Done)]),
        case("retire v2", [once(retire(2), Done)]),
    ]
}

fn issuer() -> Vec<Case> {
    let issue = |v| Role::Issuer.first_step(v);
    let retire = |v| Role::Issuer.retire(v);
    let new_key = |unlike| Expect::NewKey { unlike };
    let v1 = Some((Rotation::First, 1));
    vec![
        case("issue v1", [once(issue(1), new_key(None))]),
        case(
            "issue v1 again (same uid and idempotency key)",
            [once(issue(1), Expect::SameKey)],
        ),
        case(
            "issue v1 with a field of a newer keyrotor",
            [once(
                Post {
                    newer_field: true,
                    ..issue(1)
                },
                Expect::SameKey,
            )],
        ),
        case(
            "issue v2, answer lost, asked again",
            [hang_up(issue(2)), once(issue(2), new_key(v1))],
        ),
        case("issue v2 again", [once(issue(2), Expect::SameKey)]),
        case("retire v1 with its keyId", [once(retire(1), Expect::Done)]),
        case("retire v1 again (a retry)", [once(retire(1), Expect::Done)]),
        case(
            "retire v17, never issued",
            [once(
                post("retire", 17).carrying(Carries::UnknownDigest),
                Expect::Done,
            )],
        ),
        case(
            "issue v3 twice at once",
            [twice(issue(3), new_key(Some((Rotation::First, 2))))],
        ),
        case("retire v2 with its keyId", [once(retire(2), Expect::Done)]),
        // Last, and on v2: with two alternating user names v2's user is
        // free again only now (v3 holds the other), as after a real
        // deletion the user's old rotation would have been retired first.
        case(
            "issue v2 of the rotation re-created (new uid, same name)",
            [once(
                Post {
                    rotation: Rotation::Recreated,
                    ..issue(2)
                },
                new_key(Some((Rotation::First, 2))),
            )],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_its_own_name() {
        for role in [Role::Verifier, Role::Issuer] {
            let cases = cases(role, true);
            let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), cases.len(), "{role:?}");
        }
    }

    #[test]
    fn a_version_is_retired_only_after_its_successor_was_made_usable() {
        for role in [Role::Verifier, Role::Issuer] {
            let mut usable = Vec::new();
            for case in cases(role, false) {
                for ex in &case.exchanges {
                    let Ask::Post(p) = &ex.ask else { continue };
                    if p.rotation != Rotation::First || p.token != Token::Right {
                        continue;
                    }
                    match (p.step, p.carries) {
                        ("stage" | "issue", _) if ex.expect != Expect::Refused => {
                            usable.push(p.version)
                        }
                        ("retire", Carries::Digest | Carries::Issued) => assert!(
                            usable.contains(&(p.version + 1)),
                            "{}: v{} retired before v{} is usable",
                            case.name,
                            p.version,
                            p.version + 1
                        ),
                        _ => {}
                    }
                }
            }
        }
    }

    #[test]
    fn the_user_name_check_is_there_only_with_user_names() {
        let has = |on| {
            cases(Role::Verifier, on)
                .iter()
                .any(|c| c.name.contains("user name"))
        };
        assert!(has(true) && !has(false));
    }
}
