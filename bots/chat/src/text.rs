//! What the bot says, in plain words: the queue position, the progress bar it edits into its
//! answer while a job runs, the caption under a result, and a sentence for each error the API
//! answers with. Everything here is plain text, sent without a Markdown or HTML parse mode, so
//! prompts and server messages need no escaping.

/// Telegram's longest photo or video caption, in characters.
pub const MAX_CAPTION_CHARS: usize = 1024;

/// The most characters of a server's message or details quoted in an error text.
const MAX_QUOTED_CHARS: usize = 300;

/// Cells in the progress bar.
const BAR_CELLS: usize = 10;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// The answer to a new job: how many jobs are ahead of it and about how long until it runs,
/// e.g. `Queued, 3 ahead (about 40 s)` or `Queued, next in line (about 8 s)`. Waits over 90 s are
/// given in minutes (`about 4 min`), over an hour in hours and minutes.
pub fn queued(ahead: u64, eta_seconds: u64) -> String {
    let position = if ahead == 0 {
        "next in line".to_owned()
    } else {
        format!("{ahead} ahead")
    };
    format!("Queued, {position} (about {})", rough_wait(eta_seconds))
}

/// A wait as a person would round it: seconds up to 90 s, then minutes, then hours and minutes.
fn rough_wait(seconds: u64) -> String {
    let seconds = seconds.max(1);
    if seconds <= 90 {
        return format!("{seconds} s");
    }
    let minutes = seconds / 60 + u64::from(seconds % 60 >= 30);
    if minutes < 60 {
        return format!("{minutes} min");
    }
    human_duration(i64::try_from(minutes.saturating_mul(60)).unwrap_or(i64::MAX))
}

/// A ten-cell bar and the percentage, e.g. 30 gives `▰▰▰▱▱▱▱▱▱▱ 30%`; above 100 counts as 100.
/// A cell fills at each whole ten, so the bar is full only at 100%.
pub fn progress_bar(percent: u8) -> String {
    let percent = percent.min(100);
    let filled = usize::from(percent) / 10;
    format!("{}{} {percent}%", "▰".repeat(filled), "▱".repeat(BAR_CELLS - filled))
}

/// The answer once a worker has picked the job up: `Generating… ▱▱▱▱▱▱▱▱▱▱ 0%`.
pub fn started() -> String {
    running(0)
}

/// The answer while the job runs: `Generating… ` and the progress bar.
pub fn running(percent: u8) -> String {
    format!("Generating… {}", progress_bar(percent))
}

/// The caption under a result: the prompt in quotes, then `seed 42 · sdxl-1.0 · 12.4 s` (no time
/// when `seconds` is `None` or not a sensible number). At most [`MAX_CAPTION_CHARS`] characters,
/// counted in UTF-16 units as Telegram does (so also at most that many `char`s): a long prompt is
/// cut short with `…`.
pub fn caption(prompt: &str, seed: u64, model: &str, seconds: Option<f64>) -> String {
    let mut details = format!("seed {seed} · {model}");
    if let Some(seconds) = seconds.filter(|s| s.is_finite() && *s >= 0.0) {
        details.push_str(&format!(" · {seconds:.1} s"));
    }
    // Two quotes and a line break around the prompt.
    let room = MAX_CAPTION_CHARS.saturating_sub(utf16_len(&details) + 3);
    let prompt = prompt.trim();
    let caption = format!("\"{}\"\n{details}", shorten_utf16(prompt, room.max(1)));
    // Only a model name of hundreds of characters gets here.
    shorten_utf16(&caption, MAX_CAPTION_CHARS)
}

/// The length of `text` in UTF-16 units, the way Telegram counts characters.
fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// `text` if it has at most `max` UTF-16 units, else as much of it as fits with `…` after it.
fn shorten_utf16(text: &str, max: usize) -> String {
    if utf16_len(text) <= max {
        return text.to_owned();
    }
    let mut used = 1; // the `…`
    let mut short: String = text
        .chars()
        .take_while(|c| {
            used += c.len_utf16();
            used <= max
        })
        .collect();
    short.truncate(short.trim_end().len());
    short.push('…');
    short
}

/// What the bot knows of the user's quota when an error comes back, for `QUOTA_EXCEEDED`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaState {
    /// The tokens left today, when known.
    pub tokens_left: Option<f64>,
    /// The current time, in seconds since the Unix epoch.
    pub now_unix: i64,
}

/// A sentence for an error the API answered with, by its `code`:
///
/// - `QUOTA_EXCEEDED`: the tokens left (when known) and when the quota resets (UTC midnight);
/// - `RATE_LIMITED` (the plan's jobs at once, or its requests per minute), `INVALID_PROMPT`, `MODEL_NOT_FOUND`, `MODEL_NOT_ON_PLAN`, `WORKER_TIMEOUT`,
///   `OOM`: a fixed sentence on what happened and what to do;
/// - `INVALID_PARAMS`: what is wrong, from `details` (else `message`);
/// - anything else: `Sorry, that didn't work: <message>.`
///
/// Quoted server text is put on one line and shortened to a few hundred characters.
pub fn error_text(code: &str, message: &str, details: Option<&str>, quota: &QuotaState) -> String {
    match code {
        "QUOTA_EXCEEDED" => {
            let left = quota
                .tokens_left
                .filter(|tokens| tokens.is_finite())
                .map(|tokens| format!(" ({} left)", token_amount(tokens)))
                .unwrap_or_default();
            let wait = human_duration(seconds_until_utc_midnight(quota.now_unix));
            format!("You've used today's tokens{left}. Your quota resets at 00:00 UTC, in {wait}.")
        }
        "DAILY_CAP_REACHED" => {
            let wait = human_duration(seconds_until_utc_midnight(quota.now_unix));
            format!("You've reached this server's limit of jobs for today. It resets at 00:00 UTC, in {wait}.")
        }
        "RATE_LIMITED" if message.contains("concurrent") => {
            "You already have as many jobs going as your plan allows. Send it again when one finishes.".to_owned()
        }
        "RATE_LIMITED" => "Too many requests right now — try again in a minute.".to_owned(),
        "INVALID_PROMPT" => "That prompt isn't allowed by the content policy. Try rephrasing it.".to_owned(),
        "MODEL_NOT_FOUND" => "I don't know that model. Send /models to see the ones you can use.".to_owned(),
        "MODEL_NOT_ON_PLAN" => "That model isn't on your plan. Send /models to see the ones you can use.".to_owned(),
        "INVALID_PARAMS" => {
            let what = details
                .map(quoted)
                .filter(|details| !details.is_empty())
                .unwrap_or_else(|| quoted(message));
            sentence("Something in that request isn't valid", &what)
        }
        "WORKER_TIMEOUT" => {
            "The GPU worker stopped responding. Your tokens were refunded — please try again.".to_owned()
        }
        "OOM" => "The GPU ran out of memory on that one. Try a smaller resolution. \
                  Your tokens were refunded."
            .to_owned(),
        _ => sentence("Sorry, that didn't work", &quoted(message)),
    }
}

/// `<lead>: <what>.`, or `<lead>.` when there is nothing to add.
fn sentence(lead: &str, what: &str) -> String {
    if what.is_empty() {
        format!("{lead}.")
    } else {
        format!("{lead}: {what}.")
    }
}

/// Server text to quote: on one line, shortened, without a closing full stop (the sentence adds
/// one).
fn quoted(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = line.trim_end_matches('.');
    if line.chars().count() <= MAX_QUOTED_CHARS {
        return line.to_owned();
    }
    let mut short: String = line.chars().take(MAX_QUOTED_CHARS - 1).collect();
    short.truncate(short.trim_end().len());
    short.push('…');
    short
}

/// A token amount with at most two decimals and no trailing zeros (`0.4`, `12`); below zero
/// counts as zero.
fn token_amount(tokens: f64) -> String {
    let text = format!("{:.2}", tokens.max(0.0));
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Seconds from `now_unix` to the next midnight UTC (a full day at midnight itself).
pub fn seconds_until_utc_midnight(now_unix: i64) -> i64 {
    DAY - now_unix.rem_euclid(DAY)
}

/// A duration the way the bot says it, rounded down: `5 h 12 min`, `5 h`, `12 min`, `40 s`.
/// Below zero counts as zero.
pub fn human_duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    if seconds < 60 {
        return format!("{seconds} s");
    }
    let minutes = seconds / 60;
    match (minutes / 60, minutes % 60) {
        (0, minutes) => format!("{minutes} min"),
        (hours, 0) => format!("{hours} h"),
        (hours, minutes) => format!("{hours} h {minutes} min"),
    }
}

/// The answer when a job is cancelled: `Cancelled. Your tokens were refunded.`
pub fn cancelled() -> String {
    "Cancelled. Your tokens were refunded.".to_owned()
}

/// Now, in unix seconds.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// An error in plain words, with no quota figures (see [`error_text`]).
pub fn plain_error(code: &str, message: &str, details: Option<&str>) -> String {
    let quota = QuotaState {
        tokens_left: None,
        now_unix: now_unix(),
    };
    error_text(code, message, details, &quota)
}

/// Why a job failed, in plain words, from the job as `GET /api/v1/jobs/{id}` shows it.
pub fn job_failure(job: &serde_json::Value) -> String {
    let error = &job["error"];
    plain_error(
        error["code"].as_str().unwrap_or("FAILED"),
        error["message"].as_str().unwrap_or("the job failed"),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-05-01 18:48:00 UTC: 5 h 12 min before midnight.
    const EVENING: i64 = 1_714_589_280;

    fn quota(tokens_left: Option<f64>, now_unix: i64) -> QuotaState {
        QuotaState { tokens_left, now_unix }
    }

    #[test]
    fn queue_position() {
        assert_eq!(queued(3, 40), "Queued, 3 ahead (about 40 s)");
        assert_eq!(queued(0, 8), "Queued, next in line (about 8 s)");
        assert_eq!(queued(0, 0), "Queued, next in line (about 1 s)");
        assert_eq!(queued(1, 90), "Queued, 1 ahead (about 90 s)");
        assert_eq!(queued(1, 91), "Queued, 1 ahead (about 2 min)");
        assert_eq!(queued(12, 240), "Queued, 12 ahead (about 4 min)");
        assert_eq!(queued(12, 3569), "Queued, 12 ahead (about 59 min)");
        assert_eq!(queued(99, 3600), "Queued, 99 ahead (about 1 h)");
        assert_eq!(queued(99, 5430), "Queued, 99 ahead (about 1 h 31 min)");
        assert!(queued(u64::MAX, u64::MAX).starts_with("Queued, 18446744073709551615 ahead"));
    }

    #[test]
    fn progress() {
        assert_eq!(progress_bar(30), "▰▰▰▱▱▱▱▱▱▱ 30%");
        assert_eq!(progress_bar(0), "▱▱▱▱▱▱▱▱▱▱ 0%");
        assert_eq!(progress_bar(39), "▰▰▰▱▱▱▱▱▱▱ 39%");
        assert_eq!(progress_bar(99), "▰▰▰▰▰▰▰▰▰▱ 99%");
        assert_eq!(progress_bar(100), "▰▰▰▰▰▰▰▰▰▰ 100%");
        assert_eq!(progress_bar(255), "▰▰▰▰▰▰▰▰▰▰ 100%");
        assert_eq!(started(), "Generating… ▱▱▱▱▱▱▱▱▱▱ 0%");
        assert_eq!(running(50), "Generating… ▰▰▰▰▰▱▱▱▱▱ 50%");
    }

    #[test]
    fn captions() {
        assert_eq!(
            caption("a red fox", 42, "sdxl-1.0", Some(12.44)),
            "\"a red fox\"\nseed 42 · sdxl-1.0 · 12.4 s"
        );
        assert_eq!(
            caption("a red fox", 42, "sdxl-1.0", None),
            "\"a red fox\"\nseed 42 · sdxl-1.0"
        );
        assert_eq!(
            caption("a red fox", 42, "sdxl-1.0", Some(f64::NAN)),
            "\"a red fox\"\nseed 42 · sdxl-1.0"
        );
    }

    #[test]
    fn long_captions_are_cut_to_fit() {
        let details = "\nseed 18446744073709551615 · sdxl-1.0 · 12.4 s";
        let text = caption(&"fox ".repeat(400), u64::MAX, "sdxl-1.0", Some(12.4));
        assert_eq!(utf16_len(&text), MAX_CAPTION_CHARS);
        assert!(text.ends_with(&format!("…\"{details}")), "{text}");
        assert!(text.starts_with("\"fox fox "));
        assert!(!text.contains(" …"));

        // Characters outside the BMP count twice, as Telegram counts them.
        let text = caption(&"🦊".repeat(1000), 1, "m", None);
        assert!(utf16_len(&text) <= MAX_CAPTION_CHARS);
        assert!(text.chars().count() <= MAX_CAPTION_CHARS);
        assert!(text.ends_with("…\"\nseed 1 · m"));

        // Exactly full fits without cutting.
        let tail = "\nseed 1 · m";
        let prompt = "a".repeat(MAX_CAPTION_CHARS - 2 - utf16_len(tail));
        let text = caption(&prompt, 1, "m", None);
        assert_eq!(text, format!("\"{prompt}\"{tail}"));
        let text = caption(&format!("{prompt}b"), 1, "m", None);
        assert_eq!(utf16_len(&text), MAX_CAPTION_CHARS);
        assert!(text.contains("a…\""));

        // Even an absurd model name keeps within the limit.
        let text = caption("fox", 1, &"m".repeat(5000), None);
        assert_eq!(utf16_len(&text), MAX_CAPTION_CHARS);
    }

    #[test]
    fn quota_errors() {
        assert_eq!(seconds_until_utc_midnight(EVENING), 5 * 3600 + 12 * 60);
        assert_eq!(
            error_text("QUOTA_EXCEEDED", "quota", None, &quota(Some(0.4), EVENING)),
            "You've used today's tokens (0.4 left). Your quota resets at 00:00 UTC, in 5 h 12 min."
        );
        assert_eq!(
            error_text("QUOTA_EXCEEDED", "quota", None, &quota(None, EVENING)),
            "You've used today's tokens. Your quota resets at 00:00 UTC, in 5 h 12 min."
        );
        let late = EVENING + 5 * 3600;
        assert_eq!(
            error_text("QUOTA_EXCEEDED", "", None, &quota(Some(12.0), late)),
            "You've used today's tokens (12 left). Your quota resets at 00:00 UTC, in 12 min."
        );
        assert_eq!(
            error_text("QUOTA_EXCEEDED", "", None, &quota(Some(-3.0), late + 12 * 60 - 40)),
            "You've used today's tokens (0 left). Your quota resets at 00:00 UTC, in 40 s."
        );
    }

    #[test]
    fn midnight_and_durations() {
        assert_eq!(seconds_until_utc_midnight(0), DAY);
        assert_eq!(seconds_until_utc_midnight(DAY - 1), 1);
        assert_eq!(seconds_until_utc_midnight(-1), 1);
        assert_eq!(seconds_until_utc_midnight(i64::MIN), DAY - i64::MIN.rem_euclid(DAY));
        assert_eq!(human_duration(5 * 3600 + 12 * 60 + 59), "5 h 12 min");
        assert_eq!(human_duration(12 * 60), "12 min");
        assert_eq!(human_duration(40), "40 s");
        assert_eq!(human_duration(0), "0 s");
        assert_eq!(human_duration(-5), "0 s");
        assert_eq!(human_duration(7200), "2 h");
        assert_eq!(human_duration(DAY), "24 h");
    }

    #[test]
    fn fixed_error_sentences() {
        let q = quota(None, EVENING);
        for (code, text) in [
            ("RATE_LIMITED", "Too many requests right now — try again in a minute."),
            (
                "INVALID_PROMPT",
                "That prompt isn't allowed by the content policy. Try rephrasing it.",
            ),
            (
                "MODEL_NOT_FOUND",
                "I don't know that model. Send /models to see the ones you can use.",
            ),
            (
                "MODEL_NOT_ON_PLAN",
                "That model isn't on your plan. Send /models to see the ones you can use.",
            ),
            (
                "WORKER_TIMEOUT",
                "The GPU worker stopped responding. Your tokens were refunded — please try again.",
            ),
            (
                "OOM",
                "The GPU ran out of memory on that one. Try a smaller resolution. \
                 Your tokens were refunded.",
            ),
        ] {
            assert_eq!(error_text(code, "server words", Some("details"), &q), text);
        }
        assert_eq!(cancelled(), "Cancelled. Your tokens were refunded.");
        assert!(
            error_text("DAILY_CAP_REACHED", "limit", None, &q)
                .starts_with("You've reached this server's limit of jobs for today.")
        );
        assert_eq!(
            error_text("RATE_LIMITED", "Too many concurrent jobs", None, &q),
            "You already have as many jobs going as your plan allows. Send it again when one finishes."
        );
    }

    #[test]
    fn errors_quoting_the_server() {
        let q = quota(None, EVENING);
        assert_eq!(
            error_text("INVALID_PARAMS", "bad request", Some("steps must be at most 150"), &q),
            "Something in that request isn't valid: steps must be at most 150."
        );
        assert_eq!(
            error_text("INVALID_PARAMS", "resolution too large.", None, &q),
            "Something in that request isn't valid: resolution too large."
        );
        assert_eq!(
            error_text("INVALID_PARAMS", "bad\nrequest", Some("  "), &q),
            "Something in that request isn't valid: bad request."
        );
        assert_eq!(
            error_text("INVALID_PARAMS", "", None, &q),
            "Something in that request isn't valid."
        );
        assert_eq!(
            error_text("INTERNAL", "database unavailable", None, &q),
            "Sorry, that didn't work: database unavailable."
        );
        assert_eq!(error_text("INTERNAL", "", None, &q), "Sorry, that didn't work.");
        let long = error_text("INTERNAL", &"x".repeat(5000), None, &q);
        assert!(long.chars().count() < MAX_QUOTED_CHARS + 40);
        assert!(long.ends_with("x….") && !long.contains('\n'));
    }
}
