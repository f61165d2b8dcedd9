//! The process-wide wgpu device. Every `GpuRenderer` of a process shares one
//! device and queue: opening a Vulkan device costs tens of milliseconds and, on
//! lavapipe, a pool of worker threads, so a recorder with several jobs opens it once.
//!
//! Adapter choice: every Vulkan and GL adapter is listed (debug log), and the
//! best kind wins: discrete > integrated > virtual > other > CPU (lavapipe,
//! llvmpipe), Vulkan before GL on a tie. Two environment variables override it:
//! - `TESSERA_GPU_ADAPTER=substring`: the first adapter whose name contains it
//!   (case-insensitive), whatever its kind;
//! - `TESSERA_GPU_BACKEND=vulkan|gl`: only that backend is enumerated.
//!
//! The device asks for no optional feature and for the downlevel (GLES 3.0 class)
//! limits, raised only in texture size to what the adapter allows, so it opens on
//! anything wgpu runs on, Mesa lavapipe 22.3 included.

use crate::render::RenderError;
use std::sync::{Arc, OnceLock};

/// Why no device could be opened. `Clone`: the first attempt's outcome is kept and
/// handed to every later caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdapterError {
    #[error("TESSERA_GPU_BACKEND={0:?}: use vulkan or gl")]
    BadBackend(String),
    #[error("no Vulkan or GL adapter (backends {0:?})")]
    NoneFound(wgpu::Backends),
    #[error("TESSERA_GPU_ADAPTER={0:?} matches no adapter (see the debug log for the list)")]
    NoMatch(String),
    #[error("{adapter} ({backend}): cannot open a device: {cause}")]
    Device {
        adapter: String,
        backend: wgpu::Backend,
        // Boxed: wgpu's error is large, and it would make every `RenderError` as large.
        #[source]
        cause: Box<wgpu::RequestDeviceError>,
    },
}

pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter_name: String,
    /// The adapter is a software rasteriser (`DeviceType::Cpu`: lavapipe, llvmpipe).
    pub is_cpu: bool,
    /// "vulkan" or "gl".
    pub backend: String,
    /// The driver and its version, e.g. "Mesa 25.0.7 (LLVM 15.0.6)".
    pub driver: String,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter_name", &self.adapter_name)
            .field("is_cpu", &self.is_cpu)
            .field("backend", &self.backend)
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

/// The first attempt's outcome, kept for the life of the process: a machine
/// without an adapter does not grow one, and retrying costs a Vulkan instance each time.
static SHARED: OnceLock<Result<Arc<GpuContext>, AdapterError>> = OnceLock::new();

/// The shared device on the chosen adapter, whatever its kind (lavapipe included).
pub fn shared() -> Result<Arc<GpuContext>, RenderError> {
    SHARED.get_or_init(|| open().map(Arc::new)).clone().map_err(RenderError::NoAdapter)
}

/// The shared device only if its adapter is real hardware (not `DeviceType::Cpu`).
/// Never panics: no adapter at all gives `None`. On a machine with only a software
/// adapter no device is opened (that alone costs about 100 MiB of memory).
pub(crate) fn shared_hardware() -> Option<Arc<GpuContext>> {
    if let Some(done) = SHARED.get() {
        return done.as_ref().ok().filter(|c| !c.is_cpu).cloned();
    }
    match choose_adapter() {
        Ok((_, adapter, _)) if adapter.get_info().device_type == wgpu::DeviceType::Cpu => {
            tracing::debug!(adapter = %adapter.get_info().name, "the only GPU adapter is a software one");
            None
        }
        Ok(_) => shared().ok().filter(|c| !c.is_cpu),
        Err(e) => {
            tracing::debug!("no GPU adapter: {e}");
            None
        }
    }
}

/// Backends to enumerate, from `TESSERA_GPU_BACKEND`.
fn backends() -> Result<wgpu::Backends, AdapterError> {
    match std::env::var("TESSERA_GPU_BACKEND") {
        Err(_) => Ok(wgpu::Backends::VULKAN | wgpu::Backends::GL),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" => Ok(wgpu::Backends::VULKAN | wgpu::Backends::GL),
            "vulkan" | "vk" => Ok(wgpu::Backends::VULKAN),
            "gl" | "gles" | "opengl" => Ok(wgpu::Backends::GL),
            other => Err(AdapterError::BadBackend(other.into())),
        },
    }
}

/// Lower is better.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let backend = if info.backend == wgpu::Backend::Vulkan { 0 } else { 1 };
    (kind, backend)
}

/// The instance, the adapter to use and whether it was forced by name.
fn choose_adapter() -> Result<(wgpu::Instance, wgpu::Adapter, bool), AdapterError> {
    let backends = backends()?;
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    for a in &adapters {
        let i = a.get_info();
        tracing::debug!(
            name = %i.name,
            kind = ?i.device_type,
            backend = %i.backend,
            driver = %i.driver,
            driver_info = %i.driver_info,
            "GPU adapter found"
        );
    }
    if adapters.is_empty() {
        return Err(AdapterError::NoneFound(backends));
    }
    let forced = std::env::var("TESSERA_GPU_ADAPTER").ok().filter(|s| !s.trim().is_empty());
    let adapter = match &forced {
        Some(want) => {
            let want = want.trim().to_lowercase();
            adapters
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&want))
                .ok_or(AdapterError::NoMatch(want))?
        }
        // Never empty here (checked above); were it, that is the same "no adapter".
        None => adapters.into_iter().min_by_key(|a| rank(&a.get_info())).ok_or(AdapterError::NoneFound(backends))?,
    };
    Ok((instance, adapter, forced.is_some()))
}

fn open() -> Result<GpuContext, AdapterError> {
    let (_instance, adapter, forced) = choose_adapter()?;
    let info = adapter.get_info();
    // Downlevel limits open everywhere; texture size follows the adapter so 4K
    // outputs and screen shares fit where the hardware allows them.
    let limits = wgpu::Limits::downlevel_defaults().using_resolution(adapter.limits());
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("tessera"),
        required_features: wgpu::Features::empty(),
        required_limits: limits,
        ..Default::default()
    }))
    .map_err(|cause| AdapterError::Device {
        adapter: info.name.clone(),
        backend: info.backend,
        cause: Box::new(cause),
    })?;
    // wgpu's default handler panics; a renderer reports errors through error
    // scopes, and anything that escapes them is logged rather than fatal.
    device.on_uncaptured_error(Arc::new(|e: wgpu::Error| tracing::error!("uncaptured wgpu error: {e}")));
    let is_cpu = info.device_type == wgpu::DeviceType::Cpu;
    tracing::info!(
        adapter = %info.name,
        kind = ?info.device_type,
        backend = %info.backend,
        driver = %info.driver_info,
        forced,
        "GPU adapter chosen"
    );
    Ok(GpuContext {
        device,
        queue,
        adapter_name: info.name,
        is_cpu,
        backend: info.backend.to_str().to_string(),
        driver: info.driver_info,
    })
}
