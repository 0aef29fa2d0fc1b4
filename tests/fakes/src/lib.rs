//! Loopback servers that speak the wire protocols of what cannot run here: ComfyUI with a GPU
//! model (built from recordings of a real ComfyUI), a customer's webhook endpoint (with oracles
//! for the signature header and the event body), the Telegram Bot API (a fake that
//! teloxide can talk to, recording every call and each chat's messages), and Discord's REST API
//! v10 (a fake that serenity's `Http` can talk to through its proxy setting: interaction
//! callbacks, original responses and follow-ups, channel messages with attachments, command
//! registration, expiring interaction tokens). A dev-dependency only.

pub mod comfy;
pub mod discord;
pub mod telegram;
pub mod webhook;

pub use comfy::{Failure, FakeComfy, FakeConfig};
pub use discord::{DiscordCall, DiscordFile, FakeDiscord};
pub use telegram::{ApiCall, FakeTelegram, UploadedFile};
pub use webhook::{ReceivedWebhook, Reply, WebhookReceiver, check_event_shape, verify_signature};
