//! The ONNX Runtime library, loaded once per process from `ORT_DYLIB_PATH`
//! (ONNX Runtime's own convention, read here and nowhere else).

use crate::InferError;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The environment and the library file it was loaded from.
static ENV: OnceLock<Result<(ort::environment::Environment, PathBuf), String>> = OnceLock::new();

/// Loads ONNX Runtime from `ORT_DYLIB_PATH` once per process.
pub fn init_runtime() -> Result<&'static ort::environment::Environment, InferError> {
    ENV.get_or_init(|| {
        let path = std::env::var_os("ORT_DYLIB_PATH").ok_or_else(|| {
            "ORT_DYLIB_PATH is not set; point it at libonnxruntime.so (`scripts/fetch.sh ort` puts one in .cache/jagged/ort)".to_string()
        })?;
        let p = std::path::Path::new(&path);
        if !p.is_file() {
            return Err(format!("ORT_DYLIB_PATH={} does not name a file", p.display()));
        }
        let abs = std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let env = ort::init_from(&abs)
            .map_err(|e| format!("loading {}: {e}", abs.display()))?
            .with_name("jagged")
            .build()
            .map_err(|e| format!("creating the environment: {e}"))?;
        Ok((env, abs))
    })
    .as_ref()
    .map(|(env, _)| env)
    .map_err(|e| InferError::Runtime(e.clone()))
}

/// The loaded ONNX Runtime's version (`1.22.0`), as its `GetVersionString`
/// says; empty before [`init_runtime`] succeeded.
pub fn runtime_version() -> String {
    static VERSION: OnceLock<String> = OnceLock::new();
    let Some(Ok((_, path))) = ENV.get() else { return String::new() };
    VERSION
        .get_or_init(|| {
            // The library is loaded already: this takes another reference to it.
            // SAFETY: `OrtGetApiBase` takes nothing and returns a pointer to a static
            // struct of two function pointers, the second of which returns a static
            // NUL-terminated string; both are ONNX Runtime's stable ABI.
            unsafe {
                let Ok(lib) = libloading::Library::new(path) else { return String::new() };
                let Ok(get) = lib.get::<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase>(b"OrtGetApiBase") else { return String::new() };
                let base = get();
                if base.is_null() {
                    return String::new();
                }
                let v = ((*base).GetVersionString)();
                if v.is_null() {
                    return String::new();
                }
                std::ffi::CStr::from_ptr(v).to_string_lossy().into_owned()
            }
        })
        .clone()
}
