//! ComfyUI's WebSocket messages (`{"type", "data"}` text frames and binary preview frames), the
//! output files they name, and a job percentage that never goes backwards.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value};

/// One text frame of ComfyUI's WebSocket, as far as a worker cares.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Message {
    /// The prompt started.
    ExecutionStart {
        /// Its id.
        prompt_id: String,
    },
    /// Nodes served from cache (they count as done).
    ExecutionCached {
        /// The cached node ids.
        nodes: Vec<String>,
        /// The prompt.
        prompt_id: String,
    },
    /// A node started (`None`: the old-style end marker, which may come late).
    Executing {
        /// The node, if any.
        node: Option<String>,
        /// The prompt.
        prompt_id: Option<String>,
    },
    /// Steps of one node (a sampler's).
    Progress {
        /// Steps done.
        value: f64,
        /// Steps in all.
        max: f64,
        /// The node.
        node: Option<String>,
        /// The prompt.
        prompt_id: Option<String>,
    },
    /// Every node's state.
    ProgressState {
        /// The prompt.
        prompt_id: String,
        /// Node id to state.
        nodes: BTreeMap<String, NodeState>,
    },
    /// A node finished, naming its output files.
    Executed {
        /// The node.
        node: String,
        /// Media kind (`images`, `gifs`, `videos`, `audio`, ...) to files.
        output: Option<Map<String, Value>>,
        /// The prompt.
        prompt_id: String,
    },
    /// The prompt finished.
    ExecutionSuccess {
        /// The prompt.
        prompt_id: String,
    },
    /// The prompt failed while running.
    ExecutionError {
        /// The prompt.
        prompt_id: String,
        /// The failing node.
        node_id: Option<String>,
        /// Its class.
        node_type: Option<String>,
        /// The exception's message.
        #[serde(default)]
        exception_message: String,
        /// The exception's type.
        #[serde(default)]
        exception_type: String,
    },
    /// The prompt was interrupted.
    ExecutionInterrupted {
        /// The prompt.
        prompt_id: String,
    },
    /// Queue status (sent to every client).
    Status {},
    /// Anything else.
    #[serde(other)]
    Other,
}

/// One node's state in a `progress_state` message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NodeState {
    /// Progress within the node.
    pub value: f64,
    /// Its maximum.
    pub max: f64,
    /// `running`, `finished`, ...
    pub state: String,
}

impl Message {
    /// Parses a text frame; `None` for one that is not a ComfyUI message.
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// The prompt the message is about, where it names one.
    pub fn prompt_id(&self) -> Option<&str> {
        match self {
            Self::ExecutionStart { prompt_id }
            | Self::ExecutionCached { prompt_id, .. }
            | Self::ProgressState { prompt_id, .. }
            | Self::Executed { prompt_id, .. }
            | Self::ExecutionSuccess { prompt_id }
            | Self::ExecutionError { prompt_id, .. }
            | Self::ExecutionInterrupted { prompt_id } => Some(prompt_id),
            Self::Executing { prompt_id, .. } | Self::Progress { prompt_id, .. } => prompt_id.as_deref(),
            Self::Status {} | Self::Other => None,
        }
    }

    /// Whether the message ends the prompt `prompt_id`.
    pub fn ends(&self, prompt_id: &str) -> bool {
        match self {
            Self::ExecutionSuccess { prompt_id: id }
            | Self::ExecutionInterrupted { prompt_id: id }
            | Self::ExecutionError { prompt_id: id, .. } => id == prompt_id,
            _ => false,
        }
    }

    /// Whether an `execution_error` is an out-of-memory error.
    pub fn is_out_of_memory(&self) -> bool {
        match self {
            Self::ExecutionError {
                exception_message,
                exception_type,
                ..
            } => {
                exception_type.contains("OutOfMemoryError")
                    || exception_message.to_lowercase().contains("out of memory")
            }
            _ => false,
        }
    }
}

/// A binary frame: a preview image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview<'a> {
    /// 1 = JPEG, 2 = PNG.
    pub format: u32,
    /// The image bytes.
    pub image: &'a [u8],
}

/// Parses a binary frame (4 bytes event type, 1 = preview; 4 bytes format; the image).
pub fn parse_preview(frame: &[u8]) -> Option<Preview<'_>> {
    let event = u32::from_be_bytes(frame.get(0..4)?.try_into().ok()?);
    let format = u32::from_be_bytes(frame.get(4..8)?.try_into().ok()?);
    (event == 1).then(|| Preview {
        format,
        image: &frame[8..],
    })
}

/// One output file, fetched with `GET /view?filename=&subfolder=&type=`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OutputFile {
    /// The media kind it was listed under (`images`, `gifs`, `videos`, `audio`, ...).
    pub kind: String,
    /// File name.
    pub filename: String,
    /// Sub-folder.
    pub subfolder: String,
    /// `output` or `temp`.
    pub folder_type: String,
}

/// Every file an `executed.output` (or a history's `outputs` entry) names, of every media kind.
pub fn output_files(output: &Map<String, Value>) -> Vec<OutputFile> {
    let mut files = Vec::new();
    for (kind, list) in output {
        let Some(list) = list.as_array() else {
            continue;
        };
        for file in list {
            let text = |name: &str| file.get(name).and_then(Value::as_str).map(str::to_owned);
            if let Some(filename) = text("filename") {
                files.push(OutputFile {
                    kind: kind.clone(),
                    filename,
                    subfolder: text("subfolder").unwrap_or_default(),
                    folder_type: text("type").unwrap_or_else(|| "output".into()),
                });
            }
        }
    }
    files
}

/// Turns the messages of one prompt into a job percentage (0 to 100) that never goes
/// backwards: finished and cached nodes count whole, a running node by its steps.
#[derive(Debug, Clone)]
pub struct ProgressTracker {
    prompt_id: String,
    nodes: usize,
    done: BTreeSet<String>,
    running: Option<(String, f64)>,
    percent: u8,
}

impl ProgressTracker {
    /// A tracker for `prompt_id` over a graph of `nodes` nodes.
    pub fn new(prompt_id: impl Into<String>, nodes: usize) -> Self {
        Self {
            prompt_id: prompt_id.into(),
            nodes: nodes.max(1),
            done: BTreeSet::new(),
            running: None,
            percent: 0,
        }
    }

    /// The percentage so far.
    pub fn percent(&self) -> u8 {
        self.percent
    }

    /// Feeds a message; answers the new percentage when it moved forward.
    pub fn observe(&mut self, message: &Message) -> Option<u8> {
        match message {
            Message::ExecutionCached { nodes, prompt_id } if *prompt_id == self.prompt_id => {
                self.done.extend(nodes.iter().cloned());
            }
            Message::Executing {
                node: Some(node),
                prompt_id: Some(prompt_id),
            } if *prompt_id == self.prompt_id => {
                if let Some((previous, _)) = self.running.replace((node.clone(), 0.0)) {
                    self.done.insert(previous);
                }
            }
            Message::Progress {
                value,
                max,
                node: Some(node),
                prompt_id: Some(prompt_id),
            } if *prompt_id == self.prompt_id && *max > 0.0 => {
                self.running = Some((node.clone(), (value / max).clamp(0.0, 1.0)));
            }
            Message::ProgressState { prompt_id, nodes } if *prompt_id == self.prompt_id => {
                for (id, state) in nodes {
                    if state.state == "finished" {
                        self.done.insert(id.clone());
                    } else if state.max > 0.0 {
                        self.running = Some((id.clone(), (state.value / state.max).clamp(0.0, 1.0)));
                    }
                }
            }
            Message::Executed { node, prompt_id, .. } if *prompt_id == self.prompt_id => {
                self.done.insert(node.clone());
            }
            Message::ExecutionSuccess { prompt_id } if *prompt_id == self.prompt_id => {
                return self.advance(100);
            }
            _ => return None,
        }
        let running = self
            .running
            .as_ref()
            .filter(|(node, _)| !self.done.contains(node))
            .map_or(0.0, |(_, fraction)| *fraction);
        let finished = self.done.len().min(self.nodes) as f64;
        // 99 at most until the prompt reports success.
        let percent = (((finished + running) / self.nodes as f64) * 100.0).floor().min(99.0) as u8;
        self.advance(percent)
    }

    fn advance(&mut self, percent: u8) -> Option<u8> {
        (percent > self.percent).then(|| {
            self.percent = percent;
            percent
        })
    }
}
