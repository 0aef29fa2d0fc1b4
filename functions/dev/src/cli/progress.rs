//! What a waiting command shows on stderr: a progress bar on a terminal, else one plain line per
//! change, with no control characters (no `\r`, no escape sequences).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::job;

/// The bar's layout.
const BAR_TEMPLATE: &str = "{spinner} {prefix} {msg:<24} [{bar:30}] {pos:>3}%";

/// The progress of one job, shown on stderr.
pub struct Progress {
    bar: Option<ProgressBar>,
    last_line: Option<String>,
}

impl Progress {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn for_stderr() -> Self {
        if std::io::stderr().is_terminal() {
            Self::bar()
        } else {
            Self::plain()
        }
    }

    /// Plain lines.
    pub fn plain() -> Self {
        Self {
            bar: None,
            last_line: None,
        }
    }

    fn bar() -> Self {
        let style = ProgressStyle::with_template(BAR_TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr()).with_style(style);
        bar.enable_steady_tick(Duration::from_millis(120));
        Self {
            bar: Some(bar),
            last_line: None,
        }
    }

    /// Prints a line (above the bar, when there is one).
    pub fn note(&self, line: &str) {
        let line = plain_text(line);
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln_flushed(&line)),
            None => eprintln_flushed(&line),
        }
    }

    /// Shows the job's state, as `GET /api/v1/jobs/{id}` answers it.
    pub fn show(&mut self, view: &Value) {
        let line = job::describe(view);
        if self.last_line.as_deref() == Some(line.as_str()) {
            return;
        }
        match &self.bar {
            Some(bar) if !job::is_final(view) => {
                bar.set_prefix(plain_text(job::id(view)));
                bar.set_message(plain_text(&job::short_state(view)));
                bar.set_position(job::progress(view).into());
            }
            Some(bar) => {
                bar.finish_and_clear();
                eprintln_flushed(&plain_text(&line));
            }
            None => eprintln_flushed(&plain_text(&line)),
        }
        self.last_line = Some(line);
    }

    /// Takes the bar off the screen.
    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// `text` with every control character (escape sequences, `\r`, tabs, newlines) made a space.
pub fn plain_text(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn eprintln_flushed(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
    let _ = stderr.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_has_no_control_characters() {
        assert_eq!(plain_text("a\x1b[31mred\r\n\tfox\u{7f}"), "a [31mred   fox ");
    }
}
