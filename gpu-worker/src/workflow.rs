//! Workflows: ComfyUI API-format graphs (`workflows/<id>.json`), each with a declared binding of
//! the job's parameters to node inputs (`workflows/<id>.bindings.json`). Binding is checked when
//! a workflow is loaded, so a job can never silently miss its prompt or seed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

/// Why a workflow cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    /// The files cannot be read or parsed.
    #[error("workflow {id}: {reason}")]
    Invalid {
        /// The workflow id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// No workflow has this id.
    #[error("no workflow '{0}'")]
    Unknown(String),
}

/// One node input a parameter is written to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The node id in the graph.
    pub node: String,
    /// The input name on that node.
    pub input: String,
    /// For integer parameters: write the value modulo this (e.g. a seed as a 24-bit colour).
    #[serde(default)]
    pub modulo: Option<u64>,
}

/// The parameters a job can bind, each to any number of node inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bindings {
    /// The prompt (a text input).
    #[serde(default)]
    pub prompt: Vec<Target>,
    /// The negative prompt.
    #[serde(default)]
    pub negative_prompt: Vec<Target>,
    /// Output width.
    #[serde(default)]
    pub width: Vec<Target>,
    /// Output height.
    #[serde(default)]
    pub height: Vec<Target>,
    /// Sampling steps.
    #[serde(default)]
    pub steps: Vec<Target>,
    /// Classifier-free guidance scale.
    #[serde(default)]
    pub cfg_scale: Vec<Target>,
    /// The seed.
    #[serde(default)]
    pub seed: Vec<Target>,
    /// The model checkpoint file.
    #[serde(default)]
    pub checkpoint: Vec<Target>,
}

impl Bindings {
    fn all(&self) -> impl Iterator<Item = (&'static str, &Target)> {
        let named: [(&'static str, &Vec<Target>); 8] = [
            ("prompt", &self.prompt),
            ("negative_prompt", &self.negative_prompt),
            ("width", &self.width),
            ("height", &self.height),
            ("steps", &self.steps),
            ("cfg_scale", &self.cfg_scale),
            ("seed", &self.seed),
            ("checkpoint", &self.checkpoint),
        ];
        named
            .into_iter()
            .flat_map(|(name, targets)| targets.iter().map(move |target| (name, target)))
    }
}

/// The job parameters a workflow is run with (the spec's `run_job` params).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunParams {
    /// The prompt.
    pub prompt: String,
    /// What to avoid.
    pub negative_prompt: Option<String>,
    /// Output width.
    pub width: Option<u32>,
    /// Output height.
    pub height: Option<u32>,
    /// Sampling steps.
    pub steps: Option<u32>,
    /// Guidance scale.
    pub cfg_scale: Option<f64>,
    /// The seed.
    pub seed: u64,
    /// The checkpoint file, when the model names one.
    pub checkpoint: Option<String>,
}

/// A loaded workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    /// Its id, e.g. `txt2img_sdxl`.
    pub id: String,
    graph: Map<String, Value>,
    bindings: Bindings,
}

/// Node classes that write outputs (a graph without one produces nothing).
const OUTPUT_NODES: [&str; 6] = [
    "SaveImage",
    "SaveImageWebsocket",
    "SaveAnimatedWEBP",
    "SaveAnimatedPNG",
    "SaveVideo",
    "SaveAudio",
];

impl Workflow {
    /// Parses a graph and its bindings, checking that every binding names an existing node
    /// input and that the graph has an output node.
    pub fn parse(id: &str, graph: &str, bindings: &str) -> Result<Self, WorkflowError> {
        let invalid = |reason: String| WorkflowError::Invalid {
            id: id.to_owned(),
            reason,
        };
        let graph: Map<String, Value> =
            serde_json::from_str(graph).map_err(|error| invalid(format!("graph: {error}")))?;
        let bindings: Bindings =
            serde_json::from_str(bindings).map_err(|error| invalid(format!("bindings: {error}")))?;
        for (name, node) in &graph {
            if node.get("class_type").and_then(Value::as_str).is_none() || !node["inputs"].is_object() {
                return Err(invalid(format!("node {name} needs class_type and inputs")));
            }
        }
        let has_output = graph
            .values()
            .any(|node| OUTPUT_NODES.contains(&node["class_type"].as_str().unwrap_or_default()));
        if !has_output {
            return Err(invalid("the graph has no output node".into()));
        }
        for (parameter, target) in bindings.all() {
            let input = graph
                .get(&target.node)
                .and_then(|node| node["inputs"].get(&target.input));
            if input.is_none() {
                return Err(invalid(format!(
                    "{parameter} is bound to {}.{}, which the graph does not have",
                    target.node, target.input
                )));
            }
        }
        if bindings.prompt.is_empty() && bindings.seed.is_empty() {
            return Err(invalid("binds neither prompt nor seed".into()));
        }
        Ok(Self {
            id: id.to_owned(),
            graph,
            bindings,
        })
    }

    /// The graph with the job's parameters written into the bound inputs; unbound or absent
    /// parameters keep the workflow's defaults.
    pub fn apply(&self, params: &RunParams) -> Map<String, Value> {
        let mut graph = self.graph.clone();
        let mut write = |targets: &[Target], value: Value| {
            for target in targets {
                let value = match (target.modulo, value.as_u64()) {
                    (Some(modulo), Some(number)) if modulo > 0 => Value::from(number % modulo),
                    _ => value.clone(),
                };
                if let Some(inputs) = graph.get_mut(&target.node).and_then(|node| node.get_mut("inputs")) {
                    inputs[&target.input] = value;
                }
            }
        };
        let bindings = &self.bindings;
        write(&bindings.prompt, Value::from(params.prompt.clone()));
        if let Some(negative) = &params.negative_prompt {
            write(&bindings.negative_prompt, Value::from(negative.clone()));
        }
        if let Some(width) = params.width {
            write(&bindings.width, Value::from(width));
        }
        if let Some(height) = params.height {
            write(&bindings.height, Value::from(height));
        }
        if let Some(steps) = params.steps {
            write(&bindings.steps, Value::from(steps));
        }
        if let Some(cfg) = params.cfg_scale {
            write(&bindings.cfg_scale, Value::from(cfg));
        }
        write(&bindings.seed, Value::from(params.seed));
        if let Some(checkpoint) = &params.checkpoint {
            write(&bindings.checkpoint, Value::from(checkpoint.clone()));
        }
        graph
    }

    /// How many nodes the graph has (for progress).
    pub fn node_count(&self) -> usize {
        self.graph.len()
    }
}

/// Every workflow of a folder, by id.
#[derive(Debug, Clone, Default)]
pub struct Workflows {
    by_id: BTreeMap<String, Workflow>,
}

impl Workflows {
    /// Loads every `<id>.json` with its `<id>.bindings.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, WorkflowError> {
        let unreadable = |reason: String| WorkflowError::Invalid {
            id: dir.display().to_string(),
            reason,
        };
        let entries = std::fs::read_dir(dir).map_err(|error| unreadable(error.to_string()))?;
        let mut by_id = BTreeMap::new();
        for entry in entries {
            let path = entry.map_err(|error| unreadable(error.to_string()))?.path();
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            let Some(id) = name.strip_suffix(".json").filter(|id| !id.ends_with(".bindings")) else {
                continue;
            };
            let read = |path: &Path| {
                std::fs::read_to_string(path).map_err(|error| WorkflowError::Invalid {
                    id: id.to_owned(),
                    reason: format!("{}: {error}", path.display()),
                })
            };
            let graph = read(&path)?;
            let bindings = read(&dir.join(format!("{id}.bindings.json")))?;
            by_id.insert(id.to_owned(), Workflow::parse(id, &graph, &bindings)?);
        }
        Ok(Self { by_id })
    }

    /// The workflow with this id.
    pub fn get(&self, id: &str) -> Result<&Workflow, WorkflowError> {
        self.by_id.get(id).ok_or_else(|| WorkflowError::Unknown(id.to_owned()))
    }

    /// The ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn shipped() -> Workflows {
        Workflows::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows")).expect("the shipped workflows load")
    }

    fn params() -> RunParams {
        RunParams {
            prompt: "a beautiful sunset over mountains".into(),
            negative_prompt: Some("ugly, blurry".into()),
            width: Some(768),
            height: Some(512),
            steps: Some(30),
            cfg_scale: Some(6.5),
            seed: 42,
            checkpoint: Some("custom.safetensors".into()),
        }
    }

    #[test]
    fn every_shipped_workflow_loads() {
        let ids: Vec<_> = shipped().ids().map(str::to_owned).collect();
        assert_eq!(ids, ["canary", "txt2img_flux_schnell", "txt2img_sdxl"]);
    }

    #[test]
    fn sdxl_binds_every_parameter() {
        let graph = shipped().get("txt2img_sdxl").expect("sdxl").apply(&params());
        assert_eq!(graph["6"]["inputs"]["text"], "a beautiful sunset over mountains");
        assert_eq!(graph["7"]["inputs"]["text"], "ugly, blurry");
        assert_eq!(
            (
                graph["5"]["inputs"]["width"].clone(),
                graph["5"]["inputs"]["height"].clone()
            ),
            (json!(768), json!(512))
        );
        assert_eq!(graph["3"]["inputs"]["steps"], 30);
        assert_eq!(graph["3"]["inputs"]["cfg"], 6.5);
        assert_eq!(graph["3"]["inputs"]["seed"], 42);
        assert_eq!(graph["4"]["inputs"]["ckpt_name"], "custom.safetensors");
        assert_eq!(graph["3"]["inputs"]["model"], json!(["4", 0]), "links stay");
    }

    #[test]
    fn flux_schnell_binds_all_but_the_negative_prompt() {
        let graph = shipped().get("txt2img_flux_schnell").expect("flux").apply(&params());
        assert_eq!(graph["6"]["inputs"]["text"], "a beautiful sunset over mountains");
        assert_eq!(graph["7"]["inputs"]["text"], "", "flux ignores the negative prompt");
        assert_eq!(graph["3"]["inputs"]["seed"], 42);
        assert_eq!(graph["3"]["inputs"]["steps"], 30);
        assert_eq!(graph["5"]["inputs"]["width"], 768);
    }

    #[test]
    fn the_canary_turns_the_seed_into_a_colour() {
        let mut run = params();
        run.seed = (1 << 24) + 0xFF0000;
        let graph = shipped().get("canary").expect("canary").apply(&run);
        assert_eq!(graph["1"]["inputs"]["color"], 0xFF0000);
        assert_eq!(graph["1"]["inputs"]["width"], 768);
        assert_eq!(graph["2"]["class_type"], "SaveImage");
    }

    #[test]
    fn absent_parameters_keep_the_defaults() {
        let run = RunParams {
            prompt: "x".into(),
            seed: 1,
            ..RunParams::default()
        };
        let graph = shipped().get("txt2img_sdxl").expect("sdxl").apply(&run);
        assert_eq!(graph["3"]["inputs"]["steps"], 20);
        assert_eq!(graph["4"]["inputs"]["ckpt_name"], "sd_xl_base_1.0.safetensors");
    }

    #[test]
    fn broken_workflows_are_refused_with_a_reason() {
        let graph = r#"{"1": {"class_type": "EmptyImage", "inputs": {"width": 8}}, "2": {"class_type": "SaveImage", "inputs": {}}}"#;
        let missing_input = Workflow::parse("w", graph, r#"{"seed": [{"node": "1", "input": "color"}]}"#);
        assert!(matches!(missing_input, Err(WorkflowError::Invalid { reason, .. }) if reason.contains("1.color")));
        let no_output = Workflow::parse("w", r#"{"1": {"class_type": "EmptyImage", "inputs": {}}}"#, "{}");
        assert!(no_output.is_err());
        let unknown_parameter = Workflow::parse("w", graph, r#"{"colour": []}"#);
        assert!(unknown_parameter.is_err());
        assert_eq!(
            shipped().get("nope").map(|w| w.id.clone()),
            Err(WorkflowError::Unknown("nope".into()))
        );
    }
}
