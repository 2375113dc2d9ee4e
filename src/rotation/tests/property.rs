//! The property test: random policies and random histories of consumers,
//! requests, clock steps, restarts and crashes; the simulator checks the
//! invariants after every write.

use proptest::prelude::*;

use super::*;

#[derive(Clone, Debug)]
pub(super) enum Step {
    Advance(i64),
    Sync(usize),
    Report(usize),
    SyncAll,
    /// A verifier (true) or presenter pod: ordinary, stuck, or reading the key through env.
    AddPod(bool, PodKind),
    RemovePod(usize),
    Rotate(u8),
    Rollback(u8),
    RevokeCurrent,
    RevokePrevious,
    Suspend(bool),
    Restart(u8),
    Crash(usize),
    OutsidePresents,
    OutsideMoves,
    Rollout(bool),
    /// The verifier hook's endpoint goes down (true) or comes back.
    HookDown(bool),
    /// The next hook call acts but its answer is lost.
    HookLosesAnswer,
    /// A Rollout group's workload is deleted (true) or created again.
    WorkloadGone(bool, bool),
}

#[derive(Clone, Copy, Debug)]
pub(super) enum PodKind {
    Ordinary,
    Stuck,
    Env,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (-5i64..4000).prop_map(Step::Advance),
        4 => any::<usize>().prop_map(Step::Sync),
        4 => any::<usize>().prop_map(Step::Report),
        2 => Just(Step::SyncAll),
        1 => (any::<bool>(), prop_oneof![7 => Just(PodKind::Ordinary), 2 => Just(PodKind::Stuck), 1 => Just(PodKind::Env)]).prop_map(|(v, k)| Step::AddPod(v, k)),
        1 => any::<usize>().prop_map(Step::RemovePod),
        2 => (0u8..4).prop_map(Step::Rotate),
        1 => (0u8..3).prop_map(Step::Rollback),
        1 => proptest::bool::weighted(0.15).prop_map(|b| if b { Step::RevokeCurrent } else { Step::OutsideMoves }),
        1 => proptest::bool::weighted(0.15).prop_map(|b| if b { Step::RevokePrevious } else { Step::OutsidePresents }),
        1 => any::<bool>().prop_map(Step::Suspend),
        1 => (0u8..6).prop_map(Step::Restart),
        1 => (0usize..4).prop_map(Step::Crash),
        2 => any::<bool>().prop_map(Step::Rollout),
        1 => proptest::bool::weighted(0.7).prop_map(|lose| if lose { Step::HookLosesAnswer } else { Step::HookDown(true) }),
        1 => Just(Step::HookDown(false)),
        1 => (any::<bool>(), proptest::bool::weighted(0.3)).prop_map(|(v, gone)| Step::WorkloadGone(v, gone)),
    ]
}

fn any_policy() -> impl Strategy<Value = Policy> {
    let mode =
        prop_oneof![3 => Just(Mode::Report), 1 => Just(Mode::Rollout), 1 => Just(Mode::Delay)];
    (
        (mode.clone(), mode, any::<bool>(), any::<bool>()),
        (0i64..600, 0i64..7200, any::<bool>()),
        (
            proptest::option::weighted(0.3, 1i64..900),
            any::<bool>(),
            proptest::option::weighted(0.3, 60i64..20_000),
            proptest::bool::weighted(0.4),
        ),
        (0u32..3, 0u32..3, 1i64..3000),
        0usize..3,
    )
        .prop_map(
            |(
                (vm, pm, vn, pn),
                (min, extra, retire),
                (quiet, combined, interval, hook),
                (vmin, pmin, deadline),
                users,
            )| {
                let g = |mode: Mode, nudge: bool, group: Group, min_consumers: u32| GroupPolicy {
                    mode,
                    nudge,
                    propagation_delay: SignedDuration::from_secs(30),
                    workloads: if mode == Mode::Rollout {
                        vec![workload_id(group)]
                    } else {
                        vec![]
                    },
                    min_consumers,
                };
                Policy {
                    schedule: interval
                        .map(|s| schedule::Schedule::Interval(SignedDuration::from_secs(s))),
                    grace_minimum: SignedDuration::from_secs(min),
                    grace_maximum: SignedDuration::from_secs(min + extra),
                    on_timeout: if retire {
                        OnTimeout::Retire
                    } else {
                        OnTimeout::Wait
                    },
                    progress_deadline: SignedDuration::from_secs(deadline),
                    verifiers: g(vm, vn, Group::Verifiers, vmin),
                    presenters: g(pm, pn, Group::Presenters, pmin),
                    quiet_window: quiet.map(SignedDuration::from_secs),
                    combined,
                    history_limit: 5,
                    suspend: false,
                    revoked: BTreeSet::new(),
                    adopt: false,
                    verifier_hook: hook,
                    issuer_hook: false,
                    usernames: ["app_blue", "app_green"][..users]
                        .iter()
                        .map(|u| u.to_string())
                        .collect(),
                }
            },
        )
}

fn group(verifiers: bool) -> Group {
    if verifiers {
        Group::Verifiers
    } else {
        Group::Presenters
    }
}

fn add_pod(w: &mut World, g: Group, kind: PodKind) {
    // A Rollout group's pods are its workload's: none without it.
    if w.workload_missing(g) {
        return;
    }
    match kind {
        PodKind::Ordinary => w.add_pod(g, false),
        PodKind::Stuck => w.add_pod(g, true),
        PodKind::Env => w.add_env_pod(g),
    };
}

pub(super) fn run_history(policy: Policy, steps: Vec<Step>) -> Result<(), String> {
    let mut w = World::new(policy);
    // Alternating users are for systems that hold one password per user:
    // the hook's system is one, and no presenter may be rejected there.
    w.hook.one_password_per_user = w.policy.usernames.len() == 2;
    w.add_pod(Group::Verifiers, false);
    w.add_pod(Group::Presenters, false);
    let mut token = 0u32;
    for s in steps {
        match s {
            Step::Advance(secs) => w.advance(secs),
            Step::Sync(i) => w.sync(i),
            Step::Report(i) => w.report(i),
            Step::SyncAll => w.sync_and_report_all(),
            Step::AddPod(verifier, kind) => add_pod(&mut w, group(verifier), kind),
            Step::RemovePod(i) => w.remove_pod(i),
            Step::Rotate(source) => {
                token += 1;
                let t = Some(format!("t{token}"));
                if source % 2 == 0 {
                    w.rotate.spec = t
                } else {
                    w.rotate.annotation = t
                }
            }
            Step::Rollback(source) => {
                token += 1;
                let t = Some(format!("t{token}"));
                if source % 2 == 0 {
                    w.rollback.spec = t
                } else {
                    w.rollback.annotation = t
                }
            }
            Step::RevokeCurrent => {
                if let Some(c) = w.current() {
                    w.policy.revoked.insert(c);
                }
            }
            Step::RevokePrevious => {
                if let Some(&p) = w.accepted().iter().find(|v| Some(**v) != w.current()) {
                    w.policy.revoked.insert(p);
                }
            }
            Step::Suspend(on) => w.policy.suspend = on,
            Step::Restart(k) => w.restart(match k {
                0 | 1 => StatusOnRestart::Lost,
                2 | 3 => StatusOnRestart::Stale(k as usize),
                _ => StatusOnRestart::Kept,
            }),
            Step::Crash(k) => w.crash_after = Some(k),
            Step::OutsidePresents => w.outside_presents(),
            Step::OutsideMoves => w.outside_moves(),
            Step::Rollout(verifiers) => w.rollout_progress(if verifiers {
                Group::Verifiers
            } else {
                Group::Presenters
            }),
            Step::HookDown(down) => w.hook.down = down,
            Step::HookLosesAnswer => w.hook.lose_answer = true,
            Step::WorkloadGone(verifiers, gone) => w.set_workload_missing(group(verifiers), gone),
        }
        w.reconcile()?;
        w.check()?;
    }
    w.settle()?;
    // Nothing was lost: the settled current key still has its material.
    let current = w.current();
    let has_key = current.is_some_and(|c| w.versions.get(&c).is_some_and(|v| v.has_key));
    invariants::check_converged_key(current, has_key)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("KEYROTOR_PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(2000),
        max_shrink_iters: 2000,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    /// I1, I2, I3, I5 and I6 hold after every write of every random history,
    /// and every history converges once consumers cooperate.
    #[test]
    fn random_histories_keep_every_invariant(policy in any_policy(), steps in proptest::collection::vec(step(), 1..60)) {
        if let Err(e) = run_history(policy.clone(), steps.clone()) {
            prop_assert!(false, "{e}\npolicy: {policy:?}");
        }
    }
}
