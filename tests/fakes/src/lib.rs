//! Loopback servers that speak the wire protocols of what cannot run here: ComfyUI with a GPU
//! model (built from recordings of a real ComfyUI), and a customer's webhook endpoint (with
//! oracles for the signature header and the event body). A dev-dependency only.

pub mod comfy;
pub mod webhook;

pub use comfy::{Failure, FakeComfy, FakeConfig};
pub use webhook::{ReceivedWebhook, Reply, WebhookReceiver, check_event_shape, verify_signature};
