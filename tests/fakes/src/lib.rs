//! Loopback servers that speak the wire protocols of what cannot run here: ComfyUI with a GPU
//! model (built from recordings of a real ComfyUI). A dev-dependency only.

pub mod comfy;

pub use comfy::{Failure, FakeComfy, FakeConfig};
