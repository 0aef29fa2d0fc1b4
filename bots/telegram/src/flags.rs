//! The `/imagine` text as chat users write it: prompt words with `--flag value` options mixed in
//! anywhere (`/imagine a red fox --ar 16:9 in the snow --steps 30`). [`parse_imagine`] splits the
//! two, checks every value, and answers a mistake with a [`FlagError`] whose text is one line that
//! says what is wrong and shows an example, ready to send back to the chat as it is. Phones
//! autocorrect `--` to an em dash, so a leading `—` or `–` counts as `--`; `--flag=value` works
//! too. Limits the API enforces anyway (largest resolution, which models a plan has) are left to
//! it; this only refuses what cannot be right.

use std::fmt;

/// The longest prompt (and the longest `--no` text) accepted, in characters.
pub const MAX_PROMPT_CHARS: usize = 2000;

/// The longest name of an unknown option repeated back in an error message, in characters.
const MAX_ECHOED_CHARS: usize = 32;

/// The example shown with mistakes that are not about one option.
const EXAMPLE: &str = "/imagine a red fox in the snow --ar 16:9 --steps 30";

pub use tessera_chat::ImagineRequest;

/// An option `/imagine` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    /// `--ar W:H`: an aspect ratio, turned into a resolution of about a megapixel.
    Ar,
    /// `--res WxH`: an exact resolution.
    Res,
    /// `--steps N`: sampling steps, 1 to 150.
    Steps,
    /// `--seed N`: the seed.
    Seed,
    /// `--model id`: the model.
    Model,
    /// `--no words…`: the negative prompt, every word up to the next option.
    No,
}

impl Flag {
    /// Every option, in the order help texts list them.
    pub const ALL: [Flag; 6] = [Flag::Ar, Flag::Res, Flag::Steps, Flag::Seed, Flag::Model, Flag::No];

    /// The option's name without dashes (`ar`).
    pub fn name(self) -> &'static str {
        match self {
            Flag::Ar => "ar",
            Flag::Res => "res",
            Flag::Steps => "steps",
            Flag::Seed => "seed",
            Flag::Model => "model",
            Flag::No => "no",
        }
    }

    /// A correct use of the option, e.g. `--steps 30`.
    pub fn example(self) -> &'static str {
        match self {
            Flag::Ar => "--ar 16:9",
            Flag::Res => "--res 1024x768",
            Flag::Steps => "--steps 30",
            Flag::Seed => "--seed 42",
            Flag::Model => "--model sdxl",
            Flag::No => "--no blurry, text",
        }
    }

    /// The option named `name` (without dashes, any case), if there is one.
    pub fn from_name(name: &str) -> Option<Flag> {
        Flag::ALL
            .into_iter()
            .find(|flag| flag.name().eq_ignore_ascii_case(name))
    }

    /// What a value of this option must look like, as the start of a sentence.
    fn rule(self) -> &'static str {
        match self {
            Flag::Ar => "--ar must be a width:height ratio between 1:4 and 4:1",
            Flag::Res => "--res must be width x height in pixels",
            Flag::Steps => "--steps must be a whole number from 1 to 150",
            Flag::Seed => "--seed must be a whole number from 0 to 18446744073709551615",
            Flag::Model => {
                "--model must be a model id of up to 24 lowercase letters, digits and hyphens \
                 (send /models to see them)"
            }
            Flag::No => "--no must be followed by the words to leave out",
        }
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--{}", self.name())
    }
}

/// What is wrong with an `/imagine` text. Its `Display` is one line for the user, with an example.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// No prompt words, only options (or nothing at all).
    #[error("Write what to draw after /imagine. Example: {EXAMPLE}")]
    EmptyPrompt,
    /// The prompt (or the `--no` text) has more than [`MAX_PROMPT_CHARS`] characters.
    #[error(
        "The {what} is too long: {chars} characters, and the most is {MAX_PROMPT_CHARS}. \
         Shorten it, e.g. /imagine a red fox in the snow"
    )]
    TooLong {
        /// `prompt`, or `--no text`.
        what: &'static str,
        /// How many characters it has.
        chars: usize,
    },
    /// An option `/imagine` does not know, as the user wrote it (shortened if very long).
    #[error("Unknown option {0}. Example: {EXAMPLE}")]
    UnknownFlag(String),
    /// An option at the end of the text, or followed straight by another option.
    #[error("{0} needs a value, e.g. {ex}", ex = .0.example())]
    MissingValue(Flag),
    /// An option whose value is not allowed.
    #[error("{rule}, e.g. {ex}", rule = .flag.rule(), ex = .flag.example())]
    BadValue {
        /// The option.
        flag: Flag,
        /// The value as written (not echoed to the user).
        value: String,
    },
    /// The same option given twice.
    #[error("{0} is given twice; keep one, e.g. {ex}", ex = .0.example())]
    Duplicate(Flag),
    /// Both `--ar` and `--res`, which would each set the resolution.
    #[error("Use either --ar or --res, not both, e.g. --ar 16:9 or --res 1344x768")]
    ArAndRes,
}

/// Reads the text after `/imagine`: options (`--ar`, `--res`, `--steps`, `--seed`, `--model`,
/// `--no`) anywhere among the words, every other word the prompt.
///
/// A word counts as an option when it starts with `--` (or `—`, `–`) followed by a letter; a lone
/// `--` or `—` stays in the prompt. Option names are matched without regard to case, and a
/// `--model` value is taken in lowercase.
pub fn parse_imagine(text: &str) -> Result<ImagineRequest, FlagError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut request = ImagineRequest::default();
    let mut prompt: Vec<&str> = Vec::new();
    let mut seen: Vec<Flag> = Vec::new();
    let mut index = 0;
    while index < words.len() {
        let word = words[index];
        index += 1;
        let Some((name, inline)) = split_option(word) else {
            prompt.push(word);
            continue;
        };
        let flag = Flag::from_name(name).ok_or_else(|| FlagError::UnknownFlag(echo(name)))?;
        if seen.contains(&flag) {
            return Err(FlagError::Duplicate(flag));
        }
        seen.push(flag);
        // `--steps= 30` (a space after `=`) reads the value from the next word.
        let inline = inline.filter(|value| !value.is_empty());

        if flag == Flag::No {
            let mut negative: Vec<&str> = inline.into_iter().collect();
            while index < words.len() && split_option(words[index]).is_none() {
                negative.push(words[index]);
                index += 1;
            }
            if negative.is_empty() {
                return Err(FlagError::MissingValue(flag));
            }
            let negative = negative.join(" ");
            check_length("--no text", &negative)?;
            request.negative = Some(negative);
            continue;
        }

        let value = match inline {
            Some(value) => value,
            None if index < words.len() && split_option(words[index]).is_none() => {
                index += 1;
                words[index - 1]
            }
            None => return Err(FlagError::MissingValue(flag)),
        };
        let bad = || FlagError::BadValue {
            flag,
            value: value.to_owned(),
        };
        match flag {
            Flag::Ar | Flag::Res => {
                if request.resolution.is_some() {
                    return Err(FlagError::ArAndRes);
                }
                let (width, height) = if flag == Flag::Ar {
                    aspect_resolution(value)
                } else {
                    exact_resolution(value)
                }
                .ok_or_else(bad)?;
                request.resolution = Some(format!("{width}x{height}"));
            }
            Flag::Steps => {
                let steps = digits::<u32>(value).filter(|steps| (1..=150).contains(steps));
                request.steps = Some(steps.ok_or_else(bad)?);
            }
            Flag::Seed => request.seed = Some(digits::<u64>(value).ok_or_else(bad)?),
            Flag::Model => {
                let model = value.to_ascii_lowercase();
                let valid = (1..=24).contains(&model.len())
                    && model
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !valid {
                    return Err(bad());
                }
                request.model = Some(model);
            }
            Flag::No => unreachable!("--no is read above"),
        }
    }
    request.prompt = prompt.join(" ");
    if request.prompt.is_empty() {
        return Err(FlagError::EmptyPrompt);
    }
    check_length("prompt", &request.prompt)?;
    Ok(request)
}

/// The resolution of about 1024×1024 pixels with the aspect ratio `W:H`, each side a multiple
/// of 64: `16:9` gives 1344×768. Ratios beyond 4:1 or 1:4, zeros and non-numbers give `None`.
pub fn aspect_resolution(ratio: &str) -> Option<(u32, u32)> {
    let (width, height) = ratio.split_once(':')?;
    let (width, height) = (positive_number(width)?, positive_number(height)?);
    let ratio = width / height;
    if !(0.25..=4.0).contains(&ratio) {
        return None;
    }
    let side = |factor: f64| (1024.0 * factor.sqrt() / 64.0).round() as u32 * 64;
    Some((side(ratio), side(1.0 / ratio)))
}

/// `WxH` (or `W*H`, `WXH`, `W×H`) as two whole numbers above zero; limits are the API's.
fn exact_resolution(value: &str) -> Option<(u32, u32)> {
    let (width, height) = value.split_once(['x', 'X', '*', '×'])?;
    let (width, height) = (digits::<u32>(width)?, digits::<u32>(height)?);
    (width > 0 && height > 0).then_some((width, height))
}

/// A number made of ASCII digits only (no sign, no spaces), if it fits `T`.
fn digits<T: std::str::FromStr>(value: &str) -> Option<T> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// A number above zero written with digits and at most one decimal point (`16`, `2.39`).
fn positive_number(value: &str) -> Option<f64> {
    let mut parts = value.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next().unwrap_or("");
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0
        || whole.len() + fraction.len() > 12
        || !all_digits(whole)
        || !all_digits(fraction)
    {
        return None;
    }
    let number: f64 = value.parse().ok()?;
    (number > 0.0).then_some(number)
}

/// If `word` is an option (`--name`, `--name=value`, `—name`), its name and the value after `=`.
fn split_option(word: &str) -> Option<(&str, Option<&str>)> {
    let mut dashes = 0;
    let mut rest = word;
    loop {
        if let Some(after) = rest.strip_prefix('-') {
            dashes += 1;
            rest = after;
        } else if let Some(after) = rest.strip_prefix(['—', '–']) {
            dashes += 2;
            rest = after;
        } else {
            break;
        }
    }
    if dashes < 2 || !rest.starts_with(|c: char| c.is_alphabetic()) {
        return None;
    }
    Some(match rest.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (rest, None),
    })
}

/// An unknown option's name as the error repeats it: `--` and at most a few dozen characters.
fn echo(name: &str) -> String {
    if name.chars().count() <= MAX_ECHOED_CHARS {
        format!("--{name}")
    } else {
        let start: String = name.chars().take(MAX_ECHOED_CHARS - 1).collect();
        format!("--{start}…")
    }
}

/// Refuses `text` when it has more than [`MAX_PROMPT_CHARS`] characters.
fn check_length(what: &'static str, text: &str) -> Result<(), FlagError> {
    let chars = text.chars().count();
    if chars > MAX_PROMPT_CHARS {
        return Err(FlagError::TooLong { what, chars });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ImagineRequest {
        parse_imagine(text).unwrap_or_else(|error| panic!("{text:?}: {error}"))
    }

    fn error(text: &str) -> FlagError {
        match parse_imagine(text) {
            Ok(request) => panic!("{text:?} parsed as {request:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn plain_prompt_is_trimmed_and_single_spaced() {
        let request = parse("  a red   fox\n in the\tsnow  ");
        assert_eq!(
            request,
            ImagineRequest {
                prompt: "a red fox in the snow".into(),
                ..ImagineRequest::default()
            }
        );
    }

    #[test]
    fn flags_anywhere_among_the_words() {
        let request = parse("--seed 7 a red fox --ar 16:9 in the snow --steps 30 --model sdxl-turbo");
        assert_eq!(
            request,
            ImagineRequest {
                prompt: "a red fox in the snow".into(),
                negative: None,
                resolution: Some("1344x768".into()),
                steps: Some(30),
                seed: Some(7),
                model: Some("sdxl-turbo".into()),
            }
        );
    }

    #[test]
    fn negative_runs_to_the_next_flag() {
        let request = parse("a fox --no blurry, low   quality --steps 20 in snow");
        assert_eq!(request.prompt, "a fox in snow");
        assert_eq!(request.negative.as_deref(), Some("blurry, low quality"));
        assert_eq!(request.steps, Some(20));

        let request = parse("a fox --no=blurry text");
        assert_eq!(request.prompt, "a fox");
        assert_eq!(request.negative.as_deref(), Some("blurry text"));
    }

    #[test]
    fn aspect_ratios() {
        assert_eq!(aspect_resolution("1:1"), Some((1024, 1024)));
        assert_eq!(aspect_resolution("16:9"), Some((1344, 768)));
        assert_eq!(aspect_resolution("9:16"), Some((768, 1344)));
        assert_eq!(aspect_resolution("4:3"), Some((1152, 896)));
        assert_eq!(aspect_resolution("3:4"), Some((896, 1152)));
        assert_eq!(aspect_resolution("4:1"), Some((2048, 512)));
        assert_eq!(aspect_resolution("1:4"), Some((512, 2048)));
        assert_eq!(aspect_resolution("2.39:1"), Some((1600, 640)));
        for bad in [
            "5:1", "1:5", "0:1", "1:0", "a:b", "16x9", "16", ":9", "16:", "-1:1", "1e3:1e3", "inf:1", "NaN:1",
            "1.2.3:1", ".:1",
        ] {
            assert_eq!(aspect_resolution(bad), None, "{bad}");
        }
        assert_eq!(parse("x --ar 9:16").resolution.as_deref(), Some("768x1344"));
    }

    #[test]
    fn resolutions() {
        for (value, expected) in [
            ("1024x768", "1024x768"),
            ("1024X768", "1024x768"),
            ("1024*768", "1024x768"),
            ("1024×768", "1024x768"),
            ("0512x0512", "512x512"),
        ] {
            assert_eq!(
                parse(&format!("fox --res {value}")).resolution.as_deref(),
                Some(expected)
            );
        }
        for bad in [
            "1024",
            "1024x",
            "x768",
            "10 24x768",
            "-1x5",
            "+1x5",
            "0x768",
            "1024x0",
            "abcxdef",
            "99999999999x1",
        ] {
            assert!(
                matches!(
                    parse_imagine(&format!("fox --res={bad}")),
                    Err(FlagError::BadValue { flag: Flag::Res, .. }) | Err(FlagError::MissingValue(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn equals_form_and_dashes_from_phones() {
        let request = parse("fox —ar 16:9 –steps=30 --seed= 5 ——model=SDXL");
        assert_eq!(request.prompt, "fox");
        assert_eq!(request.resolution.as_deref(), Some("1344x768"));
        assert_eq!(request.steps, Some(30));
        assert_eq!(request.seed, Some(5));
        assert_eq!(request.model.as_deref(), Some("sdxl"));
        // Dashes that are not options stay in the prompt.
        assert_eq!(parse("fox — snow -- rain -x").prompt, "fox — snow -- rain -x");
        assert_eq!(parse("fox --STEPS 3").steps, Some(3));
    }

    #[test]
    fn steps_seed_model_bounds() {
        assert_eq!(parse("x --steps 1").steps, Some(1));
        assert_eq!(parse("x --steps 150").steps, Some(150));
        assert_eq!(parse("x --seed 0").seed, Some(0));
        assert_eq!(parse("x --seed 18446744073709551615").seed, Some(u64::MAX));
        assert_eq!(
            parse("x --model abcdefghijklmnopqrstuvwx").model.as_deref(),
            Some("abcdefghijklmnopqrstuvwx")
        );
        for (text, flag) in [
            ("x --steps 0", Flag::Steps),
            ("x --steps 151", Flag::Steps),
            ("x --steps +5", Flag::Steps),
            ("x --steps 3.5", Flag::Steps),
            ("x --steps 99999999999", Flag::Steps),
            ("x --seed 18446744073709551616", Flag::Seed),
            ("x --seed -1", Flag::Seed),
            ("x --model abcdefghijklmnopqrstuvwxy", Flag::Model),
            ("x --model sdxl_1", Flag::Model),
            ("x --model sdxl-1.0", Flag::Model),
        ] {
            assert_eq!(
                parse_imagine(text).map_err(|error| match error {
                    FlagError::BadValue { flag, .. } => Some(flag),
                    _ => None,
                }),
                Err(Some(flag)),
                "{text}"
            );
        }
    }

    #[test]
    fn errors() {
        assert_eq!(error(""), FlagError::EmptyPrompt);
        assert_eq!(error("   --steps 30 --ar 1:1"), FlagError::EmptyPrompt);
        assert_eq!(error("fox --size 3"), FlagError::UnknownFlag("--size".into()));
        assert_eq!(error("fox —Size=3"), FlagError::UnknownFlag("--Size".into()));
        assert_eq!(error("fox --steps"), FlagError::MissingValue(Flag::Steps));
        assert_eq!(error("fox --steps --seed 3"), FlagError::MissingValue(Flag::Steps));
        assert_eq!(error("fox --steps="), FlagError::MissingValue(Flag::Steps));
        assert_eq!(error("fox --no --steps 3"), FlagError::MissingValue(Flag::No));
        assert_eq!(error("fox --no"), FlagError::MissingValue(Flag::No));
        assert_eq!(error("fox --seed 1 --seed 2"), FlagError::Duplicate(Flag::Seed));
        assert_eq!(error("fox --no a --no b"), FlagError::Duplicate(Flag::No));
        assert_eq!(error("fox --ar 1:1 --res 64x64"), FlagError::ArAndRes);
        assert_eq!(error("fox --res 64x64 --ar 1:1"), FlagError::ArAndRes);
    }

    #[test]
    fn prompt_length_limit() {
        let longest = "a".repeat(MAX_PROMPT_CHARS);
        assert_eq!(parse(&longest).prompt, longest);
        let words = vec!["é"; MAX_PROMPT_CHARS / 2].join(" ");
        assert_eq!(parse(&words).prompt.chars().count(), MAX_PROMPT_CHARS - 1);
        assert_eq!(
            error(&format!("{longest}b")),
            FlagError::TooLong {
                what: "prompt",
                chars: MAX_PROMPT_CHARS + 1
            }
        );
        assert_eq!(
            error(&format!("fox --no {longest}b")),
            FlagError::TooLong {
                what: "--no text",
                chars: MAX_PROMPT_CHARS + 1
            }
        );
    }

    #[test]
    fn messages_are_one_line_with_an_example() {
        assert_eq!(
            error("a red fox --size 3").to_string(),
            "Unknown option --size. Example: /imagine a red fox in the snow --ar 16:9 --steps 30"
        );
        assert_eq!(
            error("fox --steps 500").to_string(),
            "--steps must be a whole number from 1 to 150, e.g. --steps 30"
        );
        assert_eq!(error("fox --ar").to_string(), "--ar needs a value, e.g. --ar 16:9");
        let long_name = format!("fox --{}", "z".repeat(500));
        let all = [
            FlagError::EmptyPrompt,
            error(&"a".repeat(MAX_PROMPT_CHARS + 1)),
            error(&long_name),
            error("fox --seed 1 --seed 2"),
            error("fox --ar 1:1 --res 1x1"),
        ]
        .into_iter()
        .chain(Flag::ALL.into_iter().map(FlagError::MissingValue))
        .chain(Flag::ALL.into_iter().map(|flag| FlagError::BadValue {
            flag,
            value: "?".into(),
        }));
        for error in all {
            let text = error.to_string();
            assert!(!text.contains('\n'), "{text}");
            assert!(text.contains("e.g.") || text.contains("Example:"), "{text}");
            assert!(text.chars().count() < 200, "{text}");
        }
        assert_eq!(Flag::Steps.to_string(), "--steps");
    }

    #[test]
    fn every_example_parses() {
        for flag in Flag::ALL {
            let request = parse(&format!("fox {}", flag.example()));
            assert_eq!(request.prompt, "fox", "{flag}");
        }
        assert!(parse_imagine(EXAMPLE.trim_start_matches("/imagine")).is_ok());
    }
}
