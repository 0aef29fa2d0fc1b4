//! The slash commands: their definitions (registered with `tessera-discord register`) and the
//! reading of `/imagine`'s options into a request.

use serenity::all::{
    CommandDataOption, CommandDataOptionValue, CommandOptionType, CreateCommand, CreateCommandOption, Permissions,
};
use tessera_chat::ImagineRequest;

/// The resolutions `/imagine` offers: about a megapixel in common shapes.
pub const RESOLUTIONS: [(&str, &str); 5] = [
    ("Square 1024×1024", "1024x1024"),
    ("Wide 16:9 (1344×768)", "1344x768"),
    ("Tall 9:16 (768×1344)", "768x1344"),
    ("Landscape 4:3 (1152×896)", "1152x896"),
    ("Portrait 3:4 (896×1152)", "896x1152"),
];

/// Every command the bot answers.
pub fn definitions() -> Vec<CreateCommand> {
    let text = |name: &str, description: &str| CreateCommandOption::new(CommandOptionType::String, name, description);
    let whole = |name: &str, description: &str| CreateCommandOption::new(CommandOptionType::Integer, name, description);
    let mut resolution = text("resolution", "The image's size");
    for (label, value) in RESOLUTIONS {
        resolution = resolution.add_string_choice(label, value);
    }
    let imagine = CreateCommand::new("imagine")
        .description("Make an image from a prompt")
        .add_option(text("prompt", "What to draw").required(true).max_length(2000))
        .add_option(text("negative", "What to leave out").max_length(2000))
        .add_option(resolution)
        .add_option(
            whole("steps", "Sampling steps, 1 to 150")
                .min_int_value(1)
                .max_int_value(150),
        )
        .add_option(
            whole("seed", "A seed, to repeat a result")
                .min_int_value(0)
                .max_int_value(9_007_199_254_740_991),
        )
        .add_option(text("model", "The model (default sdxl)").set_autocomplete(true));
    vec![
        imagine,
        CreateCommand::new("models").description("The models you can use"),
        CreateCommand::new("usage").description("Today's tokens and your plan"),
        CreateCommand::new("status").description("Your jobs waiting or running"),
        CreateCommand::new("cancel")
            .description("Cancel your last job, or the one you name")
            .add_option(text("job", "A job id, e.g. job_abc123def456")),
        CreateCommand::new("settings")
            .description("This server's limits (server managers only)")
            .default_member_permissions(Permissions::MANAGE_GUILD)
            .dm_permission(false)
            .add_option(
                whole("max_steps", "The most steps a job may ask for (0: the plan's)")
                    .min_int_value(0)
                    .max_int_value(150),
            )
            .add_option(text(
                "models",
                "The models allowed, e.g. sdxl, flux-schnell (all: every model)",
            ))
            .add_option(
                whole("daily_cap", "Jobs per member per day (0: no cap)")
                    .min_int_value(0)
                    .max_int_value(10_000),
            ),
    ]
}

/// Registers [`definitions`] in one server (`guild`: they appear at once) or globally; answers
/// how many Discord now has.
pub async fn register(http: &serenity::http::Http, guild: Option<u64>) -> serenity::Result<usize> {
    let registered = match guild {
        Some(guild) => {
            serenity::all::GuildId::new(guild)
                .set_commands(http, definitions())
                .await?
        }
        None => serenity::all::Command::set_global_commands(http, definitions()).await?,
    };
    Ok(registered.len())
}

/// `/imagine`'s options as a request; an error names the option in plain words.
pub fn imagine_request(options: &[CommandDataOption]) -> Result<ImagineRequest, String> {
    let mut request = ImagineRequest::default();
    for option in options {
        match (option.name.as_str(), &option.value) {
            ("prompt", CommandDataOptionValue::String(text)) => request.prompt = text.trim().to_owned(),
            ("negative", CommandDataOptionValue::String(text)) => {
                request.negative = Some(text.trim().to_owned()).filter(|text| !text.is_empty());
            }
            ("resolution", CommandDataOptionValue::String(text)) => request.resolution = Some(text.clone()),
            ("steps", CommandDataOptionValue::Integer(steps)) => {
                request.steps = Some(
                    u32::try_from(*steps)
                        .ok()
                        .filter(|steps| (1..=150).contains(steps))
                        .ok_or("steps must be from 1 to 150")?,
                );
            }
            ("seed", CommandDataOptionValue::Integer(seed)) => {
                request.seed = Some(u64::try_from(*seed).map_err(|_| "the seed must be 0 or more")?);
            }
            ("model", CommandDataOptionValue::String(model)) => {
                request.model = Some(model.trim().to_ascii_lowercase()).filter(|model| !model.is_empty());
            }
            (name, _) => return Err(format!("I don't know the option {name}")),
        }
    }
    if request.prompt.is_empty() {
        return Err("the prompt is empty: tell me what to draw".into());
    }
    Ok(request)
}

/// The text typed so far in the focused (autocompleted) option, if any.
pub fn focused_text(options: &[CommandDataOption]) -> Option<&str> {
    options.iter().find_map(|option| match &option.value {
        CommandDataOptionValue::Autocomplete { value, .. } => Some(value.as_str()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn options(value: serde_json::Value) -> Vec<CommandDataOption> {
        serde_json::from_value(value).expect("options as Discord sends them")
    }

    #[test]
    fn imagine_reads_every_option() {
        let request = imagine_request(&options(json!([
            {"name": "prompt", "type": 3, "value": " a red fox "},
            {"name": "negative", "type": 3, "value": "blur"},
            {"name": "resolution", "type": 3, "value": "1344x768"},
            {"name": "steps", "type": 4, "value": 30},
            {"name": "seed", "type": 4, "value": 42},
            {"name": "model", "type": 3, "value": "SDXL"}
        ])))
        .expect("valid");
        assert_eq!(
            request,
            ImagineRequest {
                prompt: "a red fox".into(),
                negative: Some("blur".into()),
                resolution: Some("1344x768".into()),
                steps: Some(30),
                seed: Some(42),
                model: Some("sdxl".into()),
            }
        );
    }

    #[test]
    fn bad_options_are_named() {
        for (value, expected) in [
            (json!([{"name": "prompt", "type": 3, "value": "  "}]), "prompt"),
            (
                json!([{"name": "prompt", "type": 3, "value": "x"}, {"name": "steps", "type": 4, "value": 500}]),
                "steps",
            ),
            (
                json!([{"name": "prompt", "type": 3, "value": "x"}, {"name": "seed", "type": 4, "value": -1}]),
                "seed",
            ),
        ] {
            let error = imagine_request(&options(value)).expect_err(expected);
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn the_definitions_name_every_command_and_fit_discord() {
        let names: Vec<String> = definitions()
            .iter()
            .map(|command| {
                serde_json::to_value(command).expect("json")["name"]
                    .as_str()
                    .expect("name")
                    .to_owned()
            })
            .collect();
        assert_eq!(names, ["imagine", "models", "usage", "status", "cancel", "settings"]);
        let imagine = serde_json::to_value(&definitions()[0]).expect("json");
        assert_eq!(imagine["options"][0]["required"], true);
        assert_eq!(imagine["options"][5]["autocomplete"], true);
        assert_eq!(imagine["options"][2]["choices"].as_array().expect("choices").len(), 5);
    }

    #[test]
    fn autocomplete_finds_the_focused_text() {
        let typed = options(json!([
            {"name": "prompt", "type": 3, "value": "a fox"},
            {"name": "model", "type": 3, "value": "sd", "focused": true}
        ]));
        assert_eq!(focused_text(&typed), Some("sd"));
    }
}
