//! Round trips through the wire messages, and malformed messages refused.

use super::*;

const SPEC: &str = r#"
name = "every family"
priority = 2
[dataset]
path = "imgs"
labels = "l.csv"
limit = 5
layout = "classes"
unlisted = "unlabelled"
[[models]]
path = "m.onnx"
name = "m"
[[families]]
kind = "crop"
max_shift = 2
resample = { filter = "bilinear", antialias = false }
[[families]]
kind = "embed"
size = 100
max_shift = 4
step = 2
background = "inpaint"
crop = "none"
[[families]]
kind = "diagonal"
base = "embed"
size = 90
crop = "none"
from = -4
to = 4
[[families]]
kind = "diagonal"
steps = 3
resize = 240
resample = { filter = "bicubic", compat = "pillow" }
[[families]]
kind = "crop"
max_shift = 1
resize = 256
resample = { compat = "torchvision" }
[[families]]
kind = "circular"
max_shift = 3
[[families]]
kind = "scale"
base = 200
background = "mean"
[[families]]
kind = "random_pairs"
pairs = 3
seed = 9
max_offset = 20
[[families]]
kind = "sequence"
path = "frames"
frames = 4
stride = 2
compare = "first"
labels = "s.csv"
limit = 2
[[families]]
kind = "rotate"
from = -3.0
to = 3.0
step = 0.5
resize = 250
[[families]]
kind = "shear"
from = -6.0
to = 6.0
step = 2.0
resize = 240
[[families]]
kind = "layers"
shifts = [1, 3, 32]
resize = 300
resample = { filter = "bilinear", antialias = true, compat = "pillow" }
[[families]]
kind = "radius"
max_radius = 5
resize = 260
[metrics]
baseline = "m"
families = []
[[published]]
model = "vgg"
family = "crop"
metric = "mac"
value = 0.5
source = "paper"
[shard]
images = 7
[run]
batch_size = 8
keep_probs = true
jpeg_decoder = "libjpeg-turbo"
"#;

fn sweep() -> ResolvedSweep {
    let card = ModelCard {
        name: "m".into(),
        input_name: "x".into(),
        output_name: "y".into(),
        input_size: 224,
        normalize: Normalize { mean: [1.0, 2.0, 3.0], std: [4.0, 5.0, 6.0] },
        num_classes: 3,
        output: OutputKind::Probabilities,
        classes: vec!["a".into(), "b".into(), "c".into()],
        wnids: vec![],
        untrained: true,
        source: "s".into(),
        license: "l".into(),
        antialiased: Some(jagged_domain::spec::Antialiased { filter: 5, parent_sha256: "ab".into(), parent: "p".into() }),
    };
    let item = |i: u32| ImageRef { name: format!("{i}.png"), key: format!("k{i}"), label: i.is_multiple_of(2).then_some(i as i32), frames: vec![] };
    let seq = ImageRef { name: "s0".into(), key: "f0".into(), label: None, frames: vec!["f0".into(), "f1".into()] };
    ResolvedSweep {
        spec: SweepSpec::from_toml(SPEC).unwrap(),
        models: vec![ResolvedModel {
            name: "m".into(),
            key: "blobs/sha256/x".into(),
            card,
            structure: Some(Structure { factor: 32, subsampling_ops: 5, blurred_ops: 1 }),
        }],
        images: (0..3).map(item).collect(),
        family_items: [(6u32, vec![seq])].into_iter().collect(),
    }
}

#[test]
fn sweeps_cross_the_wire_unchanged() {
    let s = sweep();
    let wire = pb::Sweep::from(s.clone());
    assert_eq!(ResolvedSweep::try_from(wire.clone()).unwrap(), s);
    // Through the bytes too.
    use prost::Message;
    let back = pb::Sweep::decode(wire.encode_to_vec().as_slice()).unwrap();
    assert_eq!(ResolvedSweep::try_from(back).unwrap(), s);
    // An absent selection is not an empty one.
    let mut none = s.clone();
    none.spec.metrics.families = None;
    assert_eq!(ResolvedSweep::try_from(pb::Sweep::from(none.clone())).unwrap(), none);
}

#[test]
fn tasks_and_statuses_cross_the_wire_unchanged() {
    let s = sweep();
    let mut last = None;
    for (f, family) in s.spec.families.iter().enumerate() {
        let task = ShardTask {
            shard_id: 4,
            lease_epoch: 9,
            attempt: 2,
            sweep_id: 1,
            model: s.models[0].clone(),
            family_index: f as u32,
            family: family.clone(),
            items: vec![TaskItem { index: 7, image: s.images[1].clone(), reference: Some(3) }],
            batch_size: 8,
            keep_probs: true,
            jpeg_decoder: jagged_domain::image::JpegDecoder::LibjpegTurbo,
            lease_deadline_ms: 123,
            ring: 2,
            widen: (f % 2 == 1).then(|| jagged_domain::task::WidenFrom {
                family: s.spec.families[0].clone(),
                parts: vec![("parts/a.parquet".into(), "ab".repeat(32)), ("parts/b.parquet".into(), "cd".repeat(32))],
            }),
        };
        assert_eq!(ShardTask::try_from(pb::ShardTask::from(task.clone())).unwrap(), task);
        last = Some(task);
    }
    let widen = Some(jagged_domain::task::WidenFrom { family: s.spec.families[0].clone(), parts: vec![] });
    let mut wire = pb::ShardTask::from(ShardTask { widen, ..last.unwrap() });
    wire.widen.as_mut().unwrap().family = None;
    assert_eq!(ShardTask::try_from(wire).unwrap_err().field, "Widen.family");
    let st = SweepStatus {
        sweep_id: 3,
        name: "n".into(),
        state: SweepState::Cancelled,
        priority: 1,
        total: 10,
        queued: 1,
        leased: 2,
        done: 3,
        failed: 1,
        cancelled: 3,
        inferences_done: 30,
        inferences_failed: 3,
        inferences_total: 100,
        failed_items: 2,
        item_failures: vec![ItemFailures { reason: "decode: empty file".into(), count: 2, example: "a.png".into() }],
        created_at: "2026-11-27T00:00:00+00:00".into(),
        finished_at: None,
        errors: vec![ShardError { shard_id: 5, model: "m".into(), family: "crop".into(), error: "e".into() }],
        workers_alive: 2,
        inferences_per_sec: 3.5,
        eta_secs: -1.0,
        busy_seconds: 12.5,
        busy_seconds_lost: 0.25,
        estimated_cost: 0.125,
    };
    assert_eq!(SweepStatus::try_from(pb::SweepStatus::from(st.clone())).unwrap(), st);
}

#[test]
fn malformed_messages_are_refused_naming_the_field() {
    let mut wire = pb::Sweep::from(sweep());
    wire.models[0].card.as_mut().unwrap().normalize.as_mut().unwrap().std.pop();
    assert_eq!(ResolvedSweep::try_from(wire).unwrap_err().field, "Normalize.std");
    let mut wire = pb::Sweep::from(sweep());
    if let Some(pb::family::Kind::Crop(c)) = &mut wire.spec.as_mut().unwrap().families[0].kind {
        c.resample.as_mut().unwrap().filter = 42;
    }
    let e = ResolvedSweep::try_from(wire).unwrap_err();
    assert_eq!(e.field, "Resample.filter");
    assert!(e.to_string().contains("42"), "{e}");
    let mut wire = pb::Sweep::from(sweep());
    wire.spec.as_mut().unwrap().families[1].kind = None;
    assert_eq!(ResolvedSweep::try_from(wire).unwrap_err().field, "Family.kind");
    assert_eq!(ResolvedSweep::try_from(pb::Sweep::default()).unwrap_err().field, "Sweep.spec");
    assert!(sweep_state(0).is_err(), "unspecified is not a state");
    assert_eq!(sweep_state(pb::SweepState::Done as i32), Ok(SweepState::Done));
}

#[test]
fn families_without_a_message_of_their_own_travel_as_their_spec() {
    let f: jagged_domain::transform::Family = toml::from_str("kind = \"shear\"\nfrom = -4.5\nto = 4.5\nstep = 1.5").unwrap();
    let wire = pb::Family::from(f.clone());
    match &wire.kind {
        Some(pb::family::Kind::Json(text)) => assert!(text.starts_with("{\"kind\":\"shear\""), "{text}"),
        other => panic!("expected JSON, got {other:?}"),
    }
    assert_eq!(jagged_domain::transform::Family::try_from(wire).unwrap(), f);
    // What the spec would refuse, the wire refuses too, naming the field.
    let bad = pb::Family { kind: Some(pb::family::Kind::Json("{\"kind\":\"shear\",\"angle\":3}".into())) };
    let e = jagged_domain::transform::Family::try_from(bad).unwrap_err();
    assert_eq!(e.field, "Family.json");
    assert!(e.problem.contains("angle"), "{}", e.problem);
}
