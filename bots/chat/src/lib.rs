//! What every chat frontend of Tessera shares: the client of the internal API, what one
//! generation request asks for, the bot's sentences in plain words, and button data that can't
//! be forged. The Telegram and Discord bots each add their platform's wire format around it.

pub mod buttons;
pub mod lambda;
pub mod notify;
pub mod queue;
pub mod seen;
pub mod tessera;
pub mod text;

use serde_json::{Value, json};

/// What one `/imagine` asks for, however the platform spelled it (flags in a message, or a
/// slash command's options).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImagineRequest {
    /// The prompt.
    pub prompt: String,
    /// The negative prompt: what the image should leave out.
    pub negative: Option<String>,
    /// The output size as `WxH` in pixels.
    pub resolution: Option<String>,
    /// Sampling steps (1 to 150).
    pub steps: Option<u32>,
    /// The seed, to repeat a result.
    pub seed: Option<u64>,
    /// The model id, e.g. `sdxl`.
    pub model: Option<String>,
}

impl ImagineRequest {
    /// The job's `params`, in the API's names, without the options left unset.
    pub fn params(&self) -> Value {
        let mut params = json!({ "prompt": self.prompt });
        let mut set = |name: &str, value: Value| {
            if !value.is_null() {
                params[name] = value;
            }
        };
        set("negative_prompt", json!(self.negative));
        set("resolution", json!(self.resolution));
        set("steps", json!(self.steps));
        set("seed", json!(self.seed));
        set("model", json!(self.model));
        params
    }

    /// The request a job was made from, as `GET /api/internal/chat-users/{user}/jobs/{id}`
    /// answers it (`params`).
    pub fn from_params(params: &Value) -> Self {
        Self {
            prompt: params["prompt"].as_str().unwrap_or_default().to_owned(),
            negative: params["negative_prompt"].as_str().map(str::to_owned),
            resolution: params["resolution"].as_str().map(str::to_owned),
            steps: params["steps"].as_u64().and_then(|steps| u32::try_from(steps).ok()),
            seed: params["seed"].as_u64(),
            model: params["model"].as_str().map(str::to_owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_leave_out_what_is_unset_and_round_trip() {
        let bare = ImagineRequest {
            prompt: "a red fox".into(),
            ..ImagineRequest::default()
        };
        assert_eq!(bare.params(), json!({"prompt": "a red fox"}));
        let full = ImagineRequest {
            prompt: "a red fox".into(),
            negative: Some("blur".into()),
            resolution: Some("1344x768".into()),
            steps: Some(30),
            seed: Some(42),
            model: Some("sdxl".into()),
        };
        assert_eq!(
            full.params(),
            json!({"prompt": "a red fox", "negative_prompt": "blur", "resolution": "1344x768",
                   "steps": 30, "seed": 42, "model": "sdxl"})
        );
        assert_eq!(ImagineRequest::from_params(&full.params()), full);
    }
}
