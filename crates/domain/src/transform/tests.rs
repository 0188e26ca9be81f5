//! What holds across families: their spec forms, their refusals, and
//! rendering that is the same whichever way it is done.

use super::testutil::{numbered, ID, NEAREST};
use super::*;

/// Families serialise as they always have: sweep and pair content keys are
/// SHA-256 digests of this JSON, so a change here would stop every stored
/// result from being reused.
#[test]
fn families_serialise_as_before() {
    let cases = [
        (
            "kind = \"crop\"\nmax_shift = 3",
            r#"{"kind":"crop","max_shift":3,"step":1.0,"resize":null,"resample":{"filter":"bicubic","antialias":true}}"#,
        ),
        (
            "kind = \"crop\"\nmax_shift = 2\nstep = 0.5\nresize = 40\nresample = { filter = \"bicubic\", antialias = true, compat = \"pillow\" }",
            r#"{"kind":"crop","max_shift":2,"step":0.5,"resize":40,"resample":{"filter":"bicubic","antialias":true,"compat":"pillow"}}"#,
        ),
        (
            "kind = \"embed\"\nsize = 20\nmax_shift = 6\nstep = 2\nbackground = \"mean\"\ncrop = \"none\"",
            r#"{"kind":"embed","size":20,"crop":"none","max_shift":6,"step":2,"background":"mean","resample":{"filter":"bicubic","antialias":true}}"#,
        ),
        (
            "kind = \"diagonal\"\nfrom = -3\nto = 3",
            r#"{"kind":"diagonal","steps":null,"step":1.0,"from":-3,"to":3,"base":"crop","resize":null,"size":null,"crop":"square","background":"black","resample":{"filter":"bicubic","antialias":true}}"#,
        ),
        (
            "kind = \"diagonal\"\nsteps = 4\nbase = \"embed\"\nsize = 50\nbackground = \"inpaint\"",
            r#"{"kind":"diagonal","steps":4,"step":1.0,"from":null,"to":null,"base":"embed","resize":null,"size":50,"crop":"square","background":"inpaint","resample":{"filter":"bicubic","antialias":true}}"#,
        ),
        (
            "kind = \"circular\"\nmax_shift = 2\nresize = 40",
            r#"{"kind":"circular","max_shift":2,"step":1,"resize":40,"resample":{"filter":"bicubic","antialias":true}}"#,
        ),
        (
            "kind = \"scale\"",
            r#"{"kind":"scale","from":0.4,"to":1.15,"step":0.025,"base":null,"background":"black","resample":{"filter":"bicubic","antialias":true}}"#,
        ),
        (
            "kind = \"scale\"\nfrom = 0.5\nto = 1.0\nstep = 0.25\nbase = 100\nbackground = \"mean\"",
            r#"{"kind":"scale","from":0.5,"to":1.0,"step":0.25,"base":100,"background":"mean","resample":{"filter":"bicubic","antialias":true}}"#,
        ),
        (
            "kind = \"random_pairs\"\npairs = 3\nseed = 11\nmax_offset = 16",
            r#"{"kind":"random_pairs","pairs":3,"max_offset":16,"seed":11,"resize":null,"resample":{"filter":"bicubic","antialias":true}}"#,
        ),
        (
            "kind = \"sequence\"\npath = \"seq\"\nframes = 5\nstride = 2\ncompare = \"first\"\nlimit = 3\nlabels = \"l.csv\"",
            r#"{"kind":"sequence","path":"seq","frames":5,"stride":2,"compare":"first","resize":null,"resample":{"filter":"bicubic","antialias":true},"labels":"l.csv","limit":3}"#,
        ),
        ("kind = \"layers\"\nshifts = [1, 4]", r#"{"kind":"layers","shifts":[1,4],"resize":null,"resample":{"filter":"bicubic","antialias":true}}"#),
        ("kind = \"radius\"\nmax_radius = 3", r#"{"kind":"radius","max_radius":3,"resize":null,"resample":{"filter":"bicubic","antialias":true}}"#),
        (
            "kind = \"rotate\"",
            r#"{"kind":"rotate","from":-15.0,"to":15.0,"step":1.0,"resize":null,"resample":{"filter":"bicubic","antialias":true}}"#,
        ),
        (
            "kind = \"rotate\"\nfrom = -5.0\nto = 5.0\nstep = 2.5\nresize = 300",
            r#"{"kind":"rotate","from":-5.0,"to":5.0,"step":2.5,"resize":300,"resample":{"filter":"bicubic","antialias":true}}"#,
        ),
    ];
    for (spec, json) in cases {
        let f: Family = toml::from_str(spec).unwrap();
        assert_eq!(serde_json::to_string(&f).unwrap(), json, "{spec}");
        assert_eq!(serde_json::from_str::<Family>(json).unwrap(), f);
    }
}

#[test]
fn unknown_fields_and_kinds_are_refused() {
    for bad in ["kind = \"crop\"\nmax_shift = 1\nshift = 2", "kind = \"cropp\"\nmax_shift = 1", "max_shift = 1"] {
        assert!(toml::from_str::<Family>(bad).is_err(), "{bad}");
    }
}

#[test]
fn grids_that_do_not_fit_are_refused_naming_the_field() {
    let crop = |max_shift: u32, step: f32| Family::Crop(Crop { max_shift, step, resize: None, resample: Resample::default() });
    assert_eq!(crop(17, 1.0).validate(Some(224)).unwrap_err().0, "max_shift");
    assert!(crop(16, 1.0).validate(Some(224)).is_ok());
    assert_eq!(crop(3, 2.0).validate(None).unwrap_err().0, "step");
    let f = Family::Embed(Embed { size: 300, crop: Default::default(), max_shift: 0, step: 1, background: Background::Black, resample: NEAREST });
    assert_eq!(f.validate(Some(224)).unwrap_err().0, "size");
    // Each meaning has one name: a crop-based diagonal's resize is `resize`.
    let f: Family = toml::from_str("kind = \"diagonal\"\nsize = 256").unwrap();
    assert_eq!(f.validate(Some(224)).unwrap_err().0, "size");
    let f: Family = toml::from_str("kind = \"diagonal\"\nresize = 256").unwrap();
    assert!(f.validate(Some(224)).is_ok());
    let f: Family = toml::from_str("kind = \"diagonal\"\nresize = 228\nfrom = -3\nto = 3").unwrap();
    assert_eq!(f.validate(Some(224)).unwrap_err().0, "to", "-3..3 needs 3 px of room on each side");
    let f: Family = toml::from_str("kind = \"diagonal\"\nbase = \"embed\"\nresize = 100").unwrap();
    assert_eq!(f.validate(Some(224)).unwrap_err().0, "resize");
    let f: Family = toml::from_str("kind = \"diagonal\"\ncrop = \"none\"").unwrap();
    assert_eq!(f.validate(Some(224)).unwrap_err().0, "crop");
    let f: Family = toml::from_str("kind = \"crop\"\nmax_shift = 1\nresample = { compat = \"pillow\", antialias = false }").unwrap();
    assert_eq!(f.validate(Some(224)).unwrap_err().0, "resample.antialias");
}

#[test]
fn one_dimensional_families_validate_their_ranges() {
    let f: Family = toml::from_str("kind = \"rotate\"\nfrom = 5.0\nto = -5.0").unwrap();
    assert_eq!(f.validate(Some(32)).unwrap_err().0, "to");
    let f: Family = toml::from_str("kind = \"scale\"\nstep = 0.0").unwrap();
    assert_eq!(f.validate(Some(32)).unwrap_err().0, "step");
    let f: Family = toml::from_str("kind = \"rotate\"").unwrap();
    assert_eq!(f.points().len(), 31, "ImageNet-P: -15..15, 31 frames");
    assert_eq!(f.points()[f.reference()].angle, 0.0);
    let f: Family = toml::from_str("kind = \"scale\"").unwrap();
    assert_eq!(f.points().len(), 31, "ImageNet-P: 0.40..1.15 step 0.025");
}

#[test]
fn rendering_is_bit_identical_across_runs() {
    let img = numbered(123, 77);
    let f = Family::Crop(Crop { max_shift: 4, step: 1.0, resize: None, resample: Resample::default() });
    let a = f.prepare(&img, 64).unwrap();
    let b = f.prepare(&img, 64).unwrap();
    for p in f.points() {
        let (mut ta, mut tb) = (vec![0f32; 3 * 64 * 64], vec![0f32; 3 * 64 * 64]);
        a.write_chw(p, &ID, &mut ta);
        b.write_chw(p, &ID, &mut tb);
        assert!(ta.iter().zip(&tb).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}

/// Every family's points, as views where they are plain windows: the
/// view's tensor equals the host rendering bit for bit; the rest are named.
#[test]
fn plain_windows_are_views_that_render_bit_identically() {
    let img = numbered(90, 61);
    let norm = Normalize { mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] };
    let cases = [
        ("kind = \"crop\"\nmax_shift = 3", true),
        ("kind = \"crop\"\nmax_shift = 1\nstep = 0.5\nresize = 40", false),
        ("kind = \"embed\"\nsize = 20\nmax_shift = 6\nstep = 2", true),
        ("kind = \"embed\"\nsize = 20\nmax_shift = 6\nbackground = \"mean\"\ncrop = \"none\"", true),
        ("kind = \"embed\"\nsize = 20\nmax_shift = 2\nbackground = \"inpaint\"", false),
        ("kind = \"diagonal\"\nfrom = -3\nto = 3", true),
        ("kind = \"scale\"\nfrom = 0.5\nto = 1.0\nstep = 0.25", true),
        ("kind = \"circular\"\nmax_shift = 2", true),
        ("kind = \"circular\"\nmax_shift = 28\nstep = 7", true),
        ("kind = \"rotate\"\nfrom = -5.0\nto = 5.0\nstep = 5.0", false),
    ];
    let side = 32usize;
    for (toml_text, plain) in cases {
        let f: Family = toml::from_str(toml_text).unwrap();
        f.validate(Some(side as u32)).unwrap();
        let prep = f.prepare(&img, side as u32).unwrap();
        let mut viewed = 0;
        for p in f.points() {
            let Some(v) = prep.view(p, &norm) else { continue };
            viewed += 1;
            let (mut host, mut view) = (vec![0f32; 3 * side * side], vec![1f32; 3 * side * side]);
            prep.write_chw(p, &norm, &mut host);
            v.write_chw(side, &norm, &mut view);
            assert!(host.iter().zip(&view).all(|(a, b)| a.to_bits() == b.to_bits()), "{toml_text}: point {p:?}");
        }
        let integer = f.points().iter().filter(|p| !p.is_subpixel()).count();
        if plain {
            assert_eq!(viewed, f.points().len(), "{toml_text}");
        } else {
            assert!(viewed == 0 || viewed == integer, "{toml_text}: only integer points of a sub-pixel grid are views");
        }
    }
}

#[test]
fn a_family_that_does_not_fit_names_its_own_field_and_the_least_extent_that_fits() {
    let err = |t: &str| toml::from_str::<Family>(t).unwrap().validate(Some(224)).unwrap_err();
    // 20 diagonal steps need 20 px each way: a resize of 264 (224 + 2 x 20), and 264 fits.
    let (f, m) = err("kind = \"diagonal\"\nsteps = 20\nresize = 256");
    assert_eq!((f.as_str(), m.as_str()), ("steps", "shifts up to 20 px need a resize of at least 264 for input 224 (it is 256)"));
    assert!(toml::from_str::<Family>("kind = \"diagonal\"\nsteps = 20\nresize = 264").unwrap().validate(Some(224)).is_ok());
    assert_eq!(err("kind = \"diagonal\"\nfrom = -30\nto = 4\nresize = 256").0, "from");
    assert_eq!(err("kind = \"diagonal\"\nfrom = 0\nto = 30\nresize = 256").0, "to");
    assert_eq!(err("kind = \"diagonal\"\nbase = \"embed\"\nsteps = 100").0, "steps");
    let (f, m) = err("kind = \"crop\"\nmax_shift = 20\nresize = 250");
    assert_eq!((f.as_str(), m.as_str()), ("max_shift", "shifts up to 20 px need a resize of at least 264 for input 224 (it is 250)"));
}

#[test]
fn a_diagonal_line_contains_0_and_from_comes_with_to() {
    let err = |t: &str| toml::from_str::<Family>(t).unwrap().validate(None).unwrap_err();
    let (f, m) = err("kind = \"diagonal\"\nfrom = 2\nto = 6");
    assert_eq!((f.as_str(), m.as_str()), ("from", "the line 2..=6 must contain 0, where the reference (accuracy) point of a 1-D family lies"));
    assert_eq!(err("kind = \"diagonal\"\nfrom = -6\nto = -2").0, "to");
    let (f, m) = err("kind = \"diagonal\"\nfrom = -3");
    assert_eq!((f.as_str(), m.as_str()), ("from", "give `to` (or `steps`) with `from`: the line runs from `from` to `to`"));
    assert_eq!(err("kind = \"diagonal\"\nfrom = -6\nsteps = 2").0, "steps");
    assert!(toml::from_str::<Family>("kind = \"diagonal\"\nfrom = -3\nto = 3").unwrap().validate(None).is_ok());
}
