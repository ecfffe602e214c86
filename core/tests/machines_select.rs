//! Machine selection: eligibility, ordering and its tie-breaks, job slots,
//! backoff and reloads; quickcheck over random operation sequences.
#![cfg(feature = "machines")]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nixwire_core::machines::Machine;
use nixwire_core::machines::select::{
    BuiltinSystem, JobOutcome, Lease, Ordering, Pool, PoolConfig, Rejection, Step,
};
use quickcheck::{Arbitrary, Gen, QuickCheck};

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn machine(uri: &str, systems: &[&str], max_jobs: u32, speed: f32) -> Machine {
    Machine {
        max_jobs,
        speed_factor: speed,
        ..Machine::with_defaults(uri, set(systems))
    }
}

fn acquire(pool: &mut Pool, step: &Step, now: Instant) -> Lease {
    pool.acquire(step, now)
        .unwrap_or_else(|e| panic!("no machine: {e}"))
}

const X86: &str = "x86_64-linux";

#[test]
fn system_must_match_and_builtin_follows_the_config() {
    let machines = [
        machine("a", &["aarch64-linux"], 1, 1.0),
        machine("b", &[X86], 1, 1.0),
    ];
    let now = Instant::now();
    let nix = Pool::new(machines.clone(), PoolConfig::default());
    assert_eq!(
        nix.select(&Step::new(X86), now)
            .map(|s| s.machine().uri.as_str()),
        Ok("ssh://b")
    );
    // Nix: every machine takes `builtin`; the first wins the tie.
    assert_eq!(
        nix.select(&Step::new("builtin"), now)
            .map(|s| s.machine().uri.as_str()),
        Ok("ssh://a")
    );
    // Hydra: `builtin` is the coordinator's system.
    let hydra = Pool::new(
        machines,
        PoolConfig {
            builtin: BuiltinSystem::As(X86.into()),
            ..PoolConfig::default()
        },
    );
    assert_eq!(
        hydra
            .select(&Step::new("builtin"), now)
            .map(|s| s.machine().uri.as_str()),
        Ok("ssh://b")
    );
    let none = hydra.select(&Step::new("riscv64-linux"), now).err();
    let none = none.unwrap_or_else(|| panic!("riscv64 should have no machine"));
    assert!(none.is_unsupported());
    assert_eq!(
        none.rejections[0].1,
        Rejection::System {
            wanted: "riscv64-linux".into()
        }
    );
}

#[test]
fn features_required_must_be_supported_or_mandatory() {
    let m = Machine {
        supported_features: set(&["kvm"]),
        mandatory_features: set(&["big"]),
        ..machine("a", &[X86], 2, 1.0)
    };
    let pool = Pool::new([m], PoolConfig::default());
    let now = Instant::now();
    // Mandatory `big` not required.
    assert!(matches!(
        pool.select(&Step::new(X86).with_features(["kvm"]), now).err().map(|e| e.rejections[0].1.clone()),
        Some(Rejection::MandatoryNotRequired(f)) if f == set(&["big"])
    ));
    // `big` is only mandatory, yet counts as supported (Nix's allSupported).
    assert!(
        pool.select(&Step::new(X86).with_features(["big"]), now)
            .is_ok()
    );
    assert!(
        pool.select(&Step::new(X86).with_features(["big", "kvm"]), now)
            .is_ok()
    );
    assert!(matches!(
        pool.select(&Step::new(X86).with_features(["big", "gpu"]), now).err().map(|e| e.rejections[0].1.clone()),
        Some(Rejection::MissingFeatures(f)) if f == set(&["gpu"])
    ));
}

#[test]
fn mandatory_local_is_met_by_prefer_local_build_only_with_hydras_rule() {
    let m = Machine {
        mandatory_features: set(&["local"]),
        ..machine("localhost", &[X86], 2, 1.0)
    };
    let now = Instant::now();
    let step = Step {
        prefer_local_build: true,
        ..Step::new(X86)
    };
    let nix = Pool::new([m.clone()], PoolConfig::default());
    assert!(nix.select(&step, now).is_err());
    let hydra = Pool::new([m], PoolConfig::hydra(X86));
    assert!(hydra.select(&step, now).is_ok());
    assert!(hydra.select(&Step::new(X86), now).is_err());
}

/// hydra#484: with speed factor 100, rounding sends everything to the fast
/// machine; Nix's float ordering spreads the work.
#[test]
fn hydra_484_float_ordering_spreads_rounded_ordering_packs() {
    let machines = [
        machine("slow", &[X86], 50, 1.0),
        machine("fast", &[X86], 50, 100.0),
    ];
    let now = Instant::now();
    let step = Step::new(X86);

    let mut nix = Pool::new(machines.clone(), PoolConfig::default());
    let mut leases = Vec::new();
    for _ in 0..10 {
        leases.push(acquire(&mut nix, &step, now));
    }
    let slow = nix.get("ssh://slow").map(|s| s.current_jobs());
    assert!(
        slow.is_some_and(|n| n > 0),
        "Nix ordering used slow {slow:?} times"
    );

    let mut hydra = Pool::new(
        machines,
        PoolConfig {
            ordering: Ordering::HydraRounded,
            ..PoolConfig::default()
        },
    );
    for _ in 0..10 {
        leases.push(acquire(&mut hydra, &step, now));
    }
    assert_eq!(hydra.get("ssh://fast").map(|s| s.current_jobs()), Some(10));
    assert_eq!(hydra.get("ssh://slow").map(|s| s.current_jobs()), Some(0));
    drop(leases);
}

#[test]
fn nix_ordering_tie_breaks() {
    let now = Instant::now();
    let step = Step::new(X86);
    // 1. load/speed: a has 1/2 = 0.5, b has 0/1 = 0 -> b.
    let mut pool = Pool::new(
        [machine("a", &[X86], 4, 2.0), machine("b", &[X86], 4, 1.0)],
        PoolConfig::default(),
    );
    let _a = acquire(&mut pool, &step, now); // both 0 -> faster a
    assert_eq!(pool.get("ssh://a").map(|s| s.current_jobs()), Some(1));
    assert_eq!(
        pool.select(&step, now).map(|s| s.machine().uri.as_str()),
        Ok("ssh://b")
    );

    // 2. equal load/speed (2/2 = 1/1): higher speed wins.
    let mut pool = Pool::new(
        [
            machine("slow", &[X86], 4, 1.0),
            machine("fast", &[X86], 4, 2.0),
        ],
        PoolConfig::default(),
    );
    let _l1 = acquire(&mut pool, &step, now); // fast (0,0 -> speed)
    let _l2 = acquire(&mut pool, &step, now); // slow (0.5 vs 0)
    let _l3 = acquire(&mut pool, &step, now); // fast (0.5 vs 1 -> fast)
    assert_eq!(pool.get("ssh://fast").map(|s| s.current_jobs()), Some(2));
    assert_eq!(pool.get("ssh://slow").map(|s| s.current_jobs()), Some(1));
    // Now fast 2/2 = 1 and slow 1/1 = 1: fast by speed.
    assert_eq!(
        pool.select(&step, now).map(|s| s.machine().uri.as_str()),
        Ok("ssh://fast")
    );

    // 4. everything equal: first in file order.
    let pool = Pool::new(
        [
            machine("first", &[X86], 4, 1.0),
            machine("second", &[X86], 4, 1.0),
        ],
        PoolConfig::default(),
    );
    assert_eq!(
        pool.select(&step, now).map(|s| s.machine().uri.as_str()),
        Ok("ssh://first")
    );
}

#[test]
fn nix_prefers_fewer_jobs_hydra_prefers_more_among_equals() {
    // Two machines of speed 4, one with 1 job and one with none: their
    // rounded loads (0.25 -> 0 and 0 -> 0) and speeds tie, so Hydra's third
    // key picks the busier one, while Nix's unrounded load picks the idle one.
    let now = Instant::now();
    let step = Step::new(X86);
    let machines = [
        machine("one", &[X86], 4, 4.0),
        machine("two", &[X86], 4, 4.0),
    ];
    let mut hydra = Pool::new(
        machines.clone(),
        PoolConfig {
            ordering: Ordering::HydraRounded,
            ..PoolConfig::default()
        },
    );
    let _l = acquire(&mut hydra, &step, now); // `one`, first of equals
    assert_eq!(
        hydra.select(&step, now).map(|s| s.machine().uri.as_str()),
        Ok("ssh://one")
    );
    let mut nix = Pool::new(machines, PoolConfig::default());
    let _l = acquire(&mut nix, &step, now);
    assert_eq!(
        nix.select(&step, now).map(|s| s.machine().uri.as_str()),
        Ok("ssh://two")
    );
}

#[test]
fn slots_are_never_overcommitted_and_come_back_on_release() {
    let now = Instant::now();
    let step = Step::new(X86);
    let mut pool = Pool::new(
        [machine("a", &[X86], 2, 1.0), machine("z", &[X86], 0, 1.0)],
        PoolConfig::default(),
    );
    let l1 = acquire(&mut pool, &step, now);
    let _l2 = acquire(&mut pool, &step, now);
    let e = pool
        .acquire(&step, now)
        .err()
        .unwrap_or_else(|| panic!("should be full"));
    assert!(!e.is_unsupported());
    assert_eq!(
        e.rejections,
        vec![
            (
                "ssh://a".to_owned(),
                Rejection::Busy {
                    current_jobs: 2,
                    max_jobs: 2
                }
            ),
            (
                "ssh://z".to_owned(),
                Rejection::Busy {
                    current_jobs: 0,
                    max_jobs: 0
                }
            ),
        ]
    );
    assert_eq!(pool.release(l1, JobOutcome::Finished, now), Ok(()));
    assert_eq!(
        pool.get("ssh://a")
            .map(|s| (s.current_jobs(), s.steps_done())),
        Some((1, 1))
    );
    assert!(pool.acquire(&step, now).is_ok());
}

#[test]
fn backoff_follows_hydras_schedule_and_caps() {
    let t0 = Instant::now();
    let mut pool = Pool::new([machine("a", &[X86], 2, 1.0)], PoolConfig::default());
    let jitter = Duration::from_secs(7);
    let mut now = t0;
    let mut delays = Vec::new();
    for _ in 0..6 {
        let until = pool.transport_failed("ssh://a", now, jitter).ok().flatten();
        let until = until.unwrap_or_else(|| panic!("no backoff"));
        delays.push(until.duration_since(now).as_secs());
        assert!(pool.select(&Step::new(X86), now).is_err());
        assert!(pool.select(&Step::new(X86), until).is_ok());
        now = until + Duration::from_secs(1);
    }
    assert_eq!(delays, [67, 187, 547, 1627, 1627, 1627]);
    assert_eq!(
        pool.next_wakeup(t0),
        pool.get("ssh://a").and_then(|s| s.disabled_until())
    );

    pool.handshake_succeeded("ssh://a")
        .unwrap_or_else(|e| panic!("{e}"));
    let state = pool
        .get("ssh://a")
        .cloned()
        .unwrap_or_else(|| panic!("gone"));
    assert_eq!(
        (state.consecutive_failures(), state.disabled_until()),
        (0, None)
    );
}

#[test]
fn failures_within_30s_count_once() {
    let t0 = Instant::now();
    let mut pool = Pool::new([machine("a", &[X86], 2, 1.0)], PoolConfig::default());
    let first = pool
        .transport_failed("ssh://a", t0, Duration::ZERO)
        .ok()
        .flatten();
    let again = pool
        .transport_failed("ssh://a", t0 + Duration::from_secs(30), Duration::ZERO)
        .ok()
        .flatten();
    assert_eq!(first, again);
    assert_eq!(
        pool.get("ssh://a").map(|s| s.consecutive_failures()),
        Some(1)
    );
    pool.transport_failed("ssh://a", t0 + Duration::from_secs(31), Duration::ZERO)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        pool.get("ssh://a").map(|s| s.consecutive_failures()),
        Some(2)
    );
}

#[test]
fn a_failed_build_never_disables_a_transport_failure_does() {
    let now = Instant::now();
    let step = Step::new(X86);
    let mut pool = Pool::new([machine("a", &[X86], 2, 1.0)], PoolConfig::default());
    let lease = acquire(&mut pool, &step, now);
    assert_eq!(pool.release(lease, JobOutcome::Finished, now), Ok(()));
    assert!(pool.select(&step, now).is_ok());
    let lease = acquire(&mut pool, &step, now);
    let outcome = JobOutcome::TransportFailed {
        jitter: Duration::ZERO,
    };
    assert_eq!(pool.release(lease, outcome, now), Ok(()));
    let e = pool
        .select(&step, now)
        .err()
        .unwrap_or_else(|| panic!("should be backed off"));
    assert!(matches!(
        e.rejections[0].1,
        Rejection::Disabled { failures: 1, .. }
    ));
    assert!(!e.is_unsupported());
}

#[test]
fn reload_keeps_state_of_machines_still_listed() {
    let now = Instant::now();
    let step = Step::new(X86);
    let mut pool = Pool::new(
        [machine("a", &[X86], 2, 1.0), machine("b", &[X86], 2, 1.0)],
        PoolConfig::default(),
    );
    let lease_a = acquire(&mut pool, &step, now);
    let lease_b = acquire(&mut pool, &step, now);
    assert_eq!(lease_b.uri(), "ssh://b");
    pool.transport_failed("ssh://a", now, Duration::ZERO)
        .unwrap_or_else(|e| panic!("{e}"));

    // New file: a changed (more jobs), b dropped, c new.
    pool.reload([machine("c", &[X86], 1, 1.0), machine("a", &[X86], 5, 1.0)]);
    let order: Vec<_> = pool
        .machines()
        .iter()
        .map(|s| (s.machine().uri.as_str(), s.in_file()))
        .collect();
    assert_eq!(
        order,
        [("ssh://c", true), ("ssh://a", true), ("ssh://b", false)]
    );
    let a = pool
        .get("ssh://a")
        .cloned()
        .unwrap_or_else(|| panic!("a gone"));
    assert_eq!(
        (
            a.current_jobs(),
            a.machine().max_jobs,
            a.consecutive_failures()
        ),
        (1, 5, 1)
    );
    // b is unselectable but its lease still releases.
    assert_eq!(
        pool.select(&step, now).map(|s| s.machine().uri.as_str()),
        Ok("ssh://c")
    );
    assert_eq!(pool.release(lease_b, JobOutcome::Finished, now), Ok(()));
    assert_eq!(pool.release(lease_a, JobOutcome::Finished, now), Ok(()));
    // b comes back with its statistics.
    pool.reload([machine("b", &[X86], 2, 1.0)]);
    assert_eq!(
        pool.get("ssh://b").map(|s| (s.in_file(), s.steps_done())),
        Some((true, 1))
    );
}

#[test]
fn duplicate_uris_keep_the_first_position_and_the_last_definition() {
    let pool = Pool::new(
        [
            machine("a", &[X86], 1, 1.0),
            machine("b", &[X86], 1, 1.0),
            machine("a", &[X86], 9, 1.0),
        ],
        PoolConfig::default(),
    );
    let v: Vec<_> = pool
        .machines()
        .iter()
        .map(|s| (s.machine().uri.as_str(), s.machine().max_jobs))
        .collect();
    assert_eq!(v, [("ssh://a", 9), ("ssh://b", 1)]);
}

#[test]
fn empty_pool_explains_itself() {
    let pool = Pool::new([], PoolConfig::default());
    let e = pool
        .select(&Step::new(X86), Instant::now())
        .err()
        .unwrap_or_else(|| panic!("empty"));
    assert_eq!(e.to_string(), "no machines are configured");
}

// --- quickcheck -------------------------------------------------------------

const SYSTEMS: &[&str] = &["x86_64-linux", "aarch64-linux"];
const FEATURES: &[&str] = &["kvm", "big", "local"];

fn subset(g: &mut Gen, items: &[&str]) -> BTreeSet<String> {
    items
        .iter()
        .filter(|_| bool::arbitrary(g))
        .map(|s| (*s).to_owned())
        .collect()
}

fn universe(g: &mut Gen) -> Vec<Machine> {
    let n = 1 + usize::arbitrary(g) % 5;
    (0..n)
        .map(|i| Machine {
            max_jobs: u32::arbitrary(g) % 4,
            speed_factor: *g.choose(&[0.5f32, 1.0, 2.0, 3.0, 100.0]).unwrap_or(&1.0),
            supported_features: subset(g, FEATURES),
            mandatory_features: if u8::arbitrary(g) % 3 == 0 {
                subset(g, FEATURES)
            } else {
                BTreeSet::new()
            },
            ..Machine::with_defaults(&format!("m{i}"), subset(g, SYSTEMS))
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Acquire(Step),
    Release {
        lease: usize,
        transport: bool,
        jitter: u8,
    },
    Fail {
        machine: usize,
        jitter: u8,
    },
    Handshake {
        machine: usize,
    },
    Advance {
        secs: u16,
    },
    Reload {
        keep: Vec<bool>,
    },
}

fn arbitrary_step(g: &mut Gen) -> Step {
    let mut systems: Vec<&str> = SYSTEMS.to_vec();
    systems.push("builtin");
    Step {
        system: (*g.choose(&systems).unwrap_or(&"builtin")).to_owned(),
        required_features: subset(g, FEATURES),
        prefer_local_build: bool::arbitrary(g),
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    machines: Vec<Machine>,
    config: PoolConfig,
    ops: Vec<Op>,
}

impl Arbitrary for Scenario {
    fn arbitrary(g: &mut Gen) -> Self {
        let machines = universe(g);
        let config = match u8::arbitrary(g) % 3 {
            0 => PoolConfig::default(),
            1 => PoolConfig::hydra("x86_64-linux"),
            _ => PoolConfig {
                ordering: Ordering::HydraRounded,
                ..PoolConfig::default()
            },
        };
        let n = usize::arbitrary(g) % 60;
        let ops = (0..n)
            .map(|_| match u8::arbitrary(g) % 10 {
                0..=3 => Op::Acquire(arbitrary_step(g)),
                4 | 5 => Op::Release {
                    lease: usize::arbitrary(g),
                    transport: u8::arbitrary(g) % 4 == 0,
                    jitter: u8::arbitrary(g) % 30,
                },
                6 => Op::Fail {
                    machine: usize::arbitrary(g),
                    jitter: u8::arbitrary(g) % 30,
                },
                7 => Op::Handshake {
                    machine: usize::arbitrary(g),
                },
                8 => Op::Advance {
                    secs: u16::arbitrary(g) % 2000,
                },
                _ => Op::Reload {
                    keep: (0..machines.len()).map(|_| bool::arbitrary(g)).collect(),
                },
            })
            .collect();
        Self {
            machines,
            config,
            ops,
        }
    }
}

/// Eligibility written independently of the pool, from the rules.
fn eligible(config: &PoolConfig, m: &Machine, step: &Step) -> bool {
    let system = match (&config.builtin, step.system.as_str()) {
        (BuiltinSystem::AnyMachine, "builtin") => true,
        (BuiltinSystem::As(s), "builtin") => m.systems.contains(s),
        (_, s) => m.systems.contains(s),
    };
    let mandatory = m.mandatory_features.iter().all(|f| {
        step.required_features.contains(f)
            || (config.local_feature_rule && f == "local" && step.prefer_local_build)
    });
    system && mandatory && m.all_supported(&step.required_features)
}

fn run(scenario: Scenario) -> Result<(), String> {
    let Scenario {
        machines,
        config,
        ops,
    } = scenario;
    let mut pool = Pool::new(machines.clone(), config.clone());
    let mut now = Instant::now();
    let mut leases: Vec<Lease> = Vec::new();
    for op in ops {
        match op {
            Op::Acquire(step) => match pool.acquire(&step, now) {
                Ok(lease) => {
                    let state = pool.get(lease.uri()).ok_or("lease for unknown machine")?;
                    let m = state.machine();
                    if !eligible(&config, m, &step) {
                        return Err(format!("{} cannot run {step:?}", m.uri));
                    }
                    if !state.in_file() || state.is_disabled(now) {
                        return Err(format!("{} chosen while removed or disabled", m.uri));
                    }
                    if state.current_jobs() > m.max_jobs {
                        return Err(format!("{} over max jobs", m.uri));
                    }
                    // The choice is minimal under the configured ordering:
                    // no other free candidate is strictly better.
                    if config.ordering == Ordering::Nix {
                        let before = (state.current_jobs() - 1) as f32 / m.speed_factor;
                        for other in pool.machines() {
                            let om = other.machine();
                            let free = other.in_file()
                                && !other.is_disabled(now)
                                && other.current_jobs() < om.max_jobs
                                && eligible(&config, om, &step);
                            if free
                                && om.uri != m.uri
                                && (other.current_jobs() as f32 / om.speed_factor) < before
                            {
                                return Err(format!(
                                    "{} chosen over less loaded {}",
                                    m.uri, om.uri
                                ));
                            }
                        }
                    }
                    leases.push(lease);
                }
                Err(e) => {
                    // Completeness: really no machine could take it.
                    for state in pool.machines() {
                        let m = state.machine();
                        if state.in_file()
                            && !state.is_disabled(now)
                            && state.current_jobs() < m.max_jobs
                            && eligible(&config, m, &step)
                        {
                            return Err(format!("{} could run {step:?} but: {e}", m.uri));
                        }
                    }
                }
            },
            Op::Release {
                lease,
                transport,
                jitter,
            } => {
                if !leases.is_empty() {
                    let lease = leases.swap_remove(lease % leases.len());
                    let outcome = if transport {
                        JobOutcome::TransportFailed {
                            jitter: Duration::from_secs(jitter.into()),
                        }
                    } else {
                        JobOutcome::Finished
                    };
                    pool.release(lease, outcome, now)
                        .map_err(|e| e.to_string())?;
                }
            }
            Op::Fail { machine, jitter } => {
                let uri = machines[machine % machines.len()].uri.clone();
                pool.transport_failed(&uri, now, Duration::from_secs(jitter.into()))
                    .map_err(|e| e.to_string())?;
            }
            Op::Handshake { machine } => {
                let uri = machines[machine % machines.len()].uri.clone();
                pool.handshake_succeeded(&uri).map_err(|e| e.to_string())?;
            }
            Op::Advance { secs } => now += Duration::from_secs(secs.into()),
            Op::Reload { keep } => {
                let kept = machines
                    .iter()
                    .zip(keep)
                    .filter(|(_, k)| *k)
                    .map(|(m, _)| m.clone());
                pool.reload(kept);
            }
        }
        // Slots add up to the leases held.
        let held: u32 = pool.machines().iter().map(|s| s.current_jobs()).sum();
        if held as usize != leases.len() {
            return Err(format!(
                "{held} slots taken but {} leases held",
                leases.len()
            ));
        }
        for s in pool.machines() {
            if s.current_jobs() > s.machine().max_jobs {
                return Err(format!("{} over max jobs", s.machine().uri));
            }
        }
    }
    Ok(())
}

fn invariants_hold(scenario: Scenario) -> bool {
    match run(scenario) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("{e}");
            false
        }
    }
}

#[test]
fn selection_invariants_hold_under_random_operations() {
    QuickCheck::new()
        .tests(3000)
        .quickcheck(invariants_hold as fn(Scenario) -> bool);
}

#[test]
fn avoided_machines_are_passed_over_only_while_another_could_take_the_step() {
    let mut pool = Pool::new(
        [
            machine("ssh://a", &["x86_64-linux"], 2, 1.0),
            machine("ssh://b", &["x86_64-linux"], 1, 1.0),
        ],
        PoolConfig::default(),
    );
    let now = Instant::now();
    let step = Step::new("x86_64-linux");
    let avoid = set(&["ssh://a"]);
    // Without avoiding, a (first of equals) would be chosen.
    assert_eq!(pool.select(&step, now).expect("a").machine().uri, "ssh://a");
    let lease = pool.acquire_avoiding(&step, now, &avoid).expect("b");
    assert_eq!(lease.uri(), "ssh://b");
    // b is busy: a is free, but b frees up later, so the step waits.
    let no = pool
        .acquire_avoiding(&step, now, &avoid)
        .expect_err("waits for b");
    assert!(!no.is_unsupported());
    assert!(
        no.rejections
            .contains(&("ssh://a".to_owned(), Rejection::Avoided))
    );
    // A step only a can build goes to a all the same.
    let arm = Step::new("aarch64-linux");
    let mut pool2 = Pool::new(
        [
            machine("ssh://a", &["aarch64-linux"], 1, 1.0),
            machine("ssh://b", &["x86_64-linux"], 1, 1.0),
        ],
        PoolConfig::default(),
    );
    let lease2 = pool2.acquire_avoiding(&arm, now, &avoid).expect("a");
    assert_eq!(lease2.uri(), "ssh://a");
    pool.release(lease, JobOutcome::Finished, now)
        .expect("known");
    pool2
        .release(lease2, JobOutcome::Finished, now)
        .expect("known");
}
