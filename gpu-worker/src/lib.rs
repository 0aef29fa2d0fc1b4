//! Tessera's GPU worker, as a library: the ComfyUI workflows with their parameter bindings
//! (`workflows/`), ComfyUI's WebSocket messages, and the job percentage they add up to. The
//! daemon that pulls jobs from the queues and drives ComfyUI is built on these.

pub mod comfy;
pub mod workflow;
