//! Inputs drawn inside the model's graph: the model with a rendering in
//! front (`jagged_onnx::views`), as another session on the same device, run
//! on pixels handed over once and views of them.

use crate::session::{bind_output, extract_rows, output_shape, session, Renderer};
use crate::{Engine, EngineOptions, InferError};
use ort::session::{IoBinding, Session};
use ort::value::{Tensor, TensorRef};

/// What each input of a batch rendered in the graph needs besides its view.
#[derive(Clone, Copy, Debug)]
pub enum PerInput<'a> {
    /// Nothing ([`Rendering::Windows`]).
    None,
    /// A sine and a cosine ([`Rendering::Turns`]).
    Turns(&'a [f32]),
    /// Its taps ([`Rendering::Shifts`]: x weights, a zero, y weights, a zero).
    Taps(&'a [f64]),
}

/// Which rendering session runs a shard's inputs in the graph
/// ([`Engine::attach`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rendering {
    /// Plain windows (`jagged_onnx::views::prepend`).
    Windows,
    /// Rotations (`jagged_onnx::views::prepend_turns`).
    Turns,
    /// Sub-pixel windows (`jagged_onnx::views::prepend_shifts`).
    Shifts,
}

/// Pixels handed to the rendering session once ([`Engine::bind_pixels`]) and
/// kept where the session runs (on CUDA: copied to the device once), for any
/// number of batches of views over them ([`Engine::probabilities_bound_views`]).
pub struct BoundPixels {
    pub(crate) binding: IoBinding,
    pub(crate) rendering: Rendering,
    /// Bytes handed over: the pixels and the background.
    pub bytes: u64,
}

impl Engine {
    /// Hands `pixels` (RGB, as [`Engine::run_views`] takes them) and the
    /// normalised `background` to the rendering session once, for batches of
    /// views over them ([`Engine::probabilities_bound_views`]).
    pub fn bind_pixels(&mut self, pixels: &[u8], background: [f32; 3]) -> Result<BoundPixels, InferError> {
        self.bind_pixels_for(Rendering::Windows, pixels, background)
    }

    /// [`Engine::bind_pixels`] for `rendering`'s session (only plain windows
    /// take a background: rotations show black, sub-pixel windows the edge).
    pub fn bind_pixels_for(&mut self, rendering: Rendering, pixels: &[u8], background: [f32; 3]) -> Result<BoundPixels, InferError> {
        assert_eq!(pixels.len() % 3, 0);
        let run = |e: ort::Error| InferError::Run(e.to_string());
        let mut px = Tensor::<u8>::new(&self.host.input, [(pixels.len() / 3).max(1), 3]).map_err(run)?;
        let session = self.renderer(rendering)?;
        let data = px.extract_tensor_mut().1;
        data[..pixels.len()].copy_from_slice(pixels);
        data[pixels.len()..].fill(0);
        let mut binding = session.create_binding().map_err(run)?;
        binding.bind_input("jagged_pixels", &px).map_err(run)?;
        let mut bytes = pixels.len() as u64;
        if rendering == Rendering::Windows {
            let bg = Tensor::<f32>::from_array(([1usize, 3], background.to_vec())).map_err(run)?;
            binding.bind_input("jagged_background", &bg).map_err(run)?;
            bytes += 12;
        }
        Ok(BoundPixels { binding, rendering, bytes })
    }

    /// [`Engine::probabilities_views`] over pixels bound before: only the views
    /// (5 numbers each) go to the runtime.
    pub fn probabilities_bound_views(&mut self, bound: &mut BoundPixels, views: &[i64]) -> Result<Vec<Result<Vec<f32>, String>>, InferError> {
        self.probabilities_bound(bound, views, PerInput::None)
    }

    /// [`Engine::probabilities_bound_views`] for any rendering, with what its
    /// inputs need besides their views.
    pub fn probabilities_bound(
        &mut self,
        bound: &mut BoundPixels,
        views: &[i64],
        extra: PerInput<'_>,
    ) -> Result<Vec<Result<Vec<f32>, String>>, InferError> {
        let n = views.len() / 5;
        assert_eq!(views.len(), n * 5);
        let run = |e: ort::Error| InferError::Run(e.to_string());
        let vw = Tensor::<i64>::from_array(([n, 5], views.to_vec())).map_err(run)?;
        bound.binding.bind_input("jagged_views", &vw).map_err(run)?;
        match (bound.rendering, extra) {
            (Rendering::Windows, PerInput::None) => {}
            (Rendering::Turns, PerInput::Turns(turns)) => {
                assert_eq!(turns.len(), n * 2, "a sine and a cosine per input");
                let t = Tensor::<f32>::from_array(([n, 2], turns.to_vec())).map_err(run)?;
                bound.binding.bind_input("jagged_turns", &t).map_err(run)?;
            }
            (Rendering::Shifts, PerInput::Taps(taps)) => {
                let k = taps.len() / n.max(1);
                assert_eq!(taps.len(), n * k, "the same taps per input");
                let t = Tensor::<f64>::from_array(([n, k], taps.to_vec())).map_err(run)?;
                bound.binding.bind_input("jagged_taps", &t).map_err(run)?;
            }
            (r, _) => return Err(InferError::Run(format!("{r:?} rendering given the wrong inputs"))),
        }
        let Engine { renderers, card, host, .. } = self;
        let r = renderers[bound.rendering as usize].as_mut().ok_or_else(|| InferError::Run("no rendering session".into()))?;
        let shape = output_shape(&r.session, card, n);
        bind_output(&mut bound.binding, &card.output_name, shape, &mut r.out, &host.output)?;
        let raw = {
            let outputs = r.session.run_binding(&bound.binding).map_err(run)?;
            extract_rows(&outputs[card.output_name.as_str()], n, card.num_classes as usize)?
        };
        Ok(self.to_probabilities(&raw))
    }

    /// Loads the model with `rendering` in front (the matching
    /// `jagged_onnx::views::prepend*` made `bytes`), as another session on the
    /// same device, for [`Engine::bind_pixels_for`].
    pub fn attach(&mut self, rendering: Rendering, bytes: &[u8], opts: &EngineOptions) -> Result<(), InferError> {
        // Its inputs change size with the images bound: no fixed buffers.
        let session = session(bytes, &self.card, &EngineOptions { fixed_buffers: false, ..opts.clone() })?;
        self.renderers[rendering as usize] = Some(Renderer { session, out: None });
        Ok(())
    }

    /// [`Engine::attach`] of the plain windows' rendering, for [`Engine::run_views`].
    pub fn attach_views(&mut self, bytes: &[u8], opts: &EngineOptions) -> Result<(), InferError> {
        self.attach(Rendering::Windows, bytes, opts)
    }

    /// Whether the engine has `rendering`'s session.
    pub fn renders(&self, rendering: Rendering) -> bool {
        self.renderers[rendering as usize].is_some()
    }

    pub(crate) fn renderer(&mut self, rendering: Rendering) -> Result<&mut Session, InferError> {
        let r = self.renderers[rendering as usize].as_mut();
        r.map(|r| &mut r.session).ok_or_else(|| InferError::Run(format!("no rendering session for {rendering:?}: attach it first")))
    }

    /// Runs the rendering session on `n` inputs, each a view (5 numbers, see
    /// `jagged_onnx::views`) of images whose RGB pixels lie in `pixels`, with the
    /// normalised `background` outside them; returns the raw outputs, `n x classes`.
    pub fn run_views(&mut self, pixels: &[u8], views: &[i64], background: [f32; 3]) -> Result<Vec<f32>, InferError> {
        let n = views.len() / 5;
        assert_eq!(views.len(), n * 5);
        assert_eq!(pixels.len() % 3, 0);
        let session = &mut self.renderers[Rendering::Windows as usize]
            .as_mut()
            .ok_or_else(|| InferError::Run("no rendering session: attach_views first".into()))?
            .session;
        let run = |e: ort::Error| InferError::Run(e.to_string());
        let px = TensorRef::from_array_view(([pixels.len() / 3, 3], pixels)).map_err(run)?;
        let vw = TensorRef::from_array_view(([n, 5], views)).map_err(run)?;
        let bg = TensorRef::from_array_view(([1usize, 3], &background[..])).map_err(run)?;
        let outputs = session.run(ort::inputs!["jagged_pixels" => px, "jagged_views" => vw, "jagged_background" => bg]).map_err(run)?;
        let (shape, data) = outputs[self.card.output_name.as_str()].try_extract_tensor::<f32>().map_err(run)?;
        let k = self.card.num_classes as usize;
        if data.len() != n * k {
            return Err(InferError::Run(format!("output shape {shape:?} is not [{n}, {k}]")));
        }
        Ok(data.to_vec())
    }

    /// [`Engine::run_views`], each row converted to probabilities as [`Engine::probabilities`] does.
    pub fn probabilities_views(&mut self, pixels: &[u8], views: &[i64], background: [f32; 3]) -> Result<Vec<Result<Vec<f32>, String>>, InferError> {
        let raw = self.run_views(pixels, views, background)?;
        Ok(self.to_probabilities(&raw))
    }
}
