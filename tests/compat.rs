use jagged_domain::image::{resize, Compat, Filter, JpegDecoder, Resample, Rgb8};
use jagged_domain::transform::{Family, GridPoint};
use jagged_testkit::root;
use serde_json::Value;

fn python() -> std::path::PathBuf {
    let p = root().join(".cache/jagged/venv/bin/python3");
    assert!(p.is_file(), "{} missing: run `just test` (it creates the test environment)", p.display());
    p
}

fn samples() -> std::path::PathBuf {
    let p = root().join(".cache/jagged/samples");
    assert!(p.join("chelsea.png").is_file(), "{} missing: run `scripts/fetch.sh samples`", p.display());
    p
}

/// Runs `tests/pillow_ref.py`: Pillow's decodes, resizes and torchvision-style crops.
fn reference(dir: &std::path::Path) -> Value {
    let out = std::process::Command::new(python()).arg(root().join("tests/pillow_ref.py")).arg(samples()).arg(dir).output().unwrap();
    assert!(out.status.success(), "pillow_ref.py failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn load(v: &Value, w: &Value, h: &Value) -> Rgb8 {
    let bytes = std::fs::read(v.as_str().unwrap()).unwrap();
    Rgb8::from_raw(w.as_u64().unwrap() as u32, h.as_u64().unwrap() as u32, bytes).expect("raw size")
}

fn differing(a: &Rgb8, b: &Rgb8) -> usize {
    assert_eq!((a.width, a.height), (b.width, b.height));
    a.data.chunks(3).zip(b.data.chunks(3)).filter(|(x, y)| x != y).count()
}

fn filter(name: &str) -> Filter {
    match name {
        "nearest" => Filter::Nearest,
        "bilinear" => Filter::Bilinear,
        _ => Filter::Bicubic,
    }
}

/// libjpeg-turbo's decoder gives Pillow's pixels exactly (Pillow bundles
/// libjpeg-turbo), on the sample JPEG and on JPEG files with every common chroma
/// subsampling, progressive and greyscale; `compat = "pillow"` resizes give
/// `Image.resize`'s pixels exactly with every filter, down and up, on every
/// sample; and a `crop` family with `compat = "torchvision"` renders torchvision's
/// `Resize(256)` + `CenterCrop(224)` (moved by the point's offset) exactly.
#[test]
fn pillow_and_libjpeg_turbo_pixels_are_reproduced_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let m = reference(tmp.path());
    eprintln!("Pillow {} with libjpeg-turbo {}", m["pillow"], m["libjpeg_turbo"]);

    let decoded = m["decoded"].as_array().unwrap();
    let mut sources = Vec::new();
    let (mut jpegs, mut builtin_off) = (0, 0);
    for d in decoded {
        let pil = load(&d["raw"], &d["w"], &d["h"]);
        if d["jpeg"].as_bool().unwrap() {
            let bytes = std::fs::read(d["file"].as_str().unwrap()).unwrap();
            let turbo = jagged_infer::decode_image_with(&bytes, JpegDecoder::LibjpegTurbo).unwrap();
            assert_eq!(differing(&turbo, &pil), 0, "{}: libjpeg-turbo decode differs from Pillow's", d["name"]);
            let builtin = jagged_infer::decode_image_with(&bytes, JpegDecoder::Builtin).unwrap();
            let off = differing(&builtin, &pil);
            eprintln!("{}: builtin decoder differs from Pillow on {:.2}% of pixels", d["name"], 100.0 * off as f64 / (pil.data.len() / 3) as f64);
            jpegs += 1;
            builtin_off += (off > 0) as usize;
        }
        sources.push(pil);
    }
    assert!(jpegs >= 6, "the sample JPEG and the five encoded here");
    eprintln!("builtin decoder differs from Pillow on {builtin_off} of {jpegs} JPEG files");

    let mut float_off = 0usize;
    let mut total = 0usize;
    for r in m["resized"].as_array().unwrap() {
        let src = &sources[r["source"].as_u64().unwrap() as usize];
        let want = load(&r["raw"], &r["w"], &r["h"]);
        let (w, h) = (want.width, want.height);
        let f = filter(r["filter"].as_str().unwrap());
        let ours = resize(src, w, h, Resample { filter: f, antialias: true, compat: Compat::Pillow });
        assert_eq!(differing(&ours, &want), 0, "{}x{} -> {w}x{h} {:?}: compat = pillow differs from Image.resize", src.width, src.height, f);
        if f == Filter::Bicubic {
            float_off += differing(&resize(src, w, h, Resample { filter: f, antialias: true, compat: Compat::Float }), &want);
            total += (w * h) as usize;
        }
    }
    eprintln!("default (float) bicubic resize differs from Pillow on {:.1}% of pixels", 100.0 * float_off as f64 / total as f64);

    for t in m["torchvision"].as_array().unwrap() {
        let src = &sources[t["source"].as_u64().unwrap() as usize];
        let want = load(&t["raw"], &224.into(), &224.into());
        let fam: Family = serde_json::from_value(serde_json::json!({
            "kind": "crop", "max_shift": 8, "resize": t["resize"],
            "resample": {"filter": t["filter"], "compat": "torchvision"}
        }))
        .unwrap();
        fam.validate(Some(224)).unwrap();
        let (dx, dy) = (t["dx"].as_i64().unwrap() as i32, t["dy"].as_i64().unwrap() as i32);
        let got = fam.prepare(src, 224).unwrap().render(GridPoint { index: 0, dx: dx as f32, dy: dy as f32, scale: 1.0, angle: 0.0 });
        assert_eq!(differing(&got, &want), 0, "source {} {} ({dx}, {dy}): differs from torchvision's Resize + CenterCrop", t["source"], t["filter"]);
    }
}

/// A corrupt or truncated JPEG is refused by the libjpeg-turbo decoder with a
/// message, never a crash or a grey image.
#[test]
fn libjpeg_turbo_refuses_damaged_files_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 90]));
    let path = tmp.path().join("a.jpg");
    img.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let ok = jagged_infer::decode_image_with(&bytes, JpegDecoder::LibjpegTurbo).unwrap();
    assert_eq!((ok.width, ok.height), (64, 48));
    // Cut in the middle: no end-of-image marker.
    let err = jagged_infer::decode_image_with(&bytes[..bytes.len() / 2], JpegDecoder::LibjpegTurbo).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
    // A broken start-of-frame segment (its length field zeroed), end marker kept.
    let mut bad = bytes.clone();
    let sof = bad.windows(2).position(|w| w == [0xFF, 0xC0]).expect("baseline SOF");
    bad[sof + 2] = 0;
    bad[sof + 3] = 0;
    let err = jagged_infer::decode_image_with(&bad, JpegDecoder::LibjpegTurbo).unwrap_err().to_string();
    assert!(err.contains("corrupt"), "{err}");
}
