//! Tessera's GPU worker: the ComfyUI workflows with their parameter bindings (`workflows/`),
//! ComfyUI's WebSocket messages and the job percentage they add up to, the client of the
//! internal API, the runner of one job, and the daemon loop over the job queues.

pub mod api;
pub mod comfy;
pub mod config;
pub mod daemon;
pub mod runner;
pub mod status;
pub mod workflow;
