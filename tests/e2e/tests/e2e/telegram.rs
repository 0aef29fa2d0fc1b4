//! The Telegram bot end to end, against the dev stack (API, embedded store, worker, fake
//! ComfyUI) and a fake Telegram Bot API: `/imagine` to a photo replying to the request, buttons,
//! redelivered updates, quota errors, `/cancel`, groups, and webhook mode's secret token.
//! Embedded only: the bot speaks HTTP to the API, and the notify queue is proven on both
//! backends by the webhooks tests.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use teloxide::Bot;
use tessera_chat::buttons::CallbackKey;
use tessera_chat::tessera::TesseraApi;
use tessera_core::{Priority, TenantId};
use tessera_fakes::telegram::{ApiCall, FakeTelegram};
use tessera_fakes::{FakeComfy, FakeConfig};
use tessera_store::jobs::JobRecord;
use tessera_telegram::handler::BotState;
use tessera_telegram::{notify, polling, webhook};

use crate::support::Backend;
use crate::worker::{LIMITS, Limits, Rig, rig_with};

const TOKEN: &str = "123456:E2E-TOKEN";
const WAIT: Duration = Duration::from_secs(40);

/// The dev stack with a worker on the normal lanes, the fake Bot API, and the bot.
struct Chat {
    rig: Rig,
    telegram: FakeTelegram,
    state: Arc<BotState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Chat {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn chat(polling_mode: bool) -> Chat {
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
    let telegram = FakeTelegram::start(TOKEN).await;
    let bot = Bot::new(TOKEN).set_api_url(telegram.api_url().parse().expect("url"));
    let api = TesseraApi::new(&rig.app.base, &rig.key);
    let key = CallbackKey::new(b"e2e-callback-secret-0123456789abcdef");
    let state = Arc::new(BotState::new(bot, api, key, "tg-e2e".into()).await.expect("getMe"));
    let mut tasks = vec![tokio::spawn(notify::consume(
        state.clone(),
        rig.app.backend.queue.clone(),
    ))];
    if polling_mode {
        tasks.push(tokio::spawn(polling::run(state.clone())));
    }
    Chat {
        rig,
        telegram,
        state,
        tasks,
    }
}

impl Chat {
    /// Sends `text` as `user` in a private chat; answers the update and the message's id.
    fn say(&self, user: u64, text: &str) -> (Value, i64) {
        let update = self.telegram.message_update(user as i64, user, text);
        let message_id = update["message"]["message_id"].as_i64().expect("message id");
        self.telegram.push_update(update.clone());
        (update, message_id)
    }

    /// The jobs of a chat user, oldest first.
    async fn jobs_of(&self, user: u64) -> Vec<JobRecord> {
        let accounts = self.rig.app.auth.accounts();
        let Some(account) = accounts.chat_user(&format!("telegram:{user}")).await.expect("read") else {
            return Vec::new();
        };
        let tenant: TenantId = account.tenant_id;
        let mut jobs = self.rig.app.v1.jobs.list_for(&tenant, None).await.expect("jobs");
        jobs.reverse();
        jobs
    }

    /// The texts the bot put in one of its messages, in order (sent, then each edit).
    fn texts_of(&self, chat: i64, message_id: i64) -> Vec<String> {
        self.telegram
            .calls()
            .into_iter()
            .filter(|call| {
                let sent = call.method.eq_ignore_ascii_case("sendMessage");
                let edited = call.method.eq_ignore_ascii_case("editMessageText");
                (sent || edited) && call.params["chat_id"] == chat && (sent || call.params["message_id"] == message_id)
            })
            .filter_map(|call| call.params["text"].as_str().map(str::to_owned))
            .collect()
    }
}

/// The bot's status message: its first `sendMessage` replying to `request` in `chat`.
fn status_message(telegram: &FakeTelegram, chat: i64, request: i64) -> i64 {
    let sent = telegram
        .calls_of("sendMessage")
        .into_iter()
        .find(|call| call.params["chat_id"] == chat && call.params["reply_parameters"]["message_id"] == request)
        .expect("a reply to the request");
    assert_eq!(sent.params["text"], "Queued…");
    let stored = telegram
        .messages(chat)
        .into_iter()
        .find(|message| message["reply_to_message"]["message_id"] == request && message["text"].is_string())
        .expect("the status message");
    stored["message_id"].as_i64().expect("id")
}

fn edits_of(telegram: &FakeTelegram, chat: i64, message_id: i64) -> Vec<String> {
    telegram
        .calls_of("editMessageText")
        .into_iter()
        .filter(|call| call.params["chat_id"] == chat && call.params["message_id"] == message_id)
        .filter_map(|call| call.params["text"].as_str().map(str::to_owned))
        .collect()
}

fn button(photo: &ApiCall, label: &str) -> String {
    photo.params["reply_markup"]["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .find(|button| button["text"].as_str().is_some_and(|text| text.contains(label)))
        .and_then(|button| button["callback_data"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no {label} button: {}", photo.params["reply_markup"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imagine_answers_queued_edits_progress_and_replies_with_the_photo() {
    let chat = chat(true).await;
    let (_, request) = chat.say(5001, "/imagine a red fox in the snow --seed 7 --res 256x128 --steps 10");
    let photos = chat.telegram.wait_for("sendPhoto", 1, WAIT).await;
    let photo = &photos[0];
    assert_eq!(photo.params["chat_id"], 5001);
    assert_eq!(
        photo.params["reply_parameters"]["message_id"], request,
        "the photo replies to the request"
    );
    let caption = photo.params["caption"].as_str().expect("caption");
    assert!(
        caption.contains("a red fox in the snow") && caption.contains("seed 7"),
        "{caption}"
    );
    assert!(caption.contains("sdxl-1.0"), "{caption}");
    assert!(
        photo.files[0].bytes.starts_with(b"\x89PNG"),
        "the artifact itself is uploaded"
    );
    button(photo, "Reroll");
    button(photo, "Delete");

    let status = status_message(&chat.telegram, 5001, request);
    let edits = edits_of(&chat.telegram, 5001, status);
    assert!(edits[0].starts_with("Queued, "), "{edits:?}");
    assert!(
        edits
            .iter()
            .any(|text| text.contains("Generating") && text.contains('%') && !text.ends_with(" 0%")),
        "at least one progress edit: {edits:?}"
    );
    chat.telegram.wait_for("deleteMessage", 1, WAIT).await;
    assert_eq!(
        chat.telegram.message(5001, status as i32).expect("status")["deleted"],
        true,
        "the status message gives way to the result"
    );
    let jobs = chat.jobs_of(5001).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].params.seed, 7);
    assert_eq!(jobs[0].origin.as_ref().expect("origin").bot_id, "tg-e2e");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reroll_starts_a_new_job_with_a_new_seed_and_a_strangers_press_does_nothing() {
    let chat = chat(true).await;
    chat.say(5002, "/imagine a lighthouse at dusk --seed 11 --res 256x128");
    let photos = chat.telegram.wait_for("sendPhoto", 1, WAIT).await;
    let stored = chat
        .telegram
        .messages(5002)
        .into_iter()
        .find(|message| message["photo"].is_array())
        .expect("the photo message");
    let photo_id = stored["message_id"].as_i64().expect("id") as i32;
    let reroll = button(&photos[0], "Reroll");

    let stranger = chat.telegram.callback_update(6666, 5002, photo_id, &reroll);
    chat.telegram.push_update(stranger);
    let answers = chat.telegram.wait_for("answerCallbackQuery", 1, WAIT).await;
    assert!(
        answers[0].params["text"]
            .as_str()
            .unwrap_or_default()
            .contains("someone else"),
        "{:?}",
        answers[0].params
    );
    let last = if reroll.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("{}{last}", &reroll[..reroll.len() - 1]);
    chat.telegram
        .push_update(chat.telegram.callback_update(5002, 5002, photo_id, &forged));
    chat.telegram.wait_for("answerCallbackQuery", 2, WAIT).await;
    assert_eq!(chat.jobs_of(5002).await.len(), 1, "neither press started a job");

    chat.telegram
        .push_update(chat.telegram.callback_update(5002, 5002, photo_id, &reroll));
    let photos = chat.telegram.wait_for("sendPhoto", 2, WAIT).await;
    assert_eq!(
        photos[1].params["reply_parameters"]["message_id"], photo_id,
        "replies to the result it came from"
    );
    let jobs = chat.jobs_of(5002).await;
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].params.prompt, jobs[1].params.prompt);
    assert_eq!(jobs[0].params.resolution, jobs[1].params.resolution);
    assert_ne!(jobs[0].params.seed, jobs[1].params.seed, "a reroll has a new seed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_webhook_update_makes_one_job_and_a_wrong_secret_token_is_refused() {
    let chat = chat(false).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!(
        "http://{}{}",
        listener.local_addr().expect("addr"),
        webhook::WEBHOOK_PATH
    );
    let routes = webhook::router(chat.state.clone(), "hook-secret_1");
    tokio::spawn(async move { axum::serve(listener, routes).await });
    let update = chat.telegram.message_update(5003, 5003, "a quiet harbour at night");
    let post = |secret: Option<&str>| {
        let mut request = reqwest::Client::new().post(&url).json(&update);
        if let Some(secret) = secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        async move { request.send().await.expect("post").status() }
    };
    assert_eq!(post(None).await, 401);
    assert_eq!(post(Some("hook-secret_2")).await, 401);
    assert!(
        chat.telegram.calls_of("sendMessage").is_empty(),
        "a refused update does nothing"
    );

    assert_eq!(post(Some("hook-secret_1")).await, 200);
    assert_eq!(post(Some("hook-secret_1")).await, 200, "Telegram redelivers");
    let jobs = chat.jobs_of(5003).await;
    assert_eq!(jobs.len(), 1, "one job for one update");
    assert_eq!(
        jobs[0].params.prompt, "a quiet harbour at night",
        "a plain private message is /imagine"
    );
    let deleted = chat.telegram.calls_of("deleteMessage");
    assert_eq!(deleted.len(), 1, "the duplicate's status message is removed");
    chat.telegram.wait_for("sendPhoto", 1, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_error_says_what_is_left_and_when_it_resets() {
    let chat = chat(true).await;
    chat.say(5004, "/imagine a mountain --res 1024x1024 --steps 150");
    chat.telegram.wait_for("sendPhoto", 1, WAIT).await;
    let (_, request) = chat.say(5004, "/imagine another mountain --res 1024x1024 --steps 150");
    let status = loop {
        let sent = chat.telegram.wait_for("sendMessage", 2, WAIT).await;
        if sent.len() >= 2 {
            break status_message(&chat.telegram, 5004, request);
        }
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    let text = loop {
        if let Some(text) = edits_of(&chat.telegram, 5004, status).pop() {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "no answer to the second job");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(text.starts_with("You've used today's tokens (2.5 left)."), "{text}");
    assert!(text.contains("resets at 00:00 UTC, in "), "{text}");
    assert_eq!(chat.jobs_of(5004).await.len(), 1, "the refused job was not created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_last_job_and_the_chat_says_so_and_groups_need_the_bots_name() {
    let chat = chat(true).await;
    let (_, request) = chat.say(5005, "/imagine a slow sunrise --res 256x128");
    let deadline = tokio::time::Instant::now() + WAIT;
    let status = loop {
        if chat
            .telegram
            .calls_of("editMessageText")
            .iter()
            .any(|call| call.params["chat_id"] == 5005)
        {
            break status_message(&chat.telegram, 5005, request);
        }
        assert!(tokio::time::Instant::now() < deadline, "never queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (_, cancel) = chat.say(5005, "/cancel");
    let deadline = tokio::time::Instant::now() + WAIT;
    let reply = loop {
        let found = chat
            .telegram
            .calls_of("sendMessage")
            .into_iter()
            .find(|call| call.params["reply_parameters"]["message_id"] == cancel);
        if let Some(found) = found {
            break found.params["text"].as_str().unwrap_or_default().to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "no answer to /cancel");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        reply.starts_with("Cancelled job_") && reply.contains("refunded"),
        "{reply}"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while !chat
        .texts_of(5005, status)
        .iter()
        .any(|text| text.starts_with("Cancelled."))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            chat.texts_of(5005, status)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(chat.jobs_of(5005).await[0].status, tessera_core::JobStatus::Cancelled);
    assert!(chat.telegram.calls_of("sendPhoto").is_empty());

    let group = -100_123;
    let before = chat.telegram.calls_of("sendMessage").len();
    chat.telegram.push_update(
        chat.telegram
            .message_update(group, 5006, "/imagine meant for another bot"),
    );
    chat.telegram
        .push_update(chat.telegram.message_update(group, 5006, "just chatting"));
    let addressed = format!("/usage@{}", chat.telegram.bot_username());
    chat.telegram
        .push_update(chat.telegram.message_update(group, 5006, &addressed));
    let sent = chat.telegram.wait_for("sendMessage", before + 1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        chat.telegram.calls_of("sendMessage").len(),
        before + 1,
        "only the addressed command is answered"
    );
    let usage = sent.last().expect("usage").params["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(usage.starts_with("Plan: Free"), "{usage}");
    assert!(chat.jobs_of(5006).await.is_empty());
}
