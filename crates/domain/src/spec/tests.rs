//! The spec's checks, each naming its field.

use super::*;

#[test]
fn graph_ports_are_checked_against_the_card() {
    let card = ModelCard { num_classes: 1000, ..test_card() };
    assert_eq!(card.check_ports(Some(&[-1, 3, 32, 32]), Some(&[-1, 1000])), Ok(()));
    assert_eq!(card.check_ports(Some(&[1, 3, -1, -1]), Some(&[1, -1])), Ok(()), "symbolic dimensions fit");
    assert_eq!(card.check_ports(Some(&[-1, 3, 32, 32]), Some(&[-1, 10])), Err("output `y` has 10 classes; the card says 1000".into()));
    assert_eq!(
        card.check_ports(Some(&[-1, 3, 64, 64]), Some(&[-1, 1000])),
        Err("input `x` has shape [-1, 3, 64, 64]; the card expects [N, 3, 32, 32]".into())
    );
    assert_eq!(card.check_ports(Some(&[3, 32, 32]), Some(&[1000])), Err("input `x` has shape [3, 32, 32]; the card expects [N, 3, 32, 32]".into()));
    assert_eq!(card.check_ports(None, Some(&[1000])), Err("has no input named `x` (its card says so)".into()));
    assert_eq!(card.check_ports(Some(&[1, 3, 32, 32]), None), Err("has no output named `y` (its card says so)".into()));
}

const GOOD: &str = r#"
name = "t"
[dataset]
path = "imgs"
[[models]]
path = "m.onnx"
[[families]]
kind = "crop"
max_shift = 2
[[families]]
kind = "diagonal"
"#;

#[test]
fn a_good_spec_parses_with_defaults() {
    let s = SweepSpec::from_toml(GOOD).unwrap();
    assert_eq!(s.run.batch_size, 32);
    assert_eq!(s.shard.max_attempts, 3);
    assert_eq!(s.families[1].points().len(), 9);
}

#[test]
fn unknown_family_is_refused_by_name() {
    let bad = GOOD.replace("kind = \"diagonal\"", "kind = \"wobble\"");
    let e = SweepSpec::from_toml(&bad).unwrap_err().to_string();
    assert!(e.contains("`families[1].kind`") && e.contains("wobble") && e.contains("crop"), "{e}");
}

#[test]
fn unknown_fields_are_refused() {
    let bad = GOOD.replace("max_shift = 2", "max_shift = 2\nmax_shfit = 3");
    let e = SweepSpec::from_toml(&bad).unwrap_err().to_string();
    assert!(e.contains("`families[0]`") && e.contains("max_shfit"), "{e}");
}

#[test]
fn field_errors_name_the_field() {
    let bad = GOOD.replace("max_shift = 2", "max_shift = 2\nstep = 0");
    assert_eq!(
        SweepSpec::from_toml(&bad).unwrap_err(),
        SpecError::Field { field: "families[0].step".into(), message: "must be a positive number of pixels".into() }
    );
    let bad = format!("{GOOD}\n[run]\nbatch_size = 0\n");
    assert!(SweepSpec::from_toml(&bad).unwrap_err().to_string().contains("`run.batch_size`"));
}

#[test]
fn out_of_range_values_are_refused_with_the_allowed_range() {
    let err = |toml: &str| SweepSpec::from_toml(toml).unwrap_err().to_string();
    let e = err(&GOOD.replace("name = \"t\"", "name = \"t\"\npriority = 1000"));
    assert!(e.contains("`priority`") && e.contains("1000 is outside -10..=10"), "{e}");
    assert!(SweepSpec::from_toml(&GOOD.replace("name = \"t\"", "name = \"t\"\npriority = -10")).is_ok());
    let long = "x".repeat(10_000);
    let e = err(&GOOD.replace("name = \"t\"", &format!("name = \"{long}\"")));
    assert!(e.contains("`name`") && e.contains("10000 characters long; at most 200"), "{e}");
    assert!(e.len() < 200, "the name is not printed whole: {e}");
    let e = err(&GOOD.replace("path = \"m.onnx\"", &format!("path = \"m.onnx\"\nname = \"{long}\"")));
    assert!(e.contains("`models[0].name`"), "{e}");
    let e = err(&GOOD.replace("name = \"t\"", "name = \"a\\nb\""));
    assert!(e.contains("control characters"), "{e}");
}

#[test]
fn grids_without_pairs_are_refused() {
    let e = SweepSpec::from_toml(&GOOD.replace("max_shift = 2", "max_shift = 0")).unwrap_err().to_string();
    assert!(e.contains("`families[0]`") && e.contains("1 grid point(s) and no neighbouring pairs"), "{e}");
    let rot = GOOD.replace("kind = \"crop\"\nmax_shift = 2", "kind = \"rotate\"\nfrom = 5.0\nto = 5.0");
    let e = SweepSpec::from_toml(&rot).unwrap_err().to_string();
    assert!(e.contains("`families[0]`") && e.contains("no neighbouring pairs"), "{e}");
}

#[test]
fn sequences_need_no_dataset_but_other_families_do() {
    let seq = "name = \"s\"\n[[models]]\npath = \"m.onnx\"\n[[families]]\nkind = \"sequence\"\npath = \"frames\"\n";
    let s = SweepSpec::from_toml(seq).unwrap();
    assert!(s.dataset.is_none());
    let mixed = format!("{seq}[[families]]\nkind = \"crop\"\nmax_shift = 1\n");
    let e = SweepSpec::from_toml(&mixed).unwrap_err().to_string();
    assert!(e.contains("`dataset`") && e.contains("families[1]"), "{e}");
    let bad = format!("{seq}[metrics]\nfamilies = [\"crop\"]\n");
    assert!(SweepSpec::from_toml(&bad).unwrap_err().to_string().contains("`metrics.families[0]`"));
    let typo = format!("{seq}[metrics]\nbaseline_model = \"x\"\n");
    assert!(SweepSpec::from_toml(&typo).unwrap_err().to_string().contains("`metrics`"));
    let stride = seq.replace("path = \"frames\"", "path = \"frames\"\nframes = 4\nstride = 4");
    assert!(SweepSpec::from_toml(&stride).unwrap_err().to_string().contains("families[0].stride"));
}

#[test]
fn selectors_name_families_by_kind_or_position() {
    let s = SweepSpec::from_toml(GOOD).unwrap();
    assert!(selects("crop", &s.families, 0) && selects("families[1]", &s.families, 1));
    assert!(!selects("crop", &s.families, 1) && !selects("families[0]", &s.families, 1));
}

#[test]
fn shard_target_seconds_may_be_written_as_an_integer() {
    let s = SweepSpec::from_toml("name = \"x\"\n[dataset]\npath = \"d\"\n[[models]]\npath = \"m.onnx\"\n[[families]]\nkind = \"crop\"\nmax_shift = 1\n[shard]\ntarget_seconds = 30\n").unwrap();
    assert_eq!(s.shard.target_seconds, 30.0);
}

#[test]
fn families_carry_labels_that_name_and_select_them() {
    let text = "name = \"l\"\n[dataset]\npath = \"d\"\n[[models]]\npath = \"m.onnx\"\n\
                [[families]]\nkind = \"crop\"\nmax_shift = 2\nlabel = \"Shifted\"\n[[families]]\nkind = \"diagonal\"\nsteps = 3\n\
                [metrics]\nfamilies = [\"Shifted\"]\n";
    let s = SweepSpec::from_toml(text).unwrap();
    assert_eq!(s.family_labels, vec![Some("Shifted".to_string()), None]);
    assert_eq!((s.family_label(0), s.family_label(1)), ("Shifted".to_string(), "diagonal".to_string()));
    assert!(s.selects("Shifted", 0) && s.selects("crop", 0) && !s.selects("Shifted", 1));
    // Unlabelled specs keep their serialized form (and content hash).
    let plain = SweepSpec::from_toml(&text.replace("label = \"Shifted\"\n", "").replace("[\"Shifted\"]", "[\"crop\"]")).unwrap();
    assert!(plain.family_labels.is_empty() && !toml::to_string(&plain).unwrap().contains("family_labels"));
    let twice = text.replace("steps = 3\n", "steps = 3\nlabel = \"Shifted\"\n");
    assert!(SweepSpec::from_toml(&twice).unwrap_err().to_string().contains("labels two families"));
    let number = text.replace("label = \"Shifted\"", "label = 3");
    assert!(SweepSpec::from_toml(&number).unwrap_err().to_string().contains("families[0].label"));
    let top = format!("family_labels = [\"x\"]\n{text}");
    assert!(SweepSpec::from_toml(&top).unwrap_err().to_string().contains("`label = \"...\"`"));
    // An error in a labelled family is still located.
    let bad = text.replace("max_shift = 2", "max_shift = -2");
    assert!(SweepSpec::from_toml(&bad).unwrap_err().to_string().contains("families[0]"), "{}", SweepSpec::from_toml(&bad).unwrap_err());
}

#[test]
fn a_family_listed_twice_is_refused_naming_both() {
    let text = "name = \"d\"\n[dataset]\npath = \"d\"\n[[models]]\npath = \"m.onnx\"\n\
                [[families]]\nkind = \"diagonal\"\nsteps = 2\n[[families]]\nkind = \"crop\"\nmax_shift = 1\n[[families]]\nkind = \"diagonal\"\nsteps = 2\n";
    let e = SweepSpec::from_toml(text).unwrap_err().to_string();
    assert!(e.contains("`families[2]`: repeats `families[0]` (`diagonal`, every parameter the same)"), "{e}");
    // Labelled differently, it is still the same family.
    let labelled = text.replacen("steps = 2\n", "steps = 2\nlabel = \"a\"\n", 1);
    assert!(SweepSpec::from_toml(&labelled).unwrap_err().to_string().contains("repeats `families[0]`"));
    // Another parameter: another family.
    assert!(SweepSpec::from_toml(&text.replacen("steps = 2\n", "steps = 3\n", 1)).is_ok());
}

#[test]
fn a_bad_value_is_reported_at_its_field() {
    let base = "name = \"d\"\n[dataset]\npath = \"d\"\n[[models]]\npath = \"m.onnx\"\n[[families]]\nkind = \"crop\"\nmax_shift = 2\n\
                [[families]]\nkind = \"embed\"\nsize = 16\nmax_shift = 2\n";
    let err = |a: &str, b: &str| SweepSpec::from_toml(&base.replacen(a, b, 1)).unwrap_err().to_string();
    let e = err("max_shift = 2", "max_shift = -2");
    assert_eq!(e, "invalid spec: `families[0].max_shift`: invalid value: integer `-2`, expected u32");
    let e = err("size = 16\n", "size = 16\ncrop = \"None\"\n");
    assert!(e.starts_with("invalid spec: `families[1].crop`: unknown variant `None`, expected"), "{e}");
    let e = err("max_shift = 2\n[[families]]", "max_shift = 2\nresample = { compat = \"Pillow\" }\n[[families]]");
    assert!(e.starts_with("invalid spec: `families[0].resample.compat`: unknown variant `Pillow`, expected"), "{e}");
    let e = err("path = \"d\"\n[[models]]", "path = \"d\"\nunlisted = \"bogus\"\n[[models]]");
    assert!(e.starts_with("invalid spec: `dataset.unlisted`: unknown variant `bogus`, expected one of `refuse`, `skip`, `unlabelled`"), "{e}");
}
