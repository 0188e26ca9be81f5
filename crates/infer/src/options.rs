//! Where and how a session runs: its device, threads and precision.

/// Where a session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// The CUDA execution provider on GPU `id` (needs the GPU build of the runtime
    /// library, from `onnxruntime-gpu`).
    Cuda {
        /// CUDA device ordinal.
        id: i32,
    },
}

impl std::str::FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Device, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda { id: 0 }),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<i32>().ok())
                .filter(|n| *n >= 0)
                .map(|id| Device::Cuda { id })
                .ok_or_else(|| format!("unknown device `{s}`: expected cpu, cuda or cuda:N")),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda { id } => write!(f, "cuda:{id}"),
        }
    }
}

/// How a session runs.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineOptions {
    /// Threads inside one operator (ORT intra-op).
    pub intra_threads: usize,
    /// Execution provider.
    pub device: Device,
    /// On CUDA, turn TF32 off so convolutions and matrix products run in full fp32.
    pub strict_fp32: bool,
    /// Run full batches on input and output tensors at fixed addresses in the
    /// device's memory, the staged inputs copied in and the outputs copied out
    /// around each run: what CUDA graphs need, which this turns on with CUDA
    /// (the graph is captured at the first runs and replayed after). The same
    /// copies run on the CPU provider, where they only cost.
    pub fixed_buffers: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            intra_threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            device: Device::Cpu,
            strict_fp32: false,
            fixed_buffers: false,
        }
    }
}

impl EngineOptions {
    /// CPU with `threads` intra-op threads.
    pub fn cpu(threads: usize) -> EngineOptions {
        EngineOptions { intra_threads: threads, ..Default::default() }
    }

    /// The execution provider and precision names recorded with results.
    pub fn labels(&self) -> (&'static str, &'static str) {
        match self.device {
            Device::Cpu => ("cpu", "fp32"),
            Device::Cuda { .. } if self.strict_fp32 => ("cuda", "fp32"),
            Device::Cuda { .. } => ("cuda", "tf32"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_label_their_results() {
        assert_eq!("cpu".parse::<Device>(), Ok(Device::Cpu));
        assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda { id: 0 }));
        assert_eq!("cuda:3".parse::<Device>(), Ok(Device::Cuda { id: 3 }));
        assert!("cuda:-1".parse::<Device>().is_err());
        assert!("gpu".parse::<Device>().unwrap_err().contains("cpu, cuda or cuda:N"));
        let mut o = EngineOptions { device: Device::Cuda { id: 0 }, ..EngineOptions::cpu(1) };
        assert_eq!(o.labels(), ("cuda", "tf32"));
        o.strict_fp32 = true;
        assert_eq!(o.labels(), ("cuda", "fp32"));
        assert_eq!(EngineOptions::cpu(2).labels(), ("cpu", "fp32"));
    }
}
