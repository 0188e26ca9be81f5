//! Inputs rendered inside the model's graph, by ONNX Runtime on the model's
//! device: the pixels of a shard's images go over once, then each input as a
//! small view of them.

use super::batches::{deliver, Meter};
use super::{Plan, Probs, RunError};
use jagged_domain::image::Rgb8;
use jagged_domain::task::TaskItem;
use jagged_domain::transform::{Normalize, Prepared, TAPS};
use jagged_infer::{Engine, PerInput, Rendering};
use std::collections::HashMap;
use std::time::Instant;

/// The taps of an input that has none.
const NO_TAPS: [[f64; TAPS]; 2] = [[0.0; TAPS]; 2];

/// Pixels bound to the rendering session at a time: a shard's images go over
/// together (each once) unless they would take more than this.
const PIXELS_BOUND: usize = 64 << 20;

/// One input rendered in the graph: a window of its image at `(x0, y0)`, its
/// image turned by the angle whose sine and cosine `turn` holds, or its image
/// resampled from column `x0` and row `y0` on with `taps`.
#[derive(Clone, Copy)]
pub(crate) struct GraphInput<'a> {
    image: &'a Rgb8,
    x0: i64,
    y0: i64,
    turn: [f32; 2],
    /// A sub-pixel window's weights along x and y.
    taps: [[f64; TAPS]; 2],
}

/// A shard's inputs as the graph renders them: the rendering, each input, and
/// the normalised background of plain windows.
pub(crate) struct GraphInputs<'a> {
    rendering: Rendering,
    inputs: Vec<GraphInput<'a>>,
    background: [f32; 3],
}

/// The shard's inputs for the graph, where the engine has the rendering and
/// every input of the shard is a plain window (on one background), or every
/// one a turn, or every one a resampled window; `None` otherwise.
pub(crate) fn inputs<'a>(engine: &Engine, prepared: &'a [(TaskItem, Prepared)], plan: &Plan<'_>, norm: &Normalize) -> Option<GraphInputs<'a>> {
    let each = |f: &dyn Fn(&'a Prepared, usize, usize) -> Option<GraphInput<'a>>| -> Option<Vec<GraphInput<'a>>> {
        plan.work.iter().map(|&(i, p)| f(&prepared[i].1, i, p)).collect()
    };
    let windows = || {
        let views: Vec<_> = plan.work.iter().map(|&(i, p)| prepared[i].1.view(plan.points[i][p], norm)).collect::<Option<Vec<_>>>()?;
        if !views.windows(2).all(|w| w[0].background == w[1].background) {
            return None;
        }
        let background = views.first().map(|v| v.background).unwrap_or_default();
        let inputs = views.iter().map(|v| GraphInput { image: v.image, x0: v.x0, y0: v.y0, turn: [0.0; 2], taps: NO_TAPS }).collect();
        Some(GraphInputs { rendering: Rendering::Windows, inputs, background })
    };
    let turns = || {
        let inputs = each(&|prep, i, p| {
            let t = prep.turn(plan.points[i][p])?;
            Some(GraphInput { image: t.image, x0: 0, y0: 0, turn: [t.sin, t.cos], taps: NO_TAPS })
        })?;
        Some(GraphInputs { rendering: Rendering::Turns, inputs, background: [0.0; 3] })
    };
    let shifts = || {
        let inputs = each(&|prep, i, p| {
            let s = prep.shift(plan.points[i][p])?;
            Some(GraphInput { image: s.image, x0: s.first[0], y0: s.first[1], turn: [0.0; 2], taps: s.weights })
        })?;
        Some(GraphInputs { rendering: Rendering::Shifts, inputs, background: [0.0; 3] })
    };
    let can = |r: Rendering| engine.renders(r);
    (can(Rendering::Windows).then(windows).flatten())
        .or_else(|| can(Rendering::Turns).then(turns).flatten())
        .or_else(|| can(Rendering::Shifts).then(shifts).flatten())
}

/// The images to bind for the inputs from here on: each once, in the order the
/// inputs show them, those of the first `batch` inputs always, then more while
/// their pixels stay within `budget` bytes.
fn pixel_group<'a>(views: &[GraphInput<'a>], batch: usize, budget: usize) -> Vec<&'a Rgb8> {
    let mut group: Vec<&Rgb8> = Vec::new();
    let mut bytes = 0;
    for (k, v) in views.iter().enumerate() {
        if group.iter().any(|g| std::ptr::eq(*g, v.image)) {
            continue;
        }
        if k >= batch && bytes + v.image.data.len() > budget {
            break;
        }
        bytes += v.image.data.len();
        group.push(v.image);
    }
    group
}

/// Rendering inside the model's graph: the pixels of the shard's images go to
/// ONNX Runtime once (on CUDA: to the device, where they stay for every batch
/// over them), then one view per input, and ONNX Runtime renders on the
/// model's device. Images are bound in groups of up to [`PIXELS_BOUND`] bytes,
/// in the order the inputs show them. Returns `Ok(false)` if abandoned.
pub(crate) fn run(
    engine: &mut Engine,
    g: &GraphInputs<'_>,
    plan: &Plan<'_>,
    abandoned: &(dyn Fn() -> bool + Sync),
    probs: &mut Probs,
    meter: &mut Meter<'_>,
) -> Result<bool, RunError> {
    let (rendering, views, batch) = (g.rendering, &g.inputs, plan.batch);
    let mut pixels: Vec<u8> = Vec::new();
    let mut rows: Vec<i64> = Vec::with_capacity(batch * 5);
    let mut turns: Vec<f32> = Vec::new();
    let mut taps: Vec<f64> = Vec::new();
    // Where each bound image starts, in pixels.
    let mut placed: HashMap<*const Rgb8, i64> = HashMap::new();
    let mut bound = None;
    for (b, (chunk, vs)) in plan.work.chunks(batch).zip(views.chunks(batch)).enumerate() {
        if abandoned() {
            return Ok(false);
        }
        let pack = Instant::now();
        if bound.is_none() || vs.iter().any(|v| !placed.contains_key(&(v.image as *const _))) {
            // A new group: this batch's images, then the next ones the inputs show
            // while they fit.
            pixels.clear();
            placed.clear();
            for image in pixel_group(&views[b * batch..], vs.len(), PIXELS_BOUND) {
                placed.insert(image as *const _, (pixels.len() / 3) as i64);
                pixels.extend_from_slice(&image.data);
            }
            drop(bound.take());
            let b = engine.bind_pixels_for(rendering, &pixels, g.background).map_err(RunError::Model)?;
            meter.timing.input_bytes += b.bytes;
            bound = Some(b);
        }
        rows.clear();
        turns.clear();
        taps.clear();
        // Padded runs repeat the last input; its outputs are dropped.
        let n = if plan.fixed { batch } else { vs.len() };
        for v in vs.iter().chain(std::iter::repeat_n(vs.last().expect("a batch has inputs"), n - vs.len())) {
            let start = placed[&(v.image as *const _)];
            rows.extend_from_slice(&[start, v.image.width as i64, v.image.height as i64, v.x0, v.y0]);
            match rendering {
                Rendering::Windows => {}
                Rendering::Turns => turns.extend_from_slice(&v.turn),
                Rendering::Shifts => {
                    for axis in &v.taps {
                        taps.extend_from_slice(axis);
                        taps.push(0.0);
                    }
                }
            }
        }
        meter.starved(pack);
        let run = Instant::now();
        let extra = match rendering {
            Rendering::Windows => PerInput::None,
            Rendering::Turns => PerInput::Turns(&turns),
            Rendering::Shifts => PerInput::Taps(&taps),
        };
        let out = engine.probabilities_bound(bound.as_mut().expect("bound above"), &rows, extra).map_err(RunError::Model)?;
        meter.ran(run, (rows.len() * 8 + turns.len() * 4 + taps.len() * 8) as u64, n);
        deliver(chunk, out, probs);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_groups_take_a_batchs_images_then_what_fits() {
        // Images of 300, 600 and 300 bytes.
        let imgs = [
            Rgb8::from_raw(10, 10, vec![0; 300]).unwrap(),
            Rgb8::from_raw(20, 10, vec![1; 600]).unwrap(),
            Rgb8::from_raw(10, 10, vec![2; 300]).unwrap(),
        ];
        let v = |k: usize| GraphInput { image: &imgs[k], x0: 0, y0: 0, turn: [0.0; 2], taps: NO_TAPS };
        let views = [v(0), v(0), v(1), v(1), v(2), v(0)];
        let names = |g: Vec<&Rgb8>| g.iter().map(|i| imgs.iter().position(|j| std::ptr::eq(*i, j)).unwrap()).collect::<Vec<_>>();
        assert_eq!(names(pixel_group(&views, 2, 10_000)), vec![0, 1, 2], "all fit: each image once, in order");
        assert_eq!(names(pixel_group(&views, 2, 900)), vec![0, 1], "the third would pass the budget");
        assert_eq!(names(pixel_group(&views, 2, 100)), vec![0], "the batch's own images always");
        assert_eq!(names(pixel_group(&views, 5, 100)), vec![0, 1, 2], "however many that is");
        assert_eq!(names(pixel_group(&views[3..], 1, 800)), vec![1], "a later group starts at its batch");
    }
}
