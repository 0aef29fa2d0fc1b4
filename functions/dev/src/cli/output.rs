//! What a client command prints: its result on stdout (text, or JSON with `--json`), messages on
//! stderr.

use std::io::Write;

use serde_json::Value;

use super::error::{CliError, ExitStatus};
use super::progress::plain_text;

/// A command's result: what `--json` prints, what is printed otherwise, and the exit status.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Printed with `--json`.
    pub json: Value,
    /// Printed without `--json` (nothing when empty).
    pub text: String,
    /// The exit status.
    pub status: ExitStatus,
}

impl Outcome {
    /// A success.
    pub fn success(json: Value, text: impl Into<String>) -> Self {
        Self {
            json,
            text: text.into(),
            status: ExitStatus::Success,
        }
    }
}

/// Prints the outcome on stdout.
pub fn print_outcome(outcome: &Outcome, json: bool) {
    if json {
        print_stdout(&pretty(&outcome.json));
    } else if !outcome.text.is_empty() {
        print_stdout(&outcome.text);
    }
}

/// Prints a failure: a line on stderr, and with `--json` its JSON on stdout.
pub fn print_failure(error: &CliError, json: bool) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {}", plain_text(&error.to_string()));
    let _ = stderr.flush();
    if json {
        print_stdout(&pretty(&error.to_json()));
    }
}

/// Prints a line on stderr, free of control characters.
pub fn note(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{}", plain_text(line));
    let _ = stderr.flush();
}

/// Indented JSON.
pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

fn print_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", text.trim_end_matches('\n'));
    let _ = stdout.flush();
}

/// An aligned table: a header row, then the rows, columns two spaces apart.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let clean: Vec<Vec<String>> = std::iter::once(headers.iter().map(|header| (*header).to_owned()).collect())
        .chain(rows.iter().cloned())
        .map(|row| row.iter().map(|cell| plain_text(cell)).collect())
        .collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|column| {
            clean
                .iter()
                .map(|row| row.get(column).map_or(0, |cell| cell.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    clean
        .iter()
        .map(|row| {
            let line: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(column, width)| {
                    let cell = row.get(column).map_or("", String::as_str);
                    format!("{cell:<width$}")
                })
                .collect();
            line.join("  ").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A field of `row` as text: a string as is, a number or boolean written out, `-` when absent.
pub fn cell(row: &Value, field: &str) -> String {
    match row.get(field) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// The rows of `body[field]`, an empty list when absent.
pub fn rows<'a>(body: &'a Value, field: &str) -> &'a [Value] {
    body.get(field).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_aligns_its_columns() {
        let text = table(
            &["ID", "STATUS"],
            &[
                vec!["job_a".into(), "COMPLETED".into()],
                vec!["job_long".into(), "\x1b[31mFAILED".into()],
            ],
        );
        assert_eq!(text, "ID        STATUS\njob_a     COMPLETED\njob_long   [31mFAILED");
    }

    #[test]
    fn cells_read_any_json() {
        let row = json!({"a": "x", "n": 2, "list": ["jobs:read", "admin"], "none": null});
        assert_eq!(cell(&row, "a"), "x");
        assert_eq!(cell(&row, "n"), "2");
        assert_eq!(cell(&row, "list"), "jobs:read,admin");
        assert_eq!(cell(&row, "none"), "-");
        assert_eq!(cell(&row, "missing"), "-");
        assert!(rows(&row, "a").is_empty());
    }
}
