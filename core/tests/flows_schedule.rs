//! The closure of builds over a machines pool (`flows::schedule`): what is
//! read, what is built where and in which order, what a failure does.

use std::time::{Duration, Instant};

use nixwire_core::flows::build::{Failure, FailureClass, Outcome, Phase};
use nixwire_core::flows::schedule::*;
use nixwire_core::machines::Machine;
use nixwire_core::machines::select::{Pool, PoolConfig};
use nixwire_core::store::{
    BuildResult, BuildStatus, Derivation, OutputAddressing, OutputName, StorePath,
};

/// A store path named `name` with a hash part made from the name, so that
/// each name gives its own path.
fn path(name: &str) -> StorePath {
    let hash: String = name
        .bytes()
        .cycle()
        .take(32)
        .map(|b| char::from(b"0123456789abcdfghijklmnpqrsvwxyz"[usize::from(b) % 32]))
        .collect();
    format!("{hash}-{name}").parse().expect("a store path")
}

/// `name.drv`, building `name` on `system` from the `out` of `inputs`.
fn drv(name: &str, system: &str, inputs: &[&str]) -> (StorePath, Derivation) {
    let mut d = Derivation::default();
    d.outputs.insert(
        OutputName::out(),
        OutputAddressing::InputAddressed(path(name)),
    );
    for input in inputs {
        d.input_drvs.insert(
            path(&format!("{input}.drv")),
            [OutputName::out()].into_iter().collect(),
        );
    }
    d.platform = system.into();
    (path(&format!("{name}.drv")), d)
}

/// `names` built on `x86_64-linux` from nothing: builds independent of
/// each other.
fn independent(names: &[&str]) -> Vec<(StorePath, Derivation)> {
    names
        .iter()
        .map(|name| drv(name, "x86_64-linux", &[]))
        .collect()
}

fn machine(uri: &str, jobs: u32) -> Machine {
    let mut m = Machine::with_defaults(uri, ["x86_64-linux".to_owned()].into());
    m.max_jobs = jobs;
    m
}

fn pool(machines: &[(&str, u32)]) -> Pool {
    Pool::new(
        machines.iter().map(|(uri, jobs)| machine(uri, *jobs)),
        PoolConfig::default(),
    )
}

/// Answers the schedule's questions from `drvs` and the `valid` outputs
/// until it wants to build.
fn learn(s: &mut Schedule, drvs: &[(StorePath, Derivation)], valid: &[&str]) -> usize {
    let mut levels = 0;
    loop {
        match s.want() {
            Want::ReadDerivations(paths) => {
                levels += 1;
                let read = paths.into_iter().map(|p| {
                    let d = drvs.iter().find(|(q, _)| *q == p).map(|(_, d)| d.clone());
                    (p, d.ok_or_else(|| "no such file".to_owned()))
                });
                s.derivations_read(read.collect::<Vec<_>>());
            }
            Want::ValidOutputs(paths) => {
                let v = paths
                    .into_iter()
                    .filter(|p| valid.iter().any(|n| path(n) == *p));
                s.outputs_valid(v.collect::<Vec<_>>());
            }
            Want::Build => return levels,
        }
    }
}

/// A schedule of every one of `drvs` on `pool`, its questions answered
/// (no output valid yet), ready to build.
fn schedule_all(drvs: &[(StorePath, Derivation)], pool: Pool) -> Schedule {
    let mut s = Schedule::new(drvs.iter().map(|(p, _)| p.clone()), pool);
    learn(&mut s, drvs, &[]);
    s
}

/// A build's connection lost in `phase`: a machine failure, retried.
fn lost(phase: Phase, message: &str) -> Outcome {
    Outcome::Failed(Failure::Transport {
        phase,
        message: message.into(),
    })
}

fn built(job: &Job) -> Outcome {
    Outcome::Built {
        result: Box::new(BuildResult::new(BuildStatus::Built, "")),
        outputs: job
            .drv
            .outputs
            .iter()
            .filter_map(|(n, o)| Some((n.clone(), o.path()?.clone())))
            .collect(),
        sent: 0,
        received: 0,
    }
}

fn run(s: &mut Schedule, now: Instant) -> Job {
    match s.poll_job(now) {
        Next::Run(job) => *job,
        other => panic!("a job, not {other:?}"),
    }
}

#[test]
fn a_chain_is_built_in_order_and_what_is_valid_is_neither_built_nor_read() {
    // d <- c <- b <- a, a's output already here: a's inputs are not read.
    let drvs = [
        drv("a", "x86_64-linux", &["z"]),
        drv("b", "x86_64-linux", &["a"]),
        drv("c", "x86_64-linux", &["b"]),
        drv("d", "x86_64-linux", &["c"]),
    ];
    let mut s = Schedule::new([drvs[3].0.clone()], pool(&[("ssh://m", 1)]));
    assert_eq!(learn(&mut s, &drvs, &["a"]), 4);
    let now = Instant::now();
    let mut order = Vec::new();
    loop {
        match s.poll_job(now) {
            Next::Run(job) => {
                assert_eq!(job.machine.uri, "ssh://m");
                order.push(job.drv_path.name().to_owned());
                // One slot: nothing else starts meanwhile.
                assert_eq!(s.poll_job(now), Next::Wait(None));
                let expected_input = match job.drv_path.name() {
                    "b.drv" => path("a"),
                    "c.drv" => path("b"),
                    _ => path("c"),
                };
                assert_eq!(job.input_outputs, vec![expected_input]);
                s.job_finished(now, job.id, &built(&job), Duration::ZERO);
            }
            Next::Done => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(order, ["b.drv", "c.drv", "d.drv"]);
    let (_, state) = s.wanted().next().expect("d");
    assert!(
        matches!(state, State::Valid { built: true, .. }),
        "{state:?}"
    );
    assert!(matches!(
        s.state(&path("a.drv")),
        Some(State::Valid { built: false, .. })
    ));
    assert_eq!(s.state(&path("z.drv")), None);
}

#[test]
fn independent_builds_share_the_slots_of_the_pool() {
    let drvs = [
        drv("a", "x86_64-linux", &[]),
        drv("b", "x86_64-linux", &[]),
        drv("c", "x86_64-linux", &[]),
        drv("top", "x86_64-linux", &["a", "b", "c"]),
    ];
    let mut s = Schedule::new(
        [drvs[3].0.clone()],
        pool(&[("ssh://m1", 1), ("ssh://m2", 1)]),
    );
    learn(&mut s, &drvs, &[]);
    let now = Instant::now();
    let one = run(&mut s, now);
    let two = run(&mut s, now);
    assert_ne!(one.machine.uri, two.machine.uri);
    assert_eq!(s.poll_job(now), Next::Wait(None));
    s.job_finished(now, one.id, &built(&one), Duration::ZERO);
    let three = run(&mut s, now);
    s.job_finished(now, two.id, &built(&two), Duration::ZERO);
    // top waits for the third.
    assert_eq!(s.poll_job(now), Next::Wait(None));
    s.job_finished(now, three.id, &built(&three), Duration::ZERO);
    let top = run(&mut s, now);
    assert_eq!(top.drv_path, path("top.drv"));
    assert_eq!(top.input_outputs.len(), 3);
}

#[test]
fn a_machine_failure_backs_it_off_and_retries_elsewhere() {
    let drvs = independent(&["a"]);
    let mut s = schedule_all(&drvs, pool(&[("ssh://m1", 1), ("ssh://m2", 1)]));
    let now = Instant::now();
    let first = run(&mut s, now);
    let failed = lost(Phase::Connecting, "refused");
    s.job_finished(now, first.id, &failed, Duration::ZERO);
    let second = run(&mut s, now);
    assert_ne!(second.machine.uri, first.machine.uri);
    assert_eq!(second.retries, 1);
    let backed_off = s.pool().get(&first.machine.uri).expect("in the pool");
    assert!(backed_off.is_disabled(now));
    s.job_finished(now, second.id, &failed, Duration::ZERO);
    // Both backed off: wait for the first to come back.
    let Next::Wait(Some(until)) = s.poll_job(now) else {
        panic!("a wait until a machine is back")
    };
    let third = run(&mut s, until);
    s.job_finished(until, third.id, &failed, Duration::ZERO);
    // Three tries: failed for good, as a machine failure.
    let Some(State::NotBuilt(NotBuilt::Failed(f))) = s.state(&drvs[0].0) else {
        panic!("{:?}", s.state(&drvs[0].0))
    };
    assert_eq!(f.class(), FailureClass::Machine);
    assert_eq!(s.poll_job(until), Next::Done);
}

#[test]
fn a_failed_build_fails_its_dependents_and_stops_new_builds_unless_keep_going() {
    let drvs = [
        drv("bad", "x86_64-linux", &[]),
        drv("good", "x86_64-linux", &["slow"]),
        drv("top", "x86_64-linux", &["bad"]),
        drv("slow", "x86_64-linux", &[]),
    ];
    for keep_going in [false, true] {
        let mut s = Schedule::new(
            [drvs[2].0.clone(), drvs[1].0.clone()],
            pool(&[("ssh://m", 1)]),
        );
        s.keep_going = keep_going;
        learn(&mut s, &drvs, &[]);
        let now = Instant::now();
        let job = run(&mut s, now);
        assert_eq!(job.drv_path, path("bad.drv"));
        let failure = Failure::Build(Box::new(BuildResult::new(
            BuildStatus::PermanentFailure,
            "boom",
        )));
        s.job_finished(now, job.id, &Outcome::Failed(failure), Duration::ZERO);
        // The machine is not blamed for a failed build.
        assert!(!s.pool().get("ssh://m").expect("m").is_disabled(now));
        assert_eq!(
            s.state(&path("top.drv")),
            Some(&State::NotBuilt(NotBuilt::DependencyFailed(path(
                "bad.drv"
            ))))
        );
        if keep_going {
            let slow = run(&mut s, now);
            assert_eq!(slow.drv_path, path("slow.drv"));
        } else {
            assert_eq!(s.poll_job(now), Next::Done);
            assert_eq!(
                s.state(&path("slow.drv")),
                Some(&State::NotBuilt(NotBuilt::Stopped))
            );
            assert_eq!(
                s.state(&path("good.drv")),
                Some(&State::NotBuilt(NotBuilt::DependencyFailed(path(
                    "slow.drv"
                ))))
            );
        }
    }
}

#[test]
fn a_system_no_machine_has_fails_with_the_reason_and_an_unreadable_drv_too() {
    let drvs = [drv("arm", "aarch64-linux", &[])];
    let mut s = Schedule::new(
        [drvs[0].0.clone(), path("gone.drv")],
        pool(&[("ssh://m", 1)]),
    );
    s.keep_going = true;
    learn(&mut s, &drvs, &[]);
    assert_eq!(s.poll_job(Instant::now()), Next::Done);
    let Some(State::NotBuilt(NotBuilt::NoMachine(why))) = s.state(&drvs[0].0) else {
        panic!("{:?}", s.state(&drvs[0].0))
    };
    assert!(why.contains("aarch64-linux"), "{why}");
    assert_eq!(
        s.state(&path("gone.drv")),
        Some(&State::NotBuilt(NotBuilt::Unreadable(
            "no such file".into()
        )))
    );
}

#[test]
fn the_features_a_derivation_requires_select_the_machine() {
    let (_, mut d) = drv("kvm", "x86_64-linux", &[]);
    d.env
        .insert("requiredSystemFeatures".into(), "kvm big-parallel".into());
    let step = step_of(&d);
    assert_eq!(step.system, "x86_64-linux");
    assert_eq!(
        step.required_features
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["big-parallel", "kvm"]
    );
}

/// Regression (found by the load run, `benches/load`): a machine that
/// died came back from its backoff with its slots free while the others
/// were busy, so it was chosen first for the very builds that had just
/// failed on it, using up their tries there; and while other jobs ran,
/// the schedule said to wait for one of them to end rather than for the
/// machine's return.
#[test]
fn a_retry_avoids_the_machine_it_failed_on_and_the_wait_ends_when_a_machine_is_back() {
    let drvs = independent(&["a", "b", "c"]);
    let mut s = schedule_all(&drvs, pool(&[("ssh://m1", 1), ("ssh://m2", 1)]));
    let now = Instant::now();
    let a = run(&mut s, now);
    let b = run(&mut s, now);
    assert_eq!(a.machine.uri, "ssh://m1");
    assert_eq!(b.machine.uri, "ssh://m2");
    let failed = lost(Phase::Building, "the connection ended");
    s.job_finished(now, a.id, &failed, Duration::ZERO);
    // b still runs; m1 is backed off: the wait ends when m1 is back.
    let Next::Wait(Some(back)) = s.poll_job(now) else {
        panic!("a wait until m1 is back")
    };
    assert!(back > now);
    // m1 is back, m2 busy: c, never tried, goes to m1; a waits for m2.
    let c = run(&mut s, back);
    assert_eq!(c.drv_path, path("c.drv"));
    assert_eq!(c.machine.uri, "ssh://m1");
    s.job_finished(back, c.id, &built(&c), Duration::ZERO);
    assert_eq!(s.poll_job(back), Next::Wait(None));
    assert_eq!(s.state(&path("a.drv")), Some(&State::Ready));
    s.job_finished(back, b.id, &built(&b), Duration::ZERO);
    let again = run(&mut s, back);
    assert_eq!(again.drv_path, path("a.drv"));
    assert_eq!(again.machine.uri, "ssh://m2");
    assert_eq!(again.retries, 1);
    s.job_finished(back, again.id, &built(&again), Duration::ZERO);
    assert_eq!(s.poll_job(back), Next::Done);
}

/// When the machines a build failed on are the only ones that can build
/// it, its retries go there (after their backoff).
#[test]
fn a_retry_goes_back_to_the_failed_machine_when_no_other_can_build_it() {
    let drvs = [drv("a", "aarch64-linux", &[])];
    let mut arm = machine("ssh://arm", 1);
    arm.systems = ["aarch64-linux".to_owned()].into();
    let mut s = schedule_all(
        &drvs,
        Pool::new([machine("ssh://x86", 1), arm], PoolConfig::default()),
    );
    let now = Instant::now();
    let first = run(&mut s, now);
    assert_eq!(first.machine.uri, "ssh://arm");
    let failed = lost(Phase::Connecting, "refused");
    s.job_finished(now, first.id, &failed, Duration::ZERO);
    let Next::Wait(Some(back)) = s.poll_job(now) else {
        panic!("a wait until arm is back")
    };
    let second = run(&mut s, back);
    assert_eq!(second.machine.uri, "ssh://arm");
    assert_eq!(second.retries, 1);
}

/// A build broken by a machine failure is retried before the builds that
/// were still waiting (found by the load run: with a long queue, the
/// retries of a killed builder's builds started last).
#[test]
fn a_retry_goes_before_the_builds_still_waiting() {
    let drvs = independent(&["a", "b", "c", "d"]);
    let mut s = schedule_all(&drvs, pool(&[("ssh://m1", 1), ("ssh://m2", 1)]));
    let now = Instant::now();
    let a = run(&mut s, now);
    let b = run(&mut s, now);
    assert_eq!(a.machine.uri, "ssh://m1");
    let failed = lost(Phase::Building, "the connection ended");
    s.job_finished(now, a.id, &failed, Duration::ZERO);
    s.job_finished(now, b.id, &built(&b), Duration::ZERO);
    // m2 is free: a, not c or d, goes there.
    let next = run(&mut s, now);
    assert_eq!(next.drv_path, a.drv_path);
    assert_eq!(next.machine.uri, "ssh://m2");
}
