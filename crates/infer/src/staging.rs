//! Host memory that inputs are rendered into and outputs land in (on CUDA
//! page-locked, copied by DMA), and the fixed device buffers a captured CUDA
//! graph replays with.

use crate::options::Device;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::value::Tensor;

/// Per batch size, the input and output in the device's memory, at addresses
/// that stay the same for every run (a captured CUDA graph replays with them),
/// and the host tensor the output is copied to. Each size runs as its own
/// graph (ONNX Runtime's `gpu_graph_id`, the size's place here); buffers are
/// never freed while the engine lives.
pub(crate) struct Fixed {
    pub(crate) device: Allocator,
    pub(crate) buffers: Vec<FixedBatch>,
}

pub(crate) struct FixedBatch {
    pub(crate) n: usize,
    pub(crate) input: Tensor<f32>,
    pub(crate) output: Tensor<f32>,
    pub(crate) host: Tensor<f32>,
    pub(crate) options: ort::session::RunOptions,
}

/// Host memory the runtime reads inputs from and writes outputs to: on CUDA,
/// page-locked (pinned) memory from the execution provider's allocator, which the
/// device copies by DMA (from ordinary, pageable memory the runtime first copies
/// into a pinned buffer of its own, synchronously); on the CPU, the runtime's own
/// allocator, which it reads in place.
pub(crate) struct HostMemory {
    pub(crate) input: Allocator,
    pub(crate) output: Allocator,
    pub(crate) pinned: bool,
}

impl HostMemory {
    pub(crate) fn for_session(session: &Session, device: Device) -> HostMemory {
        if let Device::Cuda { id } = device {
            let pinned = |kind: MemoryType| {
                // The provider registers its pinned allocator under device 0 in some
                // runtime versions and under the GPU's ordinal in others.
                [id, 0].into_iter().find_map(|d| {
                    let info = MemoryInfo::new(AllocationDevice::CUDA_PINNED, d, AllocatorType::Device, kind).ok()?;
                    Allocator::new(session, info).ok()
                })
            };
            // Without one (see `Engine::pinned_staging`), pageable memory serves.
            if let (Some(input), Some(output)) = (pinned(MemoryType::CPUInput), pinned(MemoryType::CPUOutput)) {
                return HostMemory { input, output, pinned: true };
            }
        }
        HostMemory { input: Allocator::default(), output: Allocator::default(), pinned: false }
    }
}

/// A batch's input tensor in the engine's host staging memory ([`Engine::staging`]):
/// rendered into in place, then handed to the runtime without a copy on the host.
pub struct Staging {
    pub(crate) tensor: Tensor<f32>,
    pub(crate) inputs: usize,
}

impl Staging {
    /// How many inputs it holds.
    pub fn capacity(&self) -> usize {
        self.inputs
    }

    /// The inputs, NCHW, to render into.
    pub fn data_mut(&mut self) -> &mut [f32] {
        self.tensor.extract_tensor_mut().1
    }

    /// The inputs, NCHW.
    pub fn data(&self) -> &[f32] {
        self.tensor.extract_tensor().1
    }
}
