use jagged_testkit::{dataset, jagged_bin, tiny_model};
use std::process::Command;

/// Runs `jagged sweep submit` against an unreachable coordinator: spec errors must
/// be reported before any connection is attempted.
fn submit(dir: &std::path::Path, spec: &str) -> String {
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
    let out = Command::new(jagged_bin())
        .args(["sweep", "submit"])
        .arg(dir.join("spec.toml"))
        .args(["--coordinator", "http://127.0.0.1:9", "--store"])
        .arg(dir.join("store"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const BASE: &str = "name = \"bad\"\n[dataset]\npath = \"data\"\n[[models]]\npath = \"models/tiny_cnn.onnx\"\n";

#[test]
fn unknown_family_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let err = submit(tmp.path(), &format!("{BASE}[[families]]\nkind = \"wobble\"\n"));
    assert!(err.contains("wobble") && err.contains("crop") && err.contains("families"), "{err}");
}

#[test]
fn missing_model_file_is_refused_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(&tmp.path().join("data"), 2, 10, &[]);
    let err = submit(tmp.path(), &format!("{BASE}[[families]]\nkind = \"diagonal\"\n"));
    assert!(err.contains("models[0].path") && err.contains("tiny_cnn.onnx") && err.contains("does not exist"), "{err}");
}

#[test]
fn grid_too_large_for_the_model_is_refused_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(&tmp.path().join("data"), 2, 10, &[]);
    tiny_model(&tmp.path().join("models"));
    let err = submit(tmp.path(), &format!("{BASE}[[families]]\nkind = \"embed\"\nsize = 30\nmax_shift = 4\n"));
    assert!(err.contains("families[0].max_shift") && err.contains("tiny_cnn"), "{err}");
}

#[test]
fn missing_dataset_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_model(&tmp.path().join("models"));
    let err = submit(tmp.path(), &format!("{BASE}[[families]]\nkind = \"diagonal\"\n"));
    assert!(err.contains("dataset.path") && err.contains("is not a folder"), "{err}");
}

#[test]
fn label_outside_the_model_classes_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_model(&tmp.path().join("models"));
    let png = jagged_testkit::png(40, 40, 1);
    dataset(&tmp.path().join("data"), 1, 10, &[("x.png", &png, Some(10))]);
    let err = submit(tmp.path(), &format!("{BASE}[[families]]\nkind = \"diagonal\"\n"));
    assert!(err.contains("dataset.labels") && err.contains("x.png"), "{err}");
}

/// Specs with negative or zero steps, enormous grids and unknown fields are
/// refused before anything is uploaded, naming the field.
#[test]
fn bad_numbers_and_unknown_fields_in_specs_are_refused_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(&tmp.path().join("data"), 1, 10, &[]);
    tiny_model(&tmp.path().join("models"));
    let cases = [
        ("[[families]]\nkind = \"crop\"\nmax_shift = 2\nstep = -1\n", "families[0]"),
        ("[[families]]\nkind = \"crop\"\nmax_shift = 2\nstep = 0\n", "families[0].step"),
        ("[[families]]\nkind = \"scale\"\nstep = 0.0\n", "families[0].step"),
        ("[[families]]\nkind = \"rotate\"\nfrom = 10.0\nto = -10.0\n", "families[0].to"),
        ("[[families]]\nkind = \"crop\"\nmax_shift = 100000\n", "families[0].max_shift"),
        ("[[families]]\nkind = \"diagonal\"\nsteps = 10000000\n", "families[0].steps"),
        ("[[families]]\nkind = \"diagonal\"\n[run]\nbatch_size = 100000\n", "run.batch_size"),
        ("[[families]]\nkind = \"diagonal\"\n[run]\nbatchsize = 8\n", "run"),
        ("[[families]]\nkind = \"diagonal\"\n[shard]\nmax_attempts = 0\n", "shard.max_attempts"),
        ("[[families]]\nkind = \"diagonal\"\ncolour = \"red\"\n", "families[0]"),
    ];
    for (tail, field) in cases {
        let err = submit(tmp.path(), &format!("{BASE}{tail}"));
        assert!(err.contains(&format!("`{field}")), "{tail}: expected an error naming `{field}`, got: {err}");
        assert!(!tmp.path().join("store/blobs").exists(), "{tail}: nothing may be uploaded for a bad spec");
    }
}

/// Runs the worker's compute step over `files` (name, bytes) with the tiny model
/// (or `model`), one point per image; returns the output.
fn compute(files: &[(String, Vec<u8>)], model: Option<jagged_onnx::BuiltModel>) -> jagged_worker::ShardOutput {
    jagged_testkit::ort();
    let m = model.unwrap_or_else(|| jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec::default()));
    let mut engine = jagged_infer::Engine::load(&m.bytes, &m.card, &jagged_infer::EngineOptions::cpu(1)).unwrap();
    let family = jagged_domain::transform::Family::Crop(jagged_domain::transform::Crop {
        max_shift: 1,
        step: 1.0,
        resize: None,
        resample: Default::default(),
    });
    let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let mut task = jagged_testkit::task(&m.card, family, &names, 8);
    task.items.iter_mut().for_each(|i| i.image.label = Some(1));
    let items = task.items.clone();
    let input = jagged_worker::ShardInput {
        task: &task,
        images: items.into_iter().zip(files.iter().map(|(_, b)| Ok(vec![bytes::Bytes::from(b.clone())]))).collect(),
        host_threads: 2,
        pad_batches: false,
        busy: None,
        graph_render: false,
        taken: None,
    };
    jagged_worker::run_shard(&mut engine, input, &|| false).unwrap().unwrap()
}

/// A well-formed PNG whose header claims `w` x `h` pixels, with a few bytes of
/// image data (a decompression bomb in miniature).
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend((data.len() as u32).to_be_bytes());
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]); // zlib of nothing
    chunk(b"IEND", &[]);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// Bad image files are failed items naming the file and why, and their
/// neighbours in the shard complete; 16-bit, grayscale, palette and CMYK images
/// are read correctly, not refused; WebP and TIFF decode as Pillow decodes them;
/// a GIF is an `unsupported format`, never "corrupt".
#[test]
fn bad_images_fail_alone_and_unusual_formats_are_read_correctly() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Palette and CMYK files from Pillow (in the test environment), with the colours
    // Pillow reads back from them.
    let py = jagged_testkit::root().join(".cache/jagged/venv/bin/python3");
    assert!(py.is_file(), "run `just test` (it creates the test Python environment)");
    let good = jagged_testkit::png(40, 36, 1);
    std::fs::write(d.join("src.png"), &good).unwrap();
    let script = r#"
import sys
from PIL import Image
d = sys.argv[1]
src = Image.open(d + "/src.png").convert("RGB")
src.save(d + "/photo.webp", quality=80); src.save(d + "/lossless.webp", lossless=True)
src.save(d + "/photo.tif", compression="tiff_lzw"); src.save(d + "/photo.gif")
for name in ["photo.webp", "lossless.webp", "photo.tif"]:
    open(d + "/" + name + ".rgb", "wb").write(Image.open(d + "/" + name).convert("RGB").tobytes())
p = Image.new("P", (40, 36)); p.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
p.putdata([(x // 4 + y // 4) % 2 for y in range(36) for x in range(40)]); p.save(d + "/palette.png")
c = Image.new("CMYK", (40, 36), (0, 255, 255, 0)); c.save(d + "/cmyk.jpg", quality=100)
print(Image.open(d + "/cmyk.jpg").convert("RGB").getpixel((20, 18)))
"#;
    let out = Command::new(py).arg("-c").arg(script).arg(d).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pil_cmyk: Vec<i32> =
        String::from_utf8_lossy(&out.stdout).trim().trim_matches(|c| c == '(' || c == ')').split(',').map(|v| v.trim().parse().unwrap()).collect();
    let enc = |img: image::DynamicImage, fmt: image::ImageFormat| {
        let mut c = std::io::Cursor::new(Vec::new());
        img.write_to(&mut c, fmt).unwrap();
        c.into_inner()
    };
    let rgb16 =
        image::DynamicImage::ImageRgb16(image::ImageBuffer::from_fn(40, 36, |x, y| image::Rgb([257 * (x as u16), 257 * (y as u16), 257 * 200])));
    let gray = image::DynamicImage::ImageLuma8(image::ImageBuffer::from_fn(40, 36, |x, y| image::Luma([(3 * x + y) as u8])));
    let jpeg = enc(image::load_from_memory(&good).unwrap(), image::ImageFormat::Jpeg);
    let files: Vec<(String, Vec<u8>)> = vec![
        ("good.png".into(), good.clone()),
        ("truncated.jpg".into(), jpeg[..jpeg.len() / 2].to_vec()),
        ("huge.png".into(), png_header_only(100_000, 100_000)),
        ("text.jpg".into(), b"this is a text file with a .jpg name\n".to_vec()),
        ("rgb16.png".into(), enc(rgb16, image::ImageFormat::Png)),
        ("gray.png".into(), enc(gray, image::ImageFormat::Png)),
        ("palette.png".into(), std::fs::read(d.join("palette.png")).unwrap()),
        ("cmyk.jpg".into(), std::fs::read(d.join("cmyk.jpg")).unwrap()),
        ("also-good.jpg".into(), jpeg.clone()),
        ("photo.webp".into(), std::fs::read(d.join("photo.webp")).unwrap()),
        ("lossless.webp".into(), std::fs::read(d.join("lossless.webp")).unwrap()),
        ("photo.tif".into(), std::fs::read(d.join("photo.tif")).unwrap()),
        ("photo.gif".into(), std::fs::read(d.join("photo.gif")).unwrap()),
    ];
    let started = std::time::Instant::now();
    let out = compute(&files, None);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "a bad header must be refused before allocating");
    let failed: Vec<(String, String)> = out.failed.iter().map(|f| (f.name.clone(), f.reason.clone())).collect();
    assert_eq!(failed.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["truncated.jpg", "huge.png", "text.jpg", "photo.gif"], "{failed:?}");
    assert!(failed[0].1.contains("corrupt"), "{failed:?}");
    assert!(failed[1].1.contains("100000x100000") && failed[1].1.contains("limit"), "{failed:?}");
    assert!(failed[2].1.starts_with("unsupported format: not a PNG, JPEG, WebP or TIFF file"), "{failed:?}");
    assert!(failed[3].1.starts_with("unsupported format GIF"), "{failed:?}");
    assert_eq!(out.rows, 9 * 9, "the nine readable images complete, 9 points each");
    for name in ["photo.webp", "lossless.webp", "photo.tif"] {
        let ours = jagged_infer::decode_image(&std::fs::read(d.join(name)).unwrap()).unwrap();
        let pillow = std::fs::read(d.join(format!("{name}.rgb"))).unwrap();
        assert_eq!(ours.data.len(), pillow.len(), "{name}: 40 x 36 RGB");
        let worst = ours.data.iter().zip(&pillow).map(|(a, b)| (*a as i32 - *b as i32).abs()).max().unwrap();
        assert!(worst <= 3, "{name}: a pixel differs from Pillow's by {worst} levels");
        if name != "photo.webp" {
            assert_eq!(worst, 0, "{name} is lossless: identical to Pillow");
        }
    }
    // Decoded as expected: 16-bit scaled to 8, gray to equal channels, palette
    // entries, CMYK as Pillow reads it (within JPEG rounding).
    let dec = |name: &str| jagged_infer::decode_image(&files.iter().find(|f| f.0 == name).unwrap().1).unwrap();
    assert_eq!(dec("rgb16.png").pixel(7, 5), [7, 5, 200]);
    assert_eq!(dec("gray.png").pixel(7, 5), [26, 26, 26]);
    assert_eq!(dec("palette.png").pixel(0, 0), [10, 20, 30]);
    assert_eq!(dec("palette.png").pixel(4, 0), [200, 100, 50]);
    let c = dec("cmyk.jpg").pixel(20, 18);
    assert!(c.iter().zip(&pil_cmyk).all(|(a, b)| (*a as i32 - b).abs() <= 3), "CMYK read as {c:?}, Pillow reads {pil_cmyk:?}");
}

/// A model that outputs NaN gives failed items saying so, not numbers.
#[test]
fn a_model_that_outputs_nan_gives_failed_items() {
    use prost::Message;
    let mut m = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec::default());
    let mut proto = jagged_onnx::pb::ModelProto::decode(m.bytes.as_slice()).unwrap();
    let g = proto.graph.as_mut().unwrap();
    let bias = g.initializer.iter_mut().find(|t| t.name() == "conv1.b").unwrap();
    bias.float_data.iter_mut().for_each(|v| *v = f32::NAN);
    m.bytes = proto.encode_to_vec();
    let files = vec![("a.png".to_string(), jagged_testkit::png(40, 36, 1)), ("b.png".to_string(), jagged_testkit::png(40, 36, 2))];
    let out = compute(&files, Some(m));
    assert_eq!(out.rows, 0);
    assert_eq!(out.failed.len(), 2);
    assert!(out.failed.iter().all(|f| f.reason.contains("not finite")), "{:?}", out.failed);
}

/// Garbage for a model, or a model that does not match its card, is refused
/// with a message naming the model.
#[test]
fn garbage_and_mismatched_models_are_refused_naming_the_model() {
    jagged_testkit::ort();
    let m = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec::default());
    let opts = jagged_infer::EngineOptions::cpu(1);
    let e = jagged_infer::Engine::load(b"definitely not onnx", &m.card, &opts).err().unwrap().to_string();
    assert!(e.contains("tiny_cnn") && e.contains("does not load"), "{e}");
    let mut card = m.card.clone();
    card.input_size = 64;
    let e = jagged_infer::Engine::load(&m.bytes, &card, &opts).err().unwrap().to_string();
    assert!(e.contains("tiny_cnn") && e.contains("[N, 3, 64, 64]"), "{e}");
    let mut card = m.card.clone();
    card.num_classes = 1000;
    let e = jagged_infer::Engine::load(&m.bytes, &card, &opts).err().unwrap().to_string();
    assert!(e.contains("has 10 classes; the card says 1000"), "{e}");
    let mut card = m.card.clone();
    card.input_name = "pixels".into();
    let e = jagged_infer::Engine::load(&m.bytes, &card, &opts).err().unwrap().to_string();
    assert!(e.contains("no input named `pixels`"), "{e}");
    // A float64 input where the card (and jagged) feeds float32.
    use prost::Message;
    let mut proto = jagged_onnx::pb::ModelProto::decode(m.bytes.as_slice()).unwrap();
    if let Some(jagged_onnx::pb::type_proto::Value::TensorType(t)) =
        proto.graph.as_mut().unwrap().input[0].r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.elem_type = Some(11);
    }
    let e = jagged_infer::Engine::load(&proto.encode_to_vec(), &m.card, &opts).err().unwrap().to_string();
    assert!(e.contains("tiny_cnn"), "{e}");
}

/// A model whose graph does not match its card is refused at submit, naming the
/// model and both numbers; a file that is not an ONNX graph too.
#[test]
fn a_model_that_does_not_match_its_card_is_refused_at_submit() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(&tmp.path().join("data"), 2, 10, &[]);
    let model = tiny_model(&tmp.path().join("models"));
    let card_path = model.with_extension("card.json");
    let mut card: serde_json::Value = serde_json::from_slice(&std::fs::read(&card_path).unwrap()).unwrap();
    card["num_classes"] = 1000.into();
    card["classes"] = serde_json::json!([]);
    card["wnids"] = serde_json::json!([]);
    std::fs::write(&card_path, serde_json::to_vec(&card).unwrap()).unwrap();
    let spec = format!("{BASE}[[families]]\nkind = \"diagonal\"\n");
    let err = submit(tmp.path(), &spec);
    assert!(err.contains("`models[0].path`: model `tiny_cnn`") && err.contains("output `logits` has 10 classes; the card says 1000"), "{err}");
    card["num_classes"] = 10.into();
    card["input_size"] = 64.into();
    std::fs::write(&card_path, serde_json::to_vec(&card).unwrap()).unwrap();
    let err = submit(tmp.path(), &spec);
    assert!(err.contains("model `tiny_cnn`") && err.contains("the card expects [N, 3, 64, 64]"), "{err}");
    std::fs::write(&model, b"this is not an onnx model").unwrap();
    let err = submit(tmp.path(), &spec);
    assert!(err.contains("model `tiny_cnn`") && err.contains("cannot be read: not an ONNX model"), "{err}");
}

/// Resolves `spec` (TOML after the common header) in `dir`; the sweep's items
/// as (name, label) and the notes submit prints, or the refusal.
/// Items as (name, label), and the notes submit prints.
type Read = (Vec<(String, Option<i32>)>, Vec<String>);

fn items(dir: &std::path::Path, dataset: &str) -> Result<Read, String> {
    let spec = format!(
        "name = \"d\"\n[dataset]\npath = \"data\"\n{dataset}\n[[models]]\npath = \"models/tiny_cnn.onnx\"\n[[families]]\nkind = \"diagonal\"\n"
    );
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
    let store = jagged_artifacts::open_store(dir.join("store").to_str().unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(jagged_client::resolve::resolve(&dir.join("spec.toml"), store.as_ref())).map_err(|e| e.to_string())?;
    Ok((r.sweep.images.iter().map(|i| (i.name.clone(), i.label)).collect(), r.notes))
}

/// A dataset folder is read one unambiguous way or refused with how to lay it
/// out; what was read, skipped and left out is said; a labels file that lists
/// only some images is handled as the spec chooses.
#[test]
fn dataset_layouts_are_read_unambiguously_or_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    tiny_model(&d.join("models"));
    let data = d.join("data");
    std::fs::create_dir_all(data.join("extra")).unwrap();
    for f in ["a.png", "b.png", "extra/c.png"] {
        std::fs::write(data.join(f), jagged_testkit::png(30, 30, 1)).unwrap();
    }
    std::fs::write(data.join("anim.gif"), b"GIF89a").unwrap();
    std::fs::write(data.join("notes.txt"), b"where the photos came from").unwrap();

    // Loose images beside a folder: refused, never read as classes.
    let e = items(d, "").unwrap_err();
    assert!(e.contains("holds both loose images (2) and folders (extra)") && e.contains("labels.csv") && e.contains("layout = \"images\""), "{e}");
    // Chosen explicitly: the loose images, unlabelled, and what was skipped.
    let (got, notes) = items(d, "layout = \"images\"").unwrap();
    assert_eq!(got, vec![("a.png".to_string(), None), ("b.png".to_string(), None)]);
    assert!(notes[0].ends_with("data: 2 images, 0 labelled (loose images, no labels.csv)"), "{notes:?}");
    assert!(notes.iter().any(|n| n.starts_with("ignored 1 folder(s) (extra)")), "{notes:?}");
    assert!(notes.iter().any(|n| n.starts_with("skipped 2 file(s): anim.gif (unsupported format GIF), notes.txt (not an image")), "{notes:?}");
    let e = items(d, "layout = \"classes\"").unwrap_err();
    assert!(e.contains("loose images (a.png, b.png) beside its class folders"), "{e}");

    // Only folders, not named by the model's classes: refused unless chosen.
    std::fs::remove_file(data.join("a.png")).unwrap();
    std::fs::remove_file(data.join("b.png")).unwrap();
    std::fs::create_dir_all(data.join("dogs")).unwrap();
    std::fs::write(data.join("dogs/d.png"), jagged_testkit::png(30, 30, 2)).unwrap();
    let e = items(d, "").unwrap_err();
    assert!(e.contains("holds folders that are not class names or ids of the model (dogs, extra)"), "{e}");
    let (got, notes) = items(d, "layout = \"classes\"").unwrap();
    assert_eq!(got, vec![("dogs/d.png".to_string(), Some(0)), ("extra/c.png".to_string(), Some(1))]);
    assert!(notes[0].ends_with("data: 2 classes, 2 images (one folder per class)"), "{notes:?}");

    // A labels file that lists some of the images: refused, or as chosen.
    std::fs::remove_dir_all(data.join("dogs")).unwrap();
    std::fs::remove_dir_all(data.join("extra")).unwrap();
    for f in ["a.png", "b.png", "c.png", "e.png"] {
        std::fs::write(data.join(f), jagged_testkit::png(30, 30, 3)).unwrap();
    }
    std::fs::write(data.join("labels.csv"), "file,label\na.png,1\nc.png,\n").unwrap();
    let e = items(d, "").unwrap_err();
    assert!(e.contains("lists 2 images but") && e.contains("holds 2 more it does not list (b.png, e.png)") && e.contains("unlisted"), "{e}");
    let (got, notes) = items(d, "unlisted = \"skip\"").unwrap();
    assert_eq!(got, vec![("a.png".to_string(), Some(1)), ("c.png".to_string(), None)]);
    assert!(notes[0].ends_with("labels.csv: 2 images, 1 labelled") && notes[1].starts_with("left out 2 images"), "{notes:?}");
    let (got, notes) = items(d, "unlisted = \"unlabelled\"").unwrap();
    let names: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!((names, got[2].1, got[3].1), (vec!["a.png", "c.png", "b.png", "e.png"], None, None));
    assert!(notes[1].starts_with("included 2 images the labels file does not list, unlabelled"), "{notes:?}");

    // A file listed twice is refused, naming both lines; a header jagged does
    // not read is named with the one it does.
    std::fs::write(data.join("labels.csv"), "file,label\na.png,1\nb.png,2\nc.png,\ne.png,3\na.png,2\n").unwrap();
    let e = items(d, "").unwrap_err();
    assert!(e.ends_with("labels.csv:6: image `a.png` is listed again (first on line 2): list each image once, with one label"), "{e}");
    std::fs::write(data.join("labels.csv"), "image,class\na.png,1\nb.png,2\nc.png,\ne.png,3\n").unwrap();
    let e = items(d, "").unwrap_err();
    assert!(e.ends_with("labels.csv:1: image `image` does not exist (a header, if this is one, is `file,label`)"), "{e}");
}

/// Unreachable or malformed addresses are named with the underlying error, once,
/// without the password, and log files carry no colour codes.
#[test]
fn errors_name_the_address_and_the_cause_once() {
    let run = |args: &[&str]| {
        let out = Command::new(jagged_bin()).args(args).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run(&["report", "1", "--database-url", "postgres://u:secret@127.0.0.1:9/x"]);
    assert!(e.contains("127.0.0.1:9") && e.contains("Connection refused") && !e.contains("secret"), "{e}");
    let e = run(&["report", "1", "--database-url", "not a url"]);
    assert!(e.contains("DATABASE_URL (--database-url) is not a URL") && e.contains("postgres://user:password@host:port/database"), "{e}");
    assert_eq!(e.matches("relative URL without a base").count(), 1, "said once: {e}");

    let e = run(&["sweep", "status", "1", "--coordinator", "http://127.0.0.1:9"]);
    assert!(e.contains("cannot reach the coordinator at http://127.0.0.1:9") && e.contains("Connection refused"), "{e}");

    // A worker pointed at a closed port says where and why, in plain text.
    jagged_testkit::ort();
    let tmp = tempfile::tempdir().unwrap();
    // Its connection attempts show in hyper's debug lines: the test waits for
    // four of them (the first call and three retries), not for a while.
    let mut worker = Command::new(jagged_bin())
        .args(["worker", "--coordinator", "http://127.0.0.1:9", "--store"])
        .arg(tmp.path())
        .env("JAGGED_LOG", "info,hyper_util::client::legacy::connect::http=debug")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = crate::util::Captured::new(worker.stderr.take().unwrap());
    stderr.wait_for("three retries", std::time::Duration::from_secs(30), |t| t.matches("connecting to 127.0.0.1:9").count() >= 4);
    worker.kill().unwrap();
    worker.wait().unwrap();
    let log = stderr.finish();
    assert!(log.contains("coordinator=\"http://127.0.0.1:9\"") && log.contains("Connection refused"), "{log}");
    assert_eq!(log.matches("coordinator unavailable; retrying").count(), 1, "one warning while the cause stays the same: {log}");
    assert!(!log.contains('\u{1b}'), "no colour codes when not on a terminal: {log:?}");
}

/// `jagged ... | head`: output into a pipe nobody reads any more ends the
/// command quietly instead of with a panic.
#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(&tmp.path().join("models"));
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(jagged_bin()).arg("inspect").arg(&model).stdout(writer).stderr(std::process::Stdio::piped()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("panicked"), "{:?}\n{err}", out.status);
}

/// A URL that is not a coordinator's (the dashboard's HTTP port, PostgreSQL's)
/// is named with the likely mistake.
#[test]
fn a_url_that_is_not_a_coordinator_is_named_as_such() {
    jagged_testkit::ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pg = jagged_local::LocalPostgres::start_in(&dir.join("pg"), false).unwrap();
    let http = jagged_testkit::free_port();
    let args: Vec<String> = ["coordinator", "--listen", "127.0.0.1:0", "--database-url", &pg.url(), "--http", &format!("127.0.0.1:{http}")]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut c = jagged_local::Proc::spawn("coordinator", &jagged_bin(), &args, &[], &dir.join("coordinator.log")).unwrap();
    let dashboard = format!("http://127.0.0.1:{http}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the dashboard never listened");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let postgres = format!("http://127.0.0.1:{}", pg.url().rsplit_once(':').unwrap().1.split('/').next().unwrap());
    for url in [&dashboard, &postgres] {
        let out = Command::new(jagged_bin()).args(["sweep", "status", "1", "--coordinator", url]).output().unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && e.contains(&format!("{url} is not a jagged coordinator (")), "{url}: {e}");
        assert!(e.contains("is it the dashboard's port, PostgreSQL's, or another service's?"), "{e}");
    }
    c.terminate(std::time::Duration::from_secs(5));
}
