//! Tessera's GPU worker: the ComfyUI workflows with their parameter bindings (`workflows/`),
//! ComfyUI's WebSocket messages and the job percentage they add up to, ComfyUI's client (one
//! shared WebSocket), one run on ComfyUI and the storing of its outputs, the client of the internal
//! API, the runner of one queued job, the diagnostic `POST /worker/run_job`, and the daemon loop
//! over the job queues.

pub mod api;
pub mod client;
pub mod comfy;
pub mod config;
pub mod daemon;
pub mod execution;
pub mod metrics;
pub mod run_job;
pub mod runner;
pub mod status;
pub mod telemetry;
pub mod workflow;
