//! GPU telemetry for heartbeats and `/worker/health`: read from NVML when the NVIDIA driver is there, otherwise
//! from what ComfyUI's `/system_stats` says about its device, otherwise nothing.
//!
//! NVML (`libnvidia-ml.so.1`) is loaded at run time by `nvml-wrapper`, so the worker builds and runs on machines
//! without a GPU, a driver or CUDA; there [`Gpu::detect`] logs once and falls back.

use std::sync::Arc;

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::error::NvmlError;
use serde::Serialize;
use serde_json::Value;

const MIB: u64 = 1024 * 1024;

/// Where a [`GpuTelemetry`] came from; serialized as `nvml`, `comfyui` or `none`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TelemetrySource {
    /// NVIDIA's management library, read directly.
    Nvml,
    /// ComfyUI's `/system_stats` (name and memory only).
    ComfyUi,
    /// Nothing was available: every field is `None`.
    #[default]
    None,
}

/// One reading of the worker's GPU (device 0). Every field is optional: each source knows only some of them,
/// and a field the driver does not support stays `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GpuTelemetry {
    /// The device's name, e.g. `NVIDIA GeForce RTX 4090` (`cpu` when ComfyUI runs on the CPU).
    pub name: Option<String>,
    /// The GPU core temperature in °C (NVML only).
    pub temperature_c: Option<u32>,
    /// The percentage of the last sample period in which a kernel ran (NVML only).
    pub utilization_percent: Option<u32>,
    /// Memory in use, in MiB.
    pub memory_used_mb: Option<u64>,
    /// Memory installed, in MiB.
    pub memory_total_mb: Option<u64>,
    /// The newest CUDA version the driver supports, e.g. `12.4` (NVML only).
    pub cuda_version: Option<String>,
    /// Where this reading came from.
    pub source: TelemetrySource,
}

/// The worker's view of its GPU: NVML if it could be loaded at [`Gpu::detect`], else only ComfyUI's
/// `/system_stats`. Cloning is cheap and clones share one NVML handle.
#[derive(Clone, Debug)]
pub struct Gpu {
    nvml: Option<Arc<Nvml>>,
}

impl Gpu {
    /// Loads NVML and checks that it sees device 0. Never fails: without NVML (no driver, no GPU, a container
    /// without the NVIDIA runtime) it logs once at info level and [`Gpu::sample`] falls back to ComfyUI.
    ///
    /// This blocks while the driver initialises, usually milliseconds but possibly seconds on a cold GPU; call it
    /// once at start-up (or in `spawn_blocking`), not per request.
    pub fn detect() -> Gpu {
        let nvml = match Nvml::init() {
            Ok(nvml) => nvml,
            Err(error) => {
                tracing::info!(%error, "NVML unavailable; GPU telemetry will come from ComfyUI's /system_stats");
                return Gpu::without_nvml();
            }
        };
        let name = match nvml.device_by_index(0).and_then(|device| device.name()) {
            Ok(name) => name,
            Err(error) => {
                tracing::info!(%error, "NVML sees no GPU 0; GPU telemetry will come from ComfyUI's /system_stats");
                return Gpu::without_nvml();
            }
        };
        tracing::info!(gpu = %name, "GPU telemetry from NVML");
        Gpu {
            nvml: Some(Arc::new(nvml)),
        }
    }

    /// A `Gpu` that never loads NVML: its samples come from `/system_stats` only.
    pub fn without_nvml() -> Gpu {
        Gpu { nvml: None }
    }

    /// Whether samples are read from NVML.
    pub fn has_nvml(&self) -> bool {
        self.nvml.is_some()
    }

    /// Reads device 0 from NVML when [`Gpu::detect`] loaded it (and it still answers); otherwise parses ComfyUI's
    /// `/system_stats` JSON if given; otherwise returns a reading with every field `None`. Blocking but fast.
    pub fn sample(&self, system_stats: Option<&Value>) -> GpuTelemetry {
        if let Some(nvml) = &self.nvml {
            match sample_nvml(nvml) {
                Ok(telemetry) => return telemetry,
                Err(error) => tracing::debug!(%error, "NVML could not read GPU 0; falling back to /system_stats"),
            }
        }
        system_stats.map(from_system_stats).unwrap_or_default()
    }
}

/// Device 0 from NVML. Only reaching the device is an error; a query the device or driver does not support
/// leaves its field `None`.
fn sample_nvml(nvml: &Nvml) -> Result<GpuTelemetry, NvmlError> {
    let device = nvml.device_by_index(0)?;
    let memory = device.memory_info().ok();
    let cuda = nvml.sys_cuda_driver_version().ok();
    Ok(GpuTelemetry {
        name: device.name().ok(),
        temperature_c: device.temperature(TemperatureSensor::Gpu).ok(),
        utilization_percent: device.utilization_rates().ok().map(|rates| rates.gpu),
        memory_used_mb: memory.as_ref().map(|m| m.used / MIB),
        memory_total_mb: memory.as_ref().map(|m| m.total / MIB),
        cuda_version: cuda.map(|v| {
            format!(
                "{}.{}",
                nvml_wrapper::cuda_driver_version_major(v),
                nvml_wrapper::cuda_driver_version_minor(v)
            )
        }),
        source: TelemetrySource::Nvml,
    })
}

/// `devices[0]` of ComfyUI's `/system_stats`: its name and `vram_total`/`vram_free` (bytes). Fields that are
/// missing or not what they should be stay `None`; the source is [`TelemetrySource::ComfyUi`] only if at least
/// one field was read. `system.pytorch_version` names the CUDA that PyTorch was built with, not the driver's, so
/// `cuda_version` stays `None`.
fn from_system_stats(stats: &Value) -> GpuTelemetry {
    let device = stats
        .get("devices")
        .and_then(Value::as_array)
        .and_then(|devices| devices.first());
    let field = |name: &str| device.and_then(|d| d.get(name));
    let total = field("vram_total").and_then(bytes);
    let free = field("vram_free").and_then(bytes);
    let mut telemetry = GpuTelemetry {
        name: field("name").and_then(Value::as_str).and_then(device_name),
        memory_total_mb: total.map(|t| t / MIB),
        memory_used_mb: total
            .zip(free)
            .and_then(|(t, f)| t.checked_sub(f))
            .map(|used| used / MIB),
        ..GpuTelemetry::default()
    };
    if telemetry.name.is_some() || telemetry.memory_total_mb.is_some() {
        telemetry.source = TelemetrySource::ComfyUi;
    }
    telemetry
}

/// A byte count: a non-negative integer, or a non-negative finite float (Python may send `1.6e10`).
fn bytes(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        let f = value.as_f64()?;
        // `as` saturates at u64::MAX, which is no real device; the range check keeps garbage out.
        (f.is_finite() && (0.0..1e18).contains(&f)).then_some(f as u64)
    })
}

/// ComfyUI's device name without its decorations: `cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync` becomes
/// `NVIDIA GeForce RTX 4090`, as NVML names it. Other names (`cpu`, `mps`, ...) are kept as they are.
fn device_name(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let cuda_model = raw.split_once(' ').and_then(|(prefix, rest)| {
        let index = prefix.strip_prefix("cuda:")?;
        (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())).then_some(rest)
    });
    let name = match cuda_model {
        Some(rest) => rest.rsplit_once(" :").map_or(rest, |(model, _allocator)| model).trim(),
        None => raw,
    };
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cpu_stats() -> Value {
        json!({
            "system": {
                "os": "posix", "ram_total": 25217441792u64, "ram_free": 20000000000u64, "comfyui_version": "0.3.64",
                "python_version": "3.12", "pytorch_version": "2.8.0+cpu", "embedded_python": false,
                "argv": ["main.py", "--cpu"]
            },
            "devices": [{
                "name": "cpu", "type": "cpu", "index": null, "vram_total": 25217441792u64,
                "vram_free": 20000000000u64, "torch_vram_total": 25217441792u64, "torch_vram_free": 20000000000u64
            }]
        })
    }

    fn cuda_stats() -> Value {
        json!({
            "system": {"os": "posix", "pytorch_version": "2.8.0+cu128", "comfyui_version": "0.3.64"},
            "devices": [{
                "name": "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync", "type": "cuda", "index": 0,
                "vram_total": 25_757_220_864u64, "vram_free": 4_294_967_296u64,
                "torch_vram_total": 0, "torch_vram_free": 0
            }]
        })
    }

    #[test]
    fn reads_comfyui_on_the_cpu() {
        let telemetry = Gpu::without_nvml().sample(Some(&cpu_stats()));
        assert_eq!(
            telemetry,
            GpuTelemetry {
                name: Some("cpu".into()),
                temperature_c: None,
                utilization_percent: None,
                memory_used_mb: Some((25217441792 - 20000000000) / MIB),
                memory_total_mb: Some(25217441792 / MIB),
                cuda_version: None,
                source: TelemetrySource::ComfyUi,
            }
        );
        assert_eq!(telemetry.memory_total_mb, Some(24049));
        assert_eq!(telemetry.memory_used_mb, Some(4975));
    }

    #[test]
    fn reads_comfyui_on_cuda() {
        let telemetry = from_system_stats(&cuda_stats());
        assert_eq!(telemetry.name.as_deref(), Some("NVIDIA GeForce RTX 4090"));
        assert_eq!(telemetry.memory_total_mb, Some(24564));
        assert_eq!(telemetry.memory_used_mb, Some(24564 - 4096));
        // pytorch_version's "+cu128" is PyTorch's build, not the driver's CUDA.
        assert_eq!(telemetry.cuda_version, None);
        assert_eq!(telemetry.temperature_c, None);
        assert_eq!(telemetry.utilization_percent, None);
        assert_eq!(telemetry.source, TelemetrySource::ComfyUi);
    }

    #[test]
    fn tidies_only_cuda_device_names() {
        let name = |raw: &str| device_name(raw);
        assert_eq!(
            name("cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync").as_deref(),
            Some("NVIDIA GeForce RTX 4090")
        );
        assert_eq!(
            name("cuda:1 NVIDIA H100 80GB HBM3 : native").as_deref(),
            Some("NVIDIA H100 80GB HBM3")
        );
        assert_eq!(name("cuda:0 NVIDIA A10G : ").as_deref(), Some("NVIDIA A10G"));
        assert_eq!(name("cuda:0 NVIDIA L4").as_deref(), Some("NVIDIA L4"));
        assert_eq!(name("cpu").as_deref(), Some("cpu"));
        assert_eq!(name("mps").as_deref(), Some("mps"));
        assert_eq!(
            name("xpu:0 Intel(R) Arc(TM) A770 Graphics").as_deref(),
            Some("xpu:0 Intel(R) Arc(TM) A770 Graphics")
        );
        assert_eq!(name("cuda: weird").as_deref(), Some("cuda: weird"));
        assert_eq!(name("   "), None);
        assert_eq!(name(""), None);
    }

    #[test]
    fn missing_fields_stay_none() {
        let no_free = json!({"devices": [{"name": "cpu", "vram_total": 1073741824u64}]});
        let telemetry = from_system_stats(&no_free);
        assert_eq!(telemetry.memory_total_mb, Some(1024));
        assert_eq!(telemetry.memory_used_mb, None);
        assert_eq!(telemetry.source, TelemetrySource::ComfyUi);

        let memory_only = json!({"devices": [{"vram_total": 2147483648u64, "vram_free": 1073741824u64}]});
        let telemetry = from_system_stats(&memory_only);
        assert_eq!(telemetry.name, None);
        assert_eq!(
            (telemetry.memory_used_mb, telemetry.memory_total_mb),
            (Some(1024), Some(2048))
        );
        assert_eq!(telemetry.source, TelemetrySource::ComfyUi);

        for empty in [
            json!({}),
            json!({"devices": []}),
            json!({"devices": [{}]}),
            json!({"system": {}}),
        ] {
            assert_eq!(from_system_stats(&empty), GpuTelemetry::default(), "{empty}");
        }
    }

    #[test]
    fn garbage_values_are_ignored() {
        let garbage = [
            json!(null),
            json!("devices"),
            json!([1, 2, 3]),
            json!({"devices": "cuda"}),
            json!({"devices": {"0": {"name": "cpu"}}}),
            json!({"devices": [null]}),
            json!({"devices": [42]}),
            json!({"devices": [{"name": 7, "vram_total": "lots", "vram_free": -1}]}),
            json!({"devices": [{"name": null, "vram_total": -5, "vram_free": true}]}),
            json!({"devices": [{"name": ["cpu"], "vram_total": {"bytes": 1}, "vram_free": [1]}]}),
            json!({"devices": [{"vram_total": -1.5e10, "vram_free": 1e300}]}),
        ];
        for stats in garbage {
            assert_eq!(from_system_stats(&stats), GpuTelemetry::default(), "{stats}");
        }

        // Free more than total is nonsense: total is kept, used is not made up.
        let inverted = json!({"devices": [{"name": "cpu", "vram_total": 1048576u64, "vram_free": 2097152u64}]});
        let telemetry = from_system_stats(&inverted);
        assert_eq!((telemetry.memory_used_mb, telemetry.memory_total_mb), (None, Some(1)));

        // Floats (as Python sometimes sends) are byte counts too; a bad name does not spoil the memory.
        let floats = json!({"devices": [{"name": 3, "vram_total": 2147483648.0, "vram_free": 1.073741824e9}]});
        let telemetry = from_system_stats(&floats);
        assert_eq!(telemetry.name, None);
        assert_eq!(
            (telemetry.memory_used_mb, telemetry.memory_total_mb),
            (Some(1024), Some(2048))
        );
        assert_eq!(telemetry.source, TelemetrySource::ComfyUi);
    }

    #[test]
    fn nothing_to_read_is_all_none() {
        assert_eq!(Gpu::without_nvml().sample(None), GpuTelemetry::default());
        assert_eq!(GpuTelemetry::default().source, TelemetrySource::None);
        assert!(!Gpu::without_nvml().has_nvml());
    }

    #[test]
    fn serializes_for_heartbeats() {
        let telemetry = from_system_stats(&cuda_stats());
        assert_eq!(
            serde_json::to_value(&telemetry).unwrap(),
            json!({
                "name": "NVIDIA GeForce RTX 4090", "temperature_c": null, "utilization_percent": null,
                "memory_used_mb": 20468, "memory_total_mb": 24564, "cuda_version": null, "source": "comfyui"
            })
        );
        let sources: Vec<_> = [TelemetrySource::Nvml, TelemetrySource::ComfyUi, TelemetrySource::None]
            .iter()
            .map(|s| serde_json::to_value(s).unwrap())
            .collect();
        assert_eq!(sources, [json!("nvml"), json!("comfyui"), json!("none")]);
    }

    /// On a machine without NVIDIA's driver (CI, this sandbox) detection falls back without panicking; on one
    /// with a GPU it reads NVML.
    #[test]
    fn detect_never_panics() {
        let gpu = Gpu::detect();
        let without = gpu.sample(None);
        let with = gpu.clone().sample(Some(&cpu_stats()));
        if gpu.has_nvml() {
            for telemetry in [&without, &with] {
                assert_eq!(telemetry.source, TelemetrySource::Nvml);
                assert!(telemetry.name.is_some(), "{telemetry:?}");
                assert!(
                    telemetry.memory_total_mb.is_some_and(|total| total > 0),
                    "{telemetry:?}"
                );
            }
        } else {
            assert_eq!(without, GpuTelemetry::default());
            assert_eq!(with.source, TelemetrySource::ComfyUi);
            assert_eq!(with.name.as_deref(), Some("cpu"));
        }
    }
}
