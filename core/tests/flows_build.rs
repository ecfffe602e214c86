//! The remote-build flow (`flows::build`): phases, events, failure classes,
//! cancellation, driven through whole builds without I/O.

use std::time::{Duration, Instant};

use nixwire_core::flows::build::*;
use nixwire_core::flows::copy::CopyError;
use nixwire_core::session::BuildSettings;
use nixwire_core::store::{
    BuildResult, BuildStatus, Derivation, OutputAddressing, OutputName, PathInfo, StorePath,
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

fn info(size: u64, references: &[&str]) -> PathInfo {
    PathInfo {
        nar_size: size,
        references: references.iter().map(|r| path(r)).collect(),
        ..PathInfo::default()
    }
}

/// A derivation with one input source `src` (referring to `lib`) and
/// one input-addressed output `out`.
fn drv() -> Derivation {
    let mut drv = Derivation::default();
    drv.input_srcs.insert(path("src"));
    drv.outputs.insert(
        OutputName::out(),
        OutputAddressing::InputAddressed(path("out")),
    );
    drv.platform = "x86_64-linux".into();
    drv.builder = "/bin/sh".into();
    drv
}

fn build() -> RemoteBuild {
    RemoteBuild::new(
        path("x.drv"),
        &drv(),
        vec![path("dep-out")],
        BuildSettings::default(),
        Some(1000),
    )
}

fn phases(b: &mut RemoteBuild) -> Vec<Phase> {
    std::iter::from_fn(|| b.poll_event())
        .map(|Event::Phase { phase, .. }| phase)
        .collect()
}

/// Drives a build up to the build request, the machine holding `lib`
/// already.
fn to_build(b: &mut RemoteBuild, now: Instant) {
    assert_eq!(b.want(), Want::Connect);
    b.connected(now);
    let Want::PathInfos {
        at: Side::Local,
        paths,
    } = b.want()
    else {
        panic!("the inputs' infos, not {:?}", b.want())
    };
    assert_eq!(paths, vec![path("dep-out"), path("src")]);
    b.path_infos(
        now,
        vec![
            (path("src"), info(10, &["lib"])),
            (path("dep-out"), info(20, &[])),
        ],
    );
    assert_eq!(
        b.want(),
        Want::PathInfos {
            at: Side::Local,
            paths: vec![path("lib")]
        }
    );
    b.path_infos(now, vec![(path("lib"), info(30, &[]))]);
    let Want::ValidPaths {
        at: Side::Remote,
        paths,
    } = b.want()
    else {
        panic!("the machine's valid paths, not {:?}", b.want())
    };
    assert_eq!(paths.len(), 3);
    b.valid_paths(now, vec![path("lib")]);
    let Want::Transfer {
        from: Side::Local,
        paths,
    } = b.want()
    else {
        panic!("a transfer, not {:?}", b.want())
    };
    let names: Vec<&str> = paths.iter().map(|(p, _)| p.name()).collect();
    assert_eq!(names, ["dep-out", "src"]);
    b.transferred(now);
    let Want::Build { drv, .. } = b.want() else {
        panic!("the build, not {:?}", b.want())
    };
    // The input derivations' outputs are sent as input sources.
    assert_eq!(drv.input_srcs, vec![path("dep-out"), path("src")]);
}

#[test]
fn a_build_goes_through_every_phase_and_brings_its_outputs_back() {
    let t0 = Instant::now();
    let mut b = build();
    to_build(&mut b, t0);
    let t1 = t0 + Duration::from_secs(2);
    b.built(t1, BuildResult::new(BuildStatus::Built, ""));
    assert_eq!(
        b.want(),
        Want::PathInfos {
            at: Side::Remote,
            paths: vec![path("out")]
        }
    );
    b.path_infos(t1, vec![(path("out"), info(100, &["lib"]))]);
    b.path_infos(t1, vec![(path("lib"), info(30, &[]))]);
    b.valid_paths(t1, vec![path("lib")]);
    let Want::Transfer {
        from: Side::Remote,
        paths,
    } = b.want()
    else {
        panic!("the outputs' transfer, not {:?}", b.want())
    };
    assert_eq!(paths.len(), 1);
    b.transferred(t1 + Duration::from_millis(5));
    assert_eq!(b.want(), Want::Finished);
    let Some(Outcome::Built {
        outputs,
        sent,
        received,
        ..
    }) = b.outcome()
    else {
        panic!("built, not {:?}", b.outcome())
    };
    assert_eq!(outputs.get(&OutputName::out()), Some(&path("out")));
    assert_eq!((*sent, *received), (30, 100));
    assert_eq!(
        phases(&mut b),
        [
            Phase::SendingInputs,
            Phase::Building,
            Phase::ReceivingOutputs,
            Phase::Done
        ]
    );
    let building = b.timings().iter().find(|(p, _)| *p == Phase::Building);
    assert_eq!(building.map(|(_, d)| *d), Some(Duration::from_secs(2)));
}

#[test]
fn a_failed_build_is_a_build_failure_that_keeps_the_connection() {
    let now = Instant::now();
    let mut b = build();
    to_build(&mut b, now);
    b.built(now, BuildResult::new(BuildStatus::PermanentFailure, "boom"));
    let Some(Outcome::Failed(f)) = b.outcome() else {
        panic!("failed, not {:?}", b.outcome())
    };
    assert_eq!(f.class(), FailureClass::Build);
    assert!(!f.discards_connection());
    assert!(f.to_string().contains("boom"), "{f}");
}

#[test]
fn a_transport_failure_names_its_phase_and_blames_the_machine() {
    let now = Instant::now();
    let mut b = build();
    b.connected(now);
    b.failed(now, "ssh exited");
    let Some(Outcome::Failed(f)) = b.outcome() else {
        panic!("failed, not {:?}", b.outcome())
    };
    assert_eq!(f.class(), FailureClass::Machine);
    assert!(f.discards_connection());
    assert_eq!(
        f.to_string(),
        "the connection failed while sending inputs: ssh exited"
    );
    // Nothing moves a finished build.
    b.built(now, BuildResult::new(BuildStatus::Built, ""));
    assert!(matches!(b.outcome(), Some(Outcome::Failed(_))));
}

#[test]
fn cancel_works_in_every_phase() {
    let now = Instant::now();
    for steps in 0..3 {
        let mut b = build();
        if steps >= 1 {
            b.connected(now);
        }
        if steps >= 2 {
            b.path_infos(
                now,
                vec![(path("src"), info(1, &[])), (path("dep-out"), info(1, &[]))],
            );
        }
        let phase = b.phase();
        b.cancel(now);
        assert_eq!(
            b.outcome(),
            Some(&Outcome::Failed(Failure::Cancelled { phase }))
        );
        assert_eq!(b.want(), Want::Finished);
    }
}

#[test]
fn outputs_over_the_limit_are_refused_before_download_without_blaming_the_machine() {
    let now = Instant::now();
    let mut b = build();
    to_build(&mut b, now);
    b.built(now, BuildResult::new(BuildStatus::Built, ""));
    b.path_infos(now, vec![(path("out"), info(5000, &[]))]);
    b.valid_paths(now, vec![]);
    let Some(Outcome::Failed(f)) = b.outcome() else {
        panic!("failed, not {:?}", b.outcome())
    };
    assert!(
        matches!(f, Failure::OutputsRefused(CopyError::TooLarge { .. })),
        "{f:?}"
    );
    assert_eq!(f.class(), FailureClass::Build);
}

#[test]
fn an_input_missing_here_is_local_and_an_output_missing_there_is_the_machine() {
    let now = Instant::now();
    let mut b = build();
    b.connected(now);
    b.path_infos(now, vec![(path("src"), info(1, &[]))]);
    let Some(Outcome::Failed(f)) = b.outcome() else {
        panic!("failed, not {:?}", b.outcome())
    };
    assert_eq!(f.class(), FailureClass::Local);
    assert!(f.to_string().contains("dep-out"), "{f}");

    let mut b = build();
    to_build(&mut b, now);
    b.built(now, BuildResult::new(BuildStatus::Built, ""));
    b.path_infos(now, vec![]);
    let Some(Outcome::Failed(f)) = b.outcome() else {
        panic!("failed, not {:?}", b.outcome())
    };
    assert_eq!(f.class(), FailureClass::Machine);
}

#[test]
fn a_build_without_inputs_asks_no_empty_question() {
    let now = Instant::now();
    let mut d = drv();
    d.input_srcs.clear();
    let mut b = RemoteBuild::new(path("x.drv"), &d, vec![], BuildSettings::default(), None);
    b.connected(now);
    assert!(matches!(b.want(), Want::Build { .. }), "{:?}", b.want());
}

#[test]
fn answers_out_of_turn_fail_the_build_as_the_hosts_fault() {
    let now = Instant::now();
    let mut b = build();
    b.built(now, BuildResult::new(BuildStatus::Built, ""));
    let Some(Outcome::Failed(f)) = b.outcome() else {
        panic!("failed, not {:?}", b.outcome())
    };
    assert_eq!(f.class(), FailureClass::Local);
}
