//! The Discord bot end to end, against the dev stack (API, embedded store, worker, fake
//! ComfyUI) and a fake Discord REST API, with interactions signed by a real Ed25519 key pair:
//! PING, `/imagine` to an embed with the image, buttons, replays, bad signatures, expired
//! interaction tokens. Embedded only, as for Telegram: the bot speaks HTTP to the API.

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use tessera_core::{Priority, TenantId};
use tessera_discord::config::Config;
use tessera_discord::{interactions, notify};
use tessera_fakes::discord::FakeDiscord;
use tessera_fakes::{FakeComfy, FakeConfig};
use tessera_store::jobs::JobRecord;

use crate::support::Backend;
use crate::worker::{LIMITS, Limits, Rig, rig_with};

const APPLICATION: u64 = 1_100_000_000_000_000_001;
const GUILD: u64 = 1_200_000_000_000_000_001;
const CHANNEL: u64 = 1_200_000_000_000_000_002;
const WAIT: Duration = Duration::from_secs(40);

/// The dev stack with a worker on the normal lanes, the fake Discord API, and the bot's
/// interactions endpoint and notify consumer.
struct Server {
    rig: Rig,
    discord: FakeDiscord,
    signing: SigningKey,
    endpoint: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn server() -> Server {
    let fake = FakeComfy::start(FakeConfig {
        job_duration: Duration::from_millis(2500),
        steps: 10,
    })
    .await;
    let comfy_url = fake.base_url.clone();
    let limits = Limits {
        lanes: &[Priority::Normal],
        ..LIMITS
    };
    let rig = rig_with(Backend::embedded().await, fake, &comfy_url, limits).await;
    let discord = FakeDiscord::start("bot-token", APPLICATION).await;
    let signing = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let public_key: String = signing
        .verifying_key()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let variables = [
        ("DISCORD_APPLICATION_ID", APPLICATION.to_string()),
        ("DISCORD_PUBLIC_KEY", public_key),
        ("DISCORD_BOT_TOKEN", "bot-token".to_owned()),
        ("DISCORD_API_URL", discord.base_url()),
        ("DISCORD_BOT_ID", "dc-e2e".to_owned()),
        ("TESSERA_API_URL", rig.app.base.clone()),
        ("TESSERA_SERVICE_KEY", rig.key.clone()),
    ];
    let config = Config::from_lookup(|name| {
        variables
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    })
    .expect("config");
    let state = Arc::new(tessera_discord::state(&config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!(
        "http://{}{}",
        listener.local_addr().expect("addr"),
        interactions::INTERACTIONS_PATH
    );
    let routes = interactions::router(state.clone());
    let tasks = vec![
        tokio::spawn(async move {
            let _ = axum::serve(listener, routes).await;
        }),
        tokio::spawn(notify::consume(state, rig.app.backend.queue.clone())),
    ];
    Server {
        rig,
        discord,
        signing,
        endpoint,
        tasks,
    }
}

/// A guild member as Discord sends it in an interaction.
fn member(user: u64, permissions: &str) -> Value {
    json!({
        "user": {"id": user.to_string(), "username": format!("user{user}"), "discriminator": "0", "global_name": null, "avatar": null},
        "roles": [], "joined_at": "2026-01-01T00:00:00+00:00", "deaf": false, "mute": false, "flags": 0,
        "permissions": permissions
    })
}

/// The fields every interaction has.
fn interaction(kind: u8, id: u64, user: u64, permissions: &str) -> Value {
    json!({
        "id": id.to_string(),
        "application_id": APPLICATION.to_string(),
        "type": kind,
        "guild_id": GUILD.to_string(),
        "channel_id": CHANNEL.to_string(),
        "member": member(user, permissions),
        "token": format!("interaction-token-{id}"),
        "version": 1,
        "app_permissions": "0",
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {},
        "context": 0,
        "attachment_size_limit": 26_214_400
    })
}

fn imagine(id: u64, user: u64, options: Value) -> Value {
    let mut body = interaction(2, id, user, "0");
    body["data"] = json!({"id": "1300000000000000001", "name": "imagine", "type": 1, "options": options});
    body
}

fn press(id: u64, user: u64, permissions: &str, custom_id: &str, message: &Value) -> Value {
    let mut body = interaction(3, id, user, permissions);
    body["data"] = json!({"custom_id": custom_id, "component_type": 2});
    body["message"] = message.clone();
    body
}

impl Server {
    /// POSTs `body` to the endpoint, signed now with the application's key (or `signing`).
    async fn post(&self, body: &Value, signing: Option<&SigningKey>) -> (u16, Value) {
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
        self.post_at(body, signing, &timestamp).await
    }

    async fn post_at(&self, body: &Value, signing: Option<&SigningKey>, timestamp: &str) -> (u16, Value) {
        let raw = body.to_string();
        let signature = signing
            .unwrap_or(&self.signing)
            .sign(format!("{timestamp}{raw}").as_bytes());
        let hex: String = signature.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        let response = reqwest::Client::new()
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .header("x-signature-ed25519", hex)
            .header("x-signature-timestamp", timestamp)
            .body(raw)
            .send()
            .await
            .expect("post");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn jobs_of(&self, user: u64) -> Vec<JobRecord> {
        let accounts = self.rig.app.auth.accounts();
        let Some(account) = accounts.chat_user(&format!("discord:{user}")).await.expect("read") else {
            return Vec::new();
        };
        let tenant: TenantId = account.tenant_id;
        let mut jobs = self.rig.app.v1.jobs.list_for(&tenant, None).await.expect("jobs");
        jobs.reverse();
        jobs
    }

    /// The edits of an interaction's original response, in order.
    fn edits(&self, id: u64) -> Vec<tessera_fakes::discord::DiscordCall> {
        self.discord
            .calls_to("PATCH", &format!("/interaction-token-{id}/messages/@original"))
    }

    /// Waits for an edit of the original response of interaction `id` that carries a file.
    async fn result_of(&self, id: u64) -> tessera_fakes::discord::DiscordCall {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(edit) = self.edits(id).into_iter().find(|edit| !edit.files.is_empty()) {
                return edit;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no result for {id}: {:?}",
                self.discord.calls()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn buttons(body: &Value) -> Vec<(String, String)> {
    body["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .map(|button| {
            (
                button["label"].as_str().unwrap_or_default().to_owned(),
                button["custom_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn button(body: &Value, label: &str) -> String {
    buttons(body)
        .into_iter()
        .find(|(text, _)| text.contains(label))
        .map(|(_, id)| id)
        .unwrap_or_else(|| panic!("no {label} button in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_answers_pong_and_bad_signatures_answer_401_and_do_nothing() {
    let server = server().await;
    let ping = json!({"id": "1", "application_id": APPLICATION.to_string(), "type": 1, "token": "t", "version": 1});
    assert_eq!(server.post(&ping, None).await, (200, json!({"type": 1})));

    let stranger = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let command = imagine(7001, 4001, json!([{"name": "prompt", "type": 3, "value": "a red fox"}]));
    assert_eq!(
        server.post(&command, Some(&stranger)).await.0,
        401,
        "signed by another key"
    );
    let stale = (time::OffsetDateTime::now_utc().unix_timestamp() - 600).to_string();
    assert_eq!(
        server.post_at(&command, None, &stale).await.0,
        401,
        "a replay from 10 minutes ago"
    );
    let unsigned = reqwest::Client::new()
        .post(&server.endpoint)
        .json(&command)
        .send()
        .await
        .expect("post");
    assert_eq!(unsigned.status(), 401);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(server.discord.calls().is_empty(), "nothing reached Discord");
    assert!(server.jobs_of(4001).await.is_empty(), "and no job was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imagine_defers_shows_progress_and_ends_with_an_embed_and_the_image() {
    let server = server().await;
    let options = json!([
        {"name": "prompt", "type": 3, "value": "a red fox in the snow"},
        {"name": "resolution", "type": 3, "value": "1024x1024"},
        {"name": "seed", "type": 4, "value": 7}
    ]);
    let (status, _) = server.post(&imagine(7002, 4002, options), None).await;
    assert_eq!(status, 202);
    let callbacks = server
        .discord
        .calls_to("POST", "/interactions/7002/interaction-token-7002/callback");
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].body["type"], 5, "a deferred response");
    let first = &server.edits(7002)[0];
    assert!(
        first.body["content"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Queued, "),
        "{:?}",
        first.body
    );

    let result = server.result_of(7002).await;
    assert!(result.files[0].bytes.starts_with(b"\x89PNG"), "the image is attached");
    let embed = &result.body["embeds"][0];
    let description = embed["description"].as_str().expect("description");
    assert!(
        description.contains("a red fox in the snow") && description.contains("seed 7"),
        "{embed}"
    );
    assert!(
        embed["image"]["url"]
            .as_str()
            .expect("image")
            .starts_with("attachment://job_")
    );
    let labels: Vec<String> = buttons(&result.body).into_iter().map(|(label, _)| label).collect();
    assert_eq!(labels.len(), 4, "{labels:?}");
    let edits: Vec<String> = server
        .edits(7002)
        .iter()
        .filter_map(|edit| edit.body["content"].as_str().map(str::to_owned))
        .collect();
    assert!(
        edits
            .iter()
            .any(|text| text.contains("Generating") && text.contains('%') && !text.ends_with(" 0%")),
        "at least one progress edit: {edits:?}"
    );
    let jobs = server.jobs_of(4002).await;
    assert_eq!((jobs.len(), jobs[0].params.seed), (1, 7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_interaction_makes_one_job_and_reroll_makes_a_new_seed() {
    let server = server().await;
    let command = imagine(
        7003,
        4003,
        json!([{"name": "prompt", "type": 3, "value": "a lighthouse"}]),
    );
    assert_eq!(server.post(&command, None).await.0, 202);
    assert_eq!(server.post(&command, None).await.0, 202, "the same interaction again");
    assert_eq!(server.jobs_of(4003).await.len(), 1, "one job");

    let result = server.result_of(7003).await;
    let message = server
        .discord
        .original_response("interaction-token-7003")
        .expect("the result message");
    let reroll = button(&result.body, "Reroll");
    let (status, refused) = server.post(&press(7004, 4999, "0", &reroll, &message), None).await;
    assert_eq!(status, 200);
    assert_eq!(refused["data"]["flags"], 64, "ephemeral: {refused}");
    assert!(
        refused["data"]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("someone else")
    );
    assert_eq!(server.jobs_of(4003).await.len(), 1);

    assert_eq!(
        server.post(&press(7005, 4003, "0", &reroll, &message), None).await.0,
        202
    );
    server.result_of(7005).await;
    let jobs = server.jobs_of(4003).await;
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].params.prompt, jobs[1].params.prompt);
    assert_ne!(jobs[0].params.seed, jobs[1].params.seed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_requester_or_a_message_manager_may_delete_a_result() {
    let server = server().await;
    let command = imagine(
        7006,
        4006,
        json!([{"name": "prompt", "type": 3, "value": "a quiet harbour"}]),
    );
    server.post(&command, None).await;
    let result = server.result_of(7006).await;
    let message = server
        .discord
        .original_response("interaction-token-7006")
        .expect("message");
    let delete = button(&result.body, "Delete");
    let (_, refused) = server.post(&press(7007, 4999, "0", &delete, &message), None).await;
    assert_eq!(refused["data"]["flags"], 64);
    assert!(
        server.discord.calls_to("DELETE", "/messages/").is_empty(),
        "a stranger deletes nothing"
    );

    // MANAGE_MESSAGES is 1 << 13.
    let (_, deleted) = server.post(&press(7008, 4998, "8192", &delete, &message), None).await;
    assert_eq!(deleted["data"]["content"], "Deleted.", "{deleted}");
    assert_eq!(
        server
            .discord
            .calls_to("DELETE", &format!("/channels/{CHANNEL}/messages/"))
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_after_the_token_expired_is_posted_in_the_channel_mentioning_the_user() {
    let server = server().await;
    let command = imagine(
        7009,
        4009,
        json!([{"name": "prompt", "type": 3, "value": "a late sunset"}]),
    );
    server.post(&command, None).await;
    server.discord.expire_interaction_tokens();
    let posted = server
        .discord
        .wait_for("POST", &format!("/channels/{CHANNEL}/messages"), 1, WAIT)
        .await;
    assert!(
        posted[0].body["content"]
            .as_str()
            .unwrap_or_default()
            .starts_with("<@4009>"),
        "{:?}",
        posted[0].body
    );
    assert!(posted[0].files[0].bytes.starts_with(b"\x89PNG"));
}

fn command(id: u64, user: u64, permissions: &str, name: &str, options: Value) -> Value {
    let mut body = interaction(2, id, user, permissions);
    body["data"] = json!({"id": "1300000000000000002", "name": name, "type": 1, "options": options});
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_admin_caps_steps_and_daily_jobs_and_the_cap_is_enforced() {
    let server = server().await;
    let settings = json!([
        {"name": "max_steps", "type": 4, "value": 30},
        {"name": "daily_cap", "type": 4, "value": 1}
    ]);
    let (_, refused) = server
        .post(&command(7101, 4101, "0", "settings", settings.clone()), None)
        .await;
    assert_eq!(refused["data"]["flags"], 64);
    assert!(
        refused["data"]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("manage this server"),
        "{refused}"
    );
    // MANAGE_GUILD is 1 << 5.
    let (_, saved) = server
        .post(&command(7102, 4102, "32", "settings", settings), None)
        .await;
    let shown = saved["data"]["content"].as_str().unwrap_or_default();
    assert!(
        shown.contains("most steps: 30") && shown.contains("per day: 1"),
        "{shown}"
    );

    let too_many = json!([{"name": "prompt", "type": 3, "value": "a fox"}, {"name": "steps", "type": 4, "value": 50}]);
    assert_eq!(server.post(&imagine(7103, 4103, too_many), None).await.0, 202);
    let followups = server.discord.wait_for("POST", "/webhooks/", 1, WAIT).await;
    let said = followups.last().expect("a follow-up").body["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(said.contains("at most 30 steps"), "{said}");
    assert_eq!(followups.last().expect("follow-up").body["flags"], 64, "ephemeral");

    let fine = json!([{"name": "prompt", "type": 3, "value": "a fox"}]);
    assert_eq!(server.post(&imagine(7104, 4103, fine.clone()), None).await.0, 202);
    assert_eq!(server.post(&imagine(7105, 4103, fine), None).await.0, 202);
    let followups = server
        .discord
        .wait_for(
            "POST",
            &format!("/webhooks/{APPLICATION}/interaction-token-7105"),
            1,
            WAIT,
        )
        .await;
    let said = followups[0].body["content"].as_str().unwrap_or_default();
    assert!(
        said.starts_with("You've reached this server's limit of jobs for today."),
        "{said}"
    );
    assert_eq!(server.jobs_of(4103).await.len(), 1, "one job today in this server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_puts_every_command_globally_or_in_one_server() {
    let discord = FakeDiscord::start("bot-token", APPLICATION).await;
    let http = serenity::all::HttpBuilder::new("bot-token")
        .application_id(APPLICATION.into())
        .ratelimiter_disabled(true)
        .proxy(discord.base_url())
        .build();
    assert_eq!(
        tessera_discord::commands::register(&http, Some(GUILD))
            .await
            .expect("guild"),
        6
    );
    assert_eq!(
        tessera_discord::commands::register(&http, None).await.expect("global"),
        6
    );
    let names = |commands: Vec<Value>| -> Vec<String> {
        commands
            .iter()
            .filter_map(|command| command["name"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(
        names(discord.commands(Some(GUILD))),
        ["imagine", "models", "usage", "status", "cancel", "settings"]
    );
    assert_eq!(names(discord.commands(None)).len(), 6);
    let settings = discord
        .commands(None)
        .into_iter()
        .find(|command| command["name"] == "settings")
        .expect("settings");
    assert_eq!(settings["default_member_permissions"], "32", "server managers only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_option_autocompletes_from_the_catalog() {
    let server = server().await;
    let mut typing = interaction(4, 7201, 4201, "0");
    typing["data"] = json!({"id": "1300000000000000001", "name": "imagine", "type": 1, "options": [
        {"name": "prompt", "type": 3, "value": "a fox"},
        {"name": "model", "type": 3, "value": "fl", "focused": true}
    ]});
    let (status, answer) = server.post(&typing, None).await;
    assert_eq!((status, &answer["type"]), (200, &json!(8)), "{answer}");
    let values: Vec<&str> = answer["data"]["choices"]
        .as_array()
        .expect("choices")
        .iter()
        .filter_map(|choice| choice["value"].as_str())
        .collect();
    assert_eq!(values, ["flux-schnell"], "image models matching what was typed");
}
