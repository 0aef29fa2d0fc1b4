//! `template.yaml` (AWS SAM) against the code: the tables, queues and buckets of
//! `Definitions::tessera()`, the Lambda binaries, the HTTP routes the routers serve, and the
//! environment variables the Lambda-deployed crates read. Plain tests, no emulator: the template
//! is parsed with `yaml_serde` (CloudFormation's `!Sub`, `!Ref`, `!GetAtt` arrive as tagged
//! values) and the code is read as text from the workspace.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use tessera_store::definitions::{Definitions, OUTPUT_RETENTION_DAYS};
use tessera_store::item::{PK, SK, TTL};
use tessera_store::{BucketDef, QueueDef, TableDef};
use yaml_serde::{Mapping, Value};

/// The crates linked into each package that has Lambda binaries (folders from the workspace
/// root). `lambda_packages_list_every_crate_they_link` checks this against the Cargo.toml files.
const LAMBDA_PACKAGES: &[(&str, &[&str])] = &[
    (
        "functions/lambdas",
        &[
            "functions/core",
            "functions/store",
            "functions/api",
            "functions/lambdas",
        ],
    ),
    (
        "bots/telegram",
        &["functions/core", "functions/store", "bots/chat", "bots/telegram"],
    ),
    (
        "bots/discord",
        &["functions/core", "functions/store", "bots/chat", "bots/discord"],
    ),
];

/// How a Lambda binary is invoked.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// HTTP API routes: exactly the routes these router files serve.
    Http(&'static [&'static str]),
    /// An EventBridge schedule with this expression.
    Schedule(&'static str),
    /// SQS events from this queue (logical name), reporting batch item failures.
    Queue(&'static str),
}

/// Every Lambda binary (`src/bin/<name>.rs` of a package of [`LAMBDA_PACKAGES`]) and how it is
/// invoked. A new binary fails `every_lambda_binary_is_a_function_and_back` until it is listed.
const BINARIES: &[(&str, Trigger)] = &[
    ("auth", Trigger::Http(&["functions/api/src/auth/routes.rs"])),
    ("jobs", Trigger::Http(&["functions/api/src/v1/jobs.rs"])),
    ("users", Trigger::Http(&["functions/api/src/v1/users.rs"])),
    ("models", Trigger::Http(&["functions/api/src/v1/models.rs"])),
    ("webhooks", Trigger::Http(&["functions/api/src/v1/webhooks/mod.rs"])),
    (
        "internal",
        Trigger::Http(&[
            "functions/api/src/internal/mod.rs",
            "functions/api/src/internal/chat.rs",
        ]),
    ),
    ("docs", Trigger::Http(&["functions/api/src/docs.rs"])),
    ("sweep", Trigger::Schedule("rate(1 minute)")),
    ("webhook-sender", Trigger::Queue("webhooks")),
    ("telegram-webhook", Trigger::Http(&["bots/telegram/src/webhook.rs"])),
    ("telegram-notify", Trigger::Queue("notify-telegram.fifo")),
    (
        "discord-interactions",
        Trigger::Http(&["bots/discord/src/interactions.rs"]),
    ),
    ("discord-notify", Trigger::Queue("notify-discord.fifo")),
];

/// Paths the routers serve that are not deployed: the dev server's.
const DEV_ONLY_PATHS: &[(&str, &str)] = &[
    (
        "/health",
        "the dev server's check of its embedded store and in-process worker; no Lambda family",
    ),
    (
        "/blobs/{bucket}/{key+}",
        "the embedded store's signed blob URLs; on AWS, S3 presigned URLs",
    ),
];

/// Variables the Lambda-deployed crates read that no Lambda uses.
const NEVER_ON_LAMBDA: &[(&str, &str)] = &[
    (
        "TESSERA_DATA_DIR",
        "the embedded store's folder; Lambdas use DynamoDB, SQS and S3",
    ),
    (
        "TELEGRAM_MODE",
        "polling or webhook for the long-running bot; the Lambda is the webhook",
    ),
    (
        "TELEGRAM_LISTEN",
        "where the long-running bot listens; API Gateway fronts the Lambda",
    ),
    (
        "TELEGRAM_WEBHOOK_URL",
        "the long-running bot calls setWebhook with it; on AWS, register the TelegramWebhookUrl output once",
    ),
    (
        "DISCORD_LISTEN",
        "where the long-running bot listens; API Gateway fronts the Lambda",
    ),
];

/// Variables a Lambda reads that the template leaves at their defaults on purpose.
const DEFAULT_ON_LAMBDA: &[(&str, &str)] = &[
    (
        "TESSERA_BACKEND",
        "read by the bots for their notify queue, which their Lambdas never open (SQS delivers the messages)",
    ),
    (
        "TESSERA_CATALOG",
        "the shipped catalog is built in; the lanes declared in the template are its models'",
    ),
    (
        "TESSERA_JWT_ISSUER",
        "the default `tessera`: one deployment issues and checks its tokens",
    ),
    ("TESSERA_JWT_AUDIENCE", "the default `tessera-api`, as for the issuer"),
    (
        "TESSERA_TRUST_FORWARDED_FOR",
        "false: on Lambda the client IP is API Gateway's sourceIp, which a client cannot forge",
    ),
    ("TESSERA_WEBHOOK_ALLOW_HTTP", "false: deployed webhooks are https only"),
    (
        "TESSERA_WEBHOOK_ALLOW_PRIVATE",
        "false: the SSRF guard stays on when deployed",
    ),
    ("TELEGRAM_API_URL", "the real Bot API; tests point it at a fake"),
    ("DISCORD_API_URL", "the real Discord API; tests point it at a fake"),
];

/// Variables read by libraries rather than as a literal in our code.
const LIBRARY_VARIABLES: &[(&str, &str)] = &[(
    "RUST_LOG",
    "tracing-subscriber's EnvFilter::try_from_default_env, in every binary's init_logs",
)];

/// What a binary's source calls (a text marker), the variables that call needs on Lambda, and
/// those it may be given.
const NEEDS: &[(&str, &[&str], &[&str])] = &[
    // `aws_ports`: the resource prefix (its default `tessera` is only right for one deployment).
    ("aws_ports(", &["TESSERA_RESOURCE_PREFIX"], &[]),
    // `auth_service`: AuthConfig::from_lookup without fallback keys requires the JWT keys.
    ("auth_service(", &["TESSERA_JWT_KEYS"], &[]),
    // The `/api/v1` state: the AWS backend, the auth settings, and the webhook key it requires.
    (
        "v1_from_env(",
        &["TESSERA_RESOURCE_PREFIX", "TESSERA_JWT_KEYS", "TESSERA_WEBHOOK_KEY"],
        &[],
    ),
    (
        "serve_v1(",
        &["TESSERA_RESOURCE_PREFIX", "TESSERA_JWT_KEYS", "TESSERA_WEBHOOK_KEY"],
        &[],
    ),
    ("TESSERA_CANARY_SECONDS", &[], &["TESSERA_CANARY_SECONDS"]),
    // The bots' configs require their token and service key; TESSERA_API_URL has a default
    // (127.0.0.1) that is never right on Lambda.
    (
        "tessera_telegram::config::Config",
        &["TELEGRAM_BOT_TOKEN", "TESSERA_SERVICE_KEY", "TESSERA_API_URL"],
        &["TELEGRAM_BOT_ID", "TELEGRAM_CALLBACK_SECRET"],
    ),
    // The webhook binary refuses to start without the secret Telegram must send.
    ("TELEGRAM_WEBHOOK_SECRET", &["TELEGRAM_WEBHOOK_SECRET"], &[]),
    (
        "tessera_discord::config::Config",
        &[
            "DISCORD_APPLICATION_ID",
            "DISCORD_PUBLIC_KEY",
            "DISCORD_BOT_TOKEN",
            "TESSERA_SERVICE_KEY",
            "TESSERA_API_URL",
        ],
        &["DISCORD_BOT_ID", "DISCORD_BUTTON_SECRET"],
    ),
];

/// Variables that hold secrets: the template must take them from Secrets Manager.
const SECRETS: &[&str] = &[
    "TESSERA_JWT_KEYS",
    "TESSERA_WEBHOOK_KEY",
    "TESSERA_SERVICE_KEY",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
    "TELEGRAM_CALLBACK_SECRET",
    "DISCORD_BOT_TOKEN",
    "DISCORD_BUTTON_SECRET",
];

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A workspace file's text.
fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// A source file without its `#[cfg(test)]` part and without comment lines.
fn code(relative: &str) -> String {
    let text = read(relative);
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `.rs` file under a workspace folder, relative to the root.
fn rust_files(folder: &str) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::from(folder)];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(root().join(&dir)).unwrap_or_else(|error| panic!("listing {}: {error}", dir.display()));
        for entry in entries {
            let entry = entry.expect("directory entry");
            let relative = dir.join(entry.file_name());
            if entry.file_type().expect("file type").is_dir() {
                pending.push(relative);
            } else if relative.extension().is_some_and(|extension| extension == "rs") {
                files.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    files
}

/// Fails with the missing and unexpected items of two sets.
fn assert_same<T: Ord + Debug>(what: &str, expected: &BTreeSet<T>, actual: &BTreeSet<T>) {
    let missing: Vec<_> = expected.difference(actual).collect();
    let extra: Vec<_> = actual.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}:\n  missing from the template: {missing:?}\n  in the template but not in the code: {extra:?}"
    );
}

// ----- the template -----------------------------------------------------------------------------

/// The parsed template.
struct Template {
    /// The whole document.
    doc: Value,
}

impl Template {
    /// Parses `template.yaml`.
    fn load() -> Self {
        let doc = yaml_serde::from_str(&read("template.yaml")).expect("template.yaml is YAML");
        Self { doc }
    }

    /// Every resource: logical id and definition.
    fn resources(&self) -> BTreeMap<String, &Value> {
        field(&self.doc, "Resources")
            .and_then(Value::as_mapping)
            .expect("Resources")
            .iter()
            .map(|(id, resource)| (id.as_str().expect("logical id").to_owned(), resource))
            .collect()
    }

    /// The resources of one type.
    fn of_type(&self, kind: &str) -> BTreeMap<String, &Value> {
        self.resources()
            .into_iter()
            .filter(|(_, resource)| str_at(resource, &["Type"]) == Some(kind))
            .collect()
    }

    /// A resource by logical id.
    fn resource(&self, id: &str) -> &Value {
        self.resources()
            .get(id)
            .copied()
            .unwrap_or_else(|| panic!("no resource {id} in the template"))
    }

    /// `Globals.Function.<key>`.
    fn global(&self, key: &str) -> Option<&Value> {
        at(&self.doc, &["Globals", "Function", key])
    }

    /// A function's property, or the global one.
    fn function_property<'a>(&'a self, function: &'a Value, key: &str) -> Option<&'a Value> {
        at(function, &["Properties", key]).or_else(|| self.global(key))
    }

    /// A function's environment with the global one: variable name to value.
    fn environment<'a>(&'a self, function: &'a Value) -> BTreeMap<String, &'a Value> {
        let mut variables = BTreeMap::new();
        let global = at(&self.doc, &["Globals", "Function", "Environment", "Variables"]);
        let own = at(function, &["Properties", "Environment", "Variables"]);
        for mapping in [global, own].into_iter().flatten().filter_map(Value::as_mapping) {
            for (name, value) in mapping {
                variables.insert(name.as_str().expect("variable name").to_owned(), value);
            }
        }
        variables
    }

    /// Every function keyed by its binary name: (logical id, definition).
    fn functions_by_binary(&self) -> BTreeMap<String, (String, &Value)> {
        let mut functions = BTreeMap::new();
        for (id, function) in self.of_type("AWS::Serverless::Function") {
            let binary = str_at(function, &["Metadata", "BuildProperties", "Binary"])
                .unwrap_or_else(|| panic!("function {id} names no Metadata.BuildProperties.Binary"));
            let previous = functions.insert(binary.to_owned(), (id.clone(), function));
            assert!(previous.is_none(), "binary {binary} is deployed twice (again by {id})");
        }
        functions
    }

    /// The logical name (`<prefix>-<name>` without the prefix) of a `!Sub "${ResourcePrefix}-..."`.
    fn logical_name(value: Option<&Value>) -> Option<String> {
        let text = sub_text(value?)?;
        text.strip_prefix("${ResourcePrefix}-").map(str::to_owned)
    }

    /// The resource with this physical name property (e.g. `QueueName`) set to `<prefix>-<name>`.
    fn named<'a>(&'a self, kind: &str, property: &str, name: &str) -> Option<(String, &'a Value)> {
        self.of_type(kind)
            .into_iter()
            .find(|(_, resource)| Self::logical_name(at(resource, &["Properties", property])).as_deref() == Some(name))
    }
}

/// A mapping's field (through a tag).
fn field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Mapping(mapping) => mapping.get(key),
        Value::Tagged(tagged) => field(&tagged.value, key),
        _ => None,
    }
}

/// A nested field.
fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, key| field(value, key))
}

/// A nested string field.
fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

/// A nested number field (numbers may be written as strings in CloudFormation).
fn number_at(value: &Value, path: &[&str]) -> Option<u64> {
    let value = at(value, path)?;
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
}

/// A nested boolean field (`true` or `"true"`).
fn bool_at(value: &Value, path: &[&str]) -> Option<bool> {
    let value = at(value, path)?;
    value
        .as_bool()
        .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
}

/// An intrinsic function call: (`Sub`, its argument) for `!Sub x` and `{"Fn::Sub": x}`;
/// `Ref` for `!Ref` and `{"Ref": x}`.
fn intrinsic(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(tagged) => Some((tagged.tag.to_string().trim_start_matches('!').to_owned(), &tagged.value)),
        Value::Mapping(mapping) if mapping.len() == 1 => {
            let (key, argument) = mapping.iter().next()?;
            let key = key.as_str()?;
            let name = key.strip_prefix("Fn::").or((key == "Ref").then_some(key))?;
            Some((name.to_owned(), argument))
        }
        _ => None,
    }
}

/// The template string of a `!Sub` (either form), or a plain string.
fn sub_text(value: &Value) -> Option<&str> {
    match intrinsic(value) {
        Some((name, argument)) if name == "Sub" => match argument {
            Value::Sequence(parts) => parts.first().and_then(Value::as_str),
            other => other.as_str(),
        },
        Some(_) => None,
        None => value.as_str(),
    }
}

/// The resource a `!GetAtt X.Attr` (either form) points at.
fn get_att_target(value: &Value) -> Option<String> {
    let (name, argument) = intrinsic(value)?;
    if name != "GetAtt" {
        return None;
    }
    match argument {
        Value::Sequence(parts) => parts.first().and_then(Value::as_str).map(str::to_owned),
        other => other
            .as_str()
            .and_then(|text| text.split('.').next())
            .map(str::to_owned),
    }
}

/// The resource or parameter a `!Ref X` (either form) names.
fn ref_target(value: &Value) -> Option<String> {
    let (name, argument) = intrinsic(value)?;
    (name == "Ref").then(|| argument.as_str().map(str::to_owned)).flatten()
}

/// Every logical id or parameter a value refers to: `!Ref`, `!GetAtt` and `${X}` / `${X.Attr}`
/// in `!Sub` strings, at any depth.
fn references(value: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    collect_references(value, &mut found);
    found
}

/// Adds what `value` refers to (see [`references`]) to `found`.
fn collect_references(value: &Value, found: &mut BTreeSet<String>) {
    if let Some(target) = ref_target(value).or_else(|| get_att_target(value)) {
        found.insert(target);
    }
    if let Some(text) = sub_text(value).filter(|_| intrinsic(value).is_some()) {
        for piece in text.split("${").skip(1) {
            if let Some(name) = piece.split('}').next() {
                found.insert(name.split('.').next().unwrap_or(name).to_owned());
            }
        }
    }
    match value {
        Value::Sequence(items) => items.iter().for_each(|item| collect_references(item, found)),
        Value::Mapping(mapping) => mapping.values().for_each(|item| collect_references(item, found)),
        Value::Tagged(tagged) => collect_references(&tagged.value, found),
        _ => {}
    }
}

/// A function's events of one type: event name to its `Properties`.
fn events<'a>(function: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    at(function, &["Properties", "Events"])
        .and_then(Value::as_mapping)
        .map(|events| {
            events
                .iter()
                .filter(|(_, event)| str_at(event, &["Type"]) == Some(kind))
                .map(|(name, event)| {
                    let properties = field(event, "Properties").unwrap_or(&Value::Null);
                    (name.as_str().unwrap_or_default().to_owned(), properties)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A mapping's string keys.
fn keys(mapping: &Mapping) -> BTreeSet<String> {
    mapping.keys().filter_map(Value::as_str).map(str::to_owned).collect()
}

// ----- the code ---------------------------------------------------------------------------------

/// Every string literal `"TESSERA_..."`, `"TELEGRAM_..."`, `"DISCORD_..."` in a crate's `src/`.
fn variables_read_by(crate_folder: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for file in rust_files(&format!("{crate_folder}/src")) {
        let text = code(&file);
        for (index, _) in text.match_indices('"') {
            let rest = &text[index + 1..];
            if !["TESSERA_", "TELEGRAM_", "DISCORD_"]
                .iter()
                .any(|prefix| rest.starts_with(prefix))
            {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if rest[name.len()..].starts_with('"') {
                found.insert(name);
            }
        }
    }
    found
}

/// What every crate of a package reads.
fn variables_read_by_package(crates: &[&str]) -> BTreeSet<String> {
    crates.iter().flat_map(|folder| variables_read_by(folder)).collect()
}

/// An axum path as API Gateway writes it: `{*rest}` becomes the greedy `{rest+}`.
fn gateway_path(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment.strip_prefix("{*") {
            Some(name) => format!("{{{}+}}", name.trim_end_matches('}')),
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The `&str` constants of a source file.
fn string_constants(text: &str) -> BTreeMap<String, String> {
    let mut constants = BTreeMap::new();
    for line in text.lines() {
        let Some((_, rest)) = line.split_once("const ") else {
            continue;
        };
        let Some((name, value)) = rest.split_once(": &str = \"") else {
            continue;
        };
        if let Some(value) = value.strip_suffix("\";") {
            constants.insert(name.trim().to_owned(), value.to_owned());
        }
    }
    constants
}

/// The path argument at the start of `text`: a literal, or a constant of the file.
fn path_argument(text: &str, constants: &BTreeMap<String, String>, file: &str) -> (String, usize) {
    let trimmed = text.trim_start();
    let skipped = text.len() - trimmed.len();
    if let Some(literal) = trimmed.strip_prefix('"') {
        let end = literal.find('"').expect("closing quote");
        return (literal[..end].to_owned(), skipped + end + 2);
    }
    let name: String = trimmed
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let short = name.rsplit("::").next().unwrap_or(&name);
    let value = constants
        .get(short)
        .unwrap_or_else(|| panic!("{file}: the route path {name} is neither a literal nor a constant of the file"));
    (value.clone(), skipped + name.len())
}

/// The text of a call's arguments, from just after its `(` to its closing parenthesis.
fn call_arguments(text: &str) -> &str {
    let mut depth = 1;
    for (index, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..index];
                }
            }
            _ => {}
        }
    }
    text
}

/// The HTTP methods of an axum method router's text (`post(a).get(b)`).
fn methods(handlers: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for method in ["get", "post", "put", "delete", "patch"] {
        let call = format!("{method}(");
        for (index, _) in handlers.match_indices(&call) {
            let before = handlers[..index].chars().next_back();
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                found.insert(method.to_ascii_uppercase());
            }
        }
    }
    found
}

/// Every (method, path) a router file serves: its `.route(...)` calls, and the routes
/// `utoipa-swagger-ui` and `utoipa-redoc` add (`SwaggerUi::new(p)` serves `p` (a redirect),
/// `p/` and `p/{*rest}`; `.url(q, ...)` serves `q`; `Redoc::with_url(r, ...)` serves `r`).
/// Swagger UI's `p/` (trailing slash) has no API Gateway route of its own: `p/{rest+}` is meant
/// to carry it (see the comment on `DocsFunction` in the template).
fn served_routes(file: &str) -> BTreeSet<(String, String)> {
    let text = code(file);
    let constants = string_constants(&read(file));
    let mut routes = BTreeSet::new();
    for (index, _) in text.match_indices(".route(") {
        let arguments = call_arguments(&text[index + ".route(".len()..]);
        let (path, used) = path_argument(arguments, &constants, file);
        let handlers = &arguments[used..];
        let found = methods(handlers);
        assert!(
            !found.is_empty(),
            "{file}: no method found for the route {path}: {handlers}"
        );
        for method in found {
            routes.insert((method, gateway_path(&path)));
        }
    }
    for (index, _) in text.match_indices("SwaggerUi::new(") {
        let rest = &text[index + "SwaggerUi::new(".len()..];
        let arguments = call_arguments(rest);
        let (path, _) = path_argument(arguments, &constants, file);
        routes.insert(("GET".to_owned(), path.clone()));
        routes.insert(("GET".to_owned(), format!("{path}/{{rest+}}")));
        let chained = rest[arguments.len() + 1..].trim_start();
        if let Some(document) = chained.strip_prefix(".url(") {
            routes.insert(("GET".to_owned(), path_argument(document, &constants, file).0));
        }
    }
    for (index, _) in text.match_indices("Redoc::with_url(") {
        let (path, _) = path_argument(&text[index + "Redoc::with_url(".len()..], &constants, file);
        routes.insert(("GET".to_owned(), path));
    }
    routes
}

/// The (method, path) routes of a function's `HttpApi` events.
fn template_routes(function: &Value) -> BTreeSet<(String, String)> {
    events(function, "HttpApi")
        .into_iter()
        .map(|(name, properties)| {
            let method = str_at(properties, &["Method"]).unwrap_or_else(|| panic!("event {name} has no Method"));
            let path = str_at(properties, &["Path"]).unwrap_or_else(|| panic!("event {name} has no Path"));
            (method.to_ascii_uppercase(), path.to_owned())
        })
        .collect()
}

/// The trigger of a binary, from [`BINARIES`].
fn trigger(binary: &str) -> Trigger {
    BINARIES
        .iter()
        .find(|(name, _)| *name == binary)
        .map(|(_, trigger)| *trigger)
        .unwrap_or_else(|| panic!("binary {binary} is not listed in BINARIES (tests/e2e/tests/e2e/template.rs)"))
}

/// Every queue of the definitions, dead-letter queues included.
fn all_queues() -> Vec<QueueDef> {
    let mut queues = Vec::new();
    for queue in Definitions::tessera().queues {
        if let Some(dead_letter) = &queue.dead_letter {
            queues.push((*dead_letter.queue).clone());
        }
        queues.push(queue);
    }
    queues
}

// ----- the tests --------------------------------------------------------------------------------

#[test]
fn every_table_is_declared_with_its_keys_indexes_ttl_and_recovery() {
    let template = Template::load();
    let definitions = Definitions::tessera();
    let expected: BTreeSet<String> = definitions.tables.iter().map(|table| table.name.to_string()).collect();
    let declared: BTreeSet<String> = template
        .of_type("AWS::DynamoDB::Table")
        .iter()
        .map(|(id, table)| {
            Template::logical_name(at(table, &["Properties", "TableName"]))
                .unwrap_or_else(|| panic!("table {id}: TableName is not !Sub \"${{ResourcePrefix}}-<name>\""))
        })
        .collect();
    assert_same("tables", &expected, &declared);

    for table in &definitions.tables {
        let (id, resource) = template
            .named("AWS::DynamoDB::Table", "TableName", &table.name)
            .expect("declared");
        check_table(&id, resource, table);
    }
}

/// One table's settings against its definition (as the AWS bootstrap creates it).
fn check_table(id: &str, resource: &Value, table: &TableDef) {
    let properties = field(resource, "Properties").expect("Properties");
    assert_eq!(
        str_at(properties, &["BillingMode"]),
        Some("PAY_PER_REQUEST"),
        "table {id}: on-demand billing"
    );
    let key_schema = |schema: Option<&Value>| -> Vec<(String, String)> {
        schema
            .and_then(Value::as_sequence)
            .map(|keys| {
                keys.iter()
                    .map(|key| {
                        (
                            str_at(key, &["AttributeName"]).unwrap_or_default().to_owned(),
                            str_at(key, &["KeyType"]).unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let pair = |partition: &str, sort: &str| {
        vec![
            (partition.to_owned(), "HASH".to_owned()),
            (sort.to_owned(), "RANGE".to_owned()),
        ]
    };
    assert_eq!(
        key_schema(field(properties, "KeySchema")),
        pair(PK, SK),
        "table {id}: keys"
    );

    let mut expected_attributes = BTreeSet::from([PK.to_owned(), SK.to_owned()]);
    let mut expected_indexes = BTreeMap::new();
    for index in table.indexes.iter() {
        expected_attributes.insert(index.partition_key.clone());
        expected_attributes.insert(index.sort_key.clone());
        expected_indexes.insert(index.name.clone(), pair(&index.partition_key, &index.sort_key));
    }
    let attributes: Vec<_> = field(properties, "AttributeDefinitions")
        .and_then(Value::as_sequence)
        .expect("AttributeDefinitions")
        .iter()
        .map(|attribute| {
            let name = str_at(attribute, &["AttributeName"]).unwrap_or_default().to_owned();
            assert_eq!(
                str_at(attribute, &["AttributeType"]),
                Some("S"),
                "table {id}: attribute {name} is a string"
            );
            name
        })
        .collect();
    assert_same(
        &format!("table {id}: key attributes"),
        &expected_attributes,
        &attributes.into_iter().collect(),
    );

    let mut indexes = BTreeMap::new();
    for index in field(properties, "GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let name = str_at(index, &["IndexName"]).unwrap_or_default().to_owned();
        assert_eq!(
            str_at(index, &["Projection", "ProjectionType"]),
            Some("ALL"),
            "table {id}: index {name} projects everything"
        );
        indexes.insert(name, key_schema(field(index, "KeySchema")));
    }
    assert_eq!(indexes, expected_indexes, "table {id}: indexes and their keys");

    assert_eq!(
        str_at(properties, &["TimeToLiveSpecification", "AttributeName"]),
        Some(TTL),
        "table {id}: TTL attribute"
    );
    assert_eq!(
        bool_at(properties, &["TimeToLiveSpecification", "Enabled"]),
        Some(true),
        "table {id}: TTL enabled"
    );
    assert_eq!(
        bool_at(
            properties,
            &["PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled"]
        ),
        Some(true),
        "table {id}: point-in-time recovery (a deleted or overwritten item can be restored)"
    );
}

#[test]
fn every_queue_is_declared_with_its_dead_letter_queue() {
    let template = Template::load();
    let queues = all_queues();
    let expected: BTreeSet<String> = queues.iter().map(|queue| queue.name.clone()).collect();
    let declared: BTreeSet<String> = template
        .of_type("AWS::SQS::Queue")
        .iter()
        .map(|(id, queue)| {
            Template::logical_name(at(queue, &["Properties", "QueueName"]))
                .unwrap_or_else(|| panic!("queue {id}: QueueName is not !Sub \"${{ResourcePrefix}}-<name>\""))
        })
        .collect();
    assert_same("queues", &expected, &declared);

    for queue in &queues {
        let (id, resource) = template
            .named("AWS::SQS::Queue", "QueueName", &queue.name)
            .expect("declared");
        let properties = field(resource, "Properties").expect("Properties");
        assert_eq!(
            bool_at(properties, &["FifoQueue"]).unwrap_or(false),
            queue.fifo,
            "queue {id} ({}): FifoQueue",
            queue.name
        );
        assert_eq!(
            bool_at(properties, &["ContentBasedDeduplication"]).unwrap_or(false),
            queue.fifo,
            "queue {id} ({}): FIFO queues deduplicate on the body, as the bootstrap sets them",
            queue.name
        );
        assert_eq!(
            number_at(properties, &["VisibilityTimeout"]).unwrap_or(30),
            queue.visibility_timeout.as_secs(),
            "queue {id} ({}): VisibilityTimeout (SQS's default is 30 s)",
            queue.name
        );
        let redrive = field(properties, "RedrivePolicy");
        match &queue.dead_letter {
            None => assert!(
                redrive.is_none(),
                "queue {id} ({}) has no dead-letter queue in the code",
                queue.name
            ),
            Some(dead_letter) => {
                let redrive = redrive.unwrap_or_else(|| panic!("queue {id} ({}): no RedrivePolicy", queue.name));
                let target = field(redrive, "deadLetterTargetArn")
                    .and_then(get_att_target)
                    .unwrap_or_else(|| panic!("queue {id}: deadLetterTargetArn is not !GetAtt <queue>.Arn"));
                let target_name = Template::logical_name(at(template.resource(&target), &["Properties", "QueueName"]));
                assert_eq!(
                    target_name.as_deref(),
                    Some(dead_letter.queue.name.as_str()),
                    "queue {id} ({}): its dead-letter queue",
                    queue.name
                );
                assert_eq!(
                    number_at(redrive, &["maxReceiveCount"]),
                    Some(u64::from(dead_letter.max_receives)),
                    "queue {id} ({}): maxReceiveCount",
                    queue.name
                );
            }
        }
    }
}

#[test]
fn every_bucket_is_declared_private_encrypted_and_with_its_expiry() {
    let template = Template::load();
    let buckets = Definitions::tessera().buckets;
    let expected: BTreeSet<String> = buckets.iter().map(|bucket| bucket.name.clone()).collect();
    let declared: BTreeSet<String> = template
        .of_type("AWS::S3::Bucket")
        .iter()
        .map(|(id, bucket)| {
            Template::logical_name(at(bucket, &["Properties", "BucketName"]))
                .unwrap_or_else(|| panic!("bucket {id}: BucketName is not !Sub \"${{ResourcePrefix}}-<name>\""))
        })
        .collect();
    assert_same("buckets", &expected, &declared);
    for bucket in &buckets {
        check_bucket(&template, bucket);
    }
    let artifacts = buckets
        .iter()
        .find(|bucket| bucket.name == "artifacts")
        .expect("artifacts");
    assert_eq!(artifacts.expire_after_days, Some(OUTPUT_RETENTION_DAYS));
}

/// One bucket's settings against its definition.
fn check_bucket(template: &Template, bucket: &BucketDef) {
    let (id, resource) = template
        .named("AWS::S3::Bucket", "BucketName", &bucket.name)
        .expect("declared");
    let properties = field(resource, "Properties").expect("Properties");
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(
            bool_at(properties, &["PublicAccessBlockConfiguration", setting]),
            Some(true),
            "bucket {id}: {setting}"
        );
    }
    let encryption = at(properties, &["BucketEncryption", "ServerSideEncryptionConfiguration"])
        .and_then(Value::as_sequence)
        .and_then(|rules| rules.first());
    assert!(
        encryption
            .and_then(|rule| str_at(rule, &["ServerSideEncryptionByDefault", "SSEAlgorithm"]))
            .is_some(),
        "bucket {id}: default encryption"
    );
    let expiries: Vec<u64> = at(properties, &["LifecycleConfiguration", "Rules"])
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|rule| str_at(rule, &["Status"]) == Some("Enabled"))
        .filter_map(|rule| number_at(rule, &["ExpirationInDays"]))
        .collect();
    let expected: Vec<u64> = bucket.expire_after_days.map(u64::from).into_iter().collect();
    assert_eq!(
        expiries, expected,
        "bucket {id} ({}): object expiry in days",
        bucket.name
    );
}

#[test]
fn every_lambda_binary_is_a_function_and_back() {
    let template = Template::load();
    let mut on_disk = BTreeMap::new();
    for (package, _) in LAMBDA_PACKAGES {
        for file in rust_files(&format!("{package}/src/bin")) {
            let name = Path::new(&file)
                .file_stem()
                .and_then(|stem| stem.to_str())
                .expect("file name")
                .to_owned();
            on_disk.insert(name, package.to_string());
        }
    }
    let listed: BTreeSet<String> = BINARIES.iter().map(|(name, _)| name.to_string()).collect();
    assert_same(
        "Lambda binaries on disk vs BINARIES in this test (list a new binary with its trigger)",
        &on_disk.keys().cloned().collect(),
        &listed,
    );
    let functions = template.functions_by_binary();
    assert_same(
        "Lambda binaries deployed as functions",
        &on_disk.keys().cloned().collect(),
        &functions.keys().cloned().collect(),
    );
    for (binary, (id, function)) in &functions {
        assert_eq!(
            str_at(function, &["Metadata", "BuildMethod"]),
            Some("rust-cargolambda"),
            "function {id}: built by cargo lambda"
        );
        let code_uri = str_at(function, &["Properties", "CodeUri"]).unwrap_or_default();
        assert_eq!(
            Some(code_uri),
            on_disk.get(binary).map(String::as_str),
            "function {id}: CodeUri must be the folder of the package whose src/bin/{binary}.rs it builds \
             (cargo lambda builds --bin {binary} there)"
        );
        let setting = |key: &str| template.function_property(function, key);
        assert_eq!(
            setting("Runtime").and_then(Value::as_str),
            Some("provided.al2023"),
            "function {id}: runtime"
        );
        assert_eq!(
            setting("Handler").and_then(Value::as_str),
            Some("bootstrap"),
            "function {id}: handler"
        );
        let architectures: Vec<&str> = setting("Architectures")
            .and_then(Value::as_sequence)
            .map(|list| list.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(architectures, ["arm64"], "function {id}: architecture");
    }
}

#[test]
fn every_function_logs_to_its_own_group_kept_for_the_retention_days() {
    let template = Template::load();
    let groups = template.of_type("AWS::Logs::LogGroup");
    let functions = template.of_type("AWS::Serverless::Function");
    for (id, function) in &functions {
        let name = format!("/aws/lambda/${{{id}}}");
        let group = groups
            .iter()
            .find(|(_, group)| at(group, &["Properties", "LogGroupName"]).and_then(sub_text) == Some(&name))
            .map(|(_, group)| *group)
            .unwrap_or_else(|| panic!("function {id}: no log group named !Sub \"{name}\""));
        assert_eq!(
            at(group, &["Properties", "RetentionInDays"])
                .and_then(ref_target)
                .as_deref(),
            Some("LogRetentionDays"),
            "function {id}: its logs are kept LogRetentionDays"
        );
        assert_eq!(
            str_at(group, &["Condition"]),
            str_at(function, &["Condition"]),
            "function {id}: its log group is made exactly when it is"
        );
    }
    assert_eq!(groups.len(), functions.len(), "a log group per function, and no other");
    let retention = at(&template.doc, &["Parameters", "LogRetentionDays"]).expect("the LogRetentionDays parameter");
    assert_eq!(number_at(retention, &["Default"]), Some(30), "a month by default");
}

#[test]
fn every_function_has_its_trigger() {
    let template = Template::load();
    for (binary, (id, function)) in template.functions_by_binary() {
        let http = events(function, "HttpApi");
        let schedules = events(function, "Schedule");
        let sqs = events(function, "SQS");
        match trigger(&binary) {
            Trigger::Http(_) => assert!(
                !http.is_empty() && schedules.is_empty() && sqs.is_empty(),
                "function {id} ({binary}) is invoked by HTTP API routes only"
            ),
            Trigger::Schedule(expression) => {
                assert!(
                    http.is_empty() && sqs.is_empty(),
                    "function {id} ({binary}) is scheduled only"
                );
                let expressions: Vec<_> = schedules
                    .iter()
                    .filter_map(|(_, properties)| str_at(properties, &["Schedule"]))
                    .collect();
                assert_eq!(expressions, [expression], "function {id} ({binary}): schedule");
            }
            Trigger::Queue(queue_name) => {
                assert!(
                    http.is_empty() && schedules.is_empty() && sqs.len() == 1,
                    "function {id} ({binary}) consumes one queue, {queue_name}"
                );
                let properties = sqs[0].1;
                let target = field(properties, "Queue")
                    .and_then(get_att_target)
                    .unwrap_or_else(|| panic!("function {id}: the SQS event's Queue is not !GetAtt <queue>.Arn"));
                let queue = template.resource(&target);
                assert_eq!(
                    Template::logical_name(at(queue, &["Properties", "QueueName"])).as_deref(),
                    Some(queue_name),
                    "function {id} ({binary}): the queue it consumes"
                );
                let responses: Vec<_> = field(properties, "FunctionResponseTypes")
                    .and_then(Value::as_sequence)
                    .map(|list| list.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                assert!(
                    responses.contains(&"ReportBatchItemFailures"),
                    "function {id} ({binary}) answers the failed items only: FunctionResponseTypes: [ReportBatchItemFailures]"
                );
                let timeout = template
                    .function_property(function, "Timeout")
                    .and_then(Value::as_u64)
                    .unwrap_or(3);
                let visibility = number_at(queue, &["Properties", "VisibilityTimeout"]).unwrap_or(30);
                assert!(
                    timeout <= visibility,
                    "function {id} ({binary}): its timeout ({timeout} s) exceeds {queue_name}'s visibility timeout ({visibility} s); Lambda refuses the event source"
                );
            }
        }
    }
}

#[test]
fn every_route_is_served_by_its_function_and_every_served_route_is_routed() {
    let template = Template::load();
    let mut routed = BTreeSet::new();
    for (binary, (id, function)) in template.functions_by_binary() {
        let declared = template_routes(function);
        routed.extend(declared.iter().cloned());
        let Trigger::Http(files) = trigger(&binary) else {
            continue;
        };
        let served: BTreeSet<_> = files.iter().flat_map(|file| served_routes(file)).collect();
        assert_same(
            &format!("routes of function {id} (binary {binary}, routers {files:?})"),
            &served,
            &declared,
        );
        // A function cannot read the URL of an API its routes are on (SAM writes the routes into
        // the API: a circular dependency).
        let apis: BTreeSet<String> = events(function, "HttpApi")
            .iter()
            .filter_map(|(_, properties)| field(properties, "ApiId").and_then(ref_target))
            .collect();
        let environment = at(function, &["Properties", "Environment"])
            .map(references)
            .unwrap_or_default();
        let cycle: Vec<_> = apis.intersection(&environment).collect();
        assert!(
            cycle.is_empty(),
            "function {id} is routed on {cycle:?} and reads its URL: a circular dependency"
        );
    }

    // Every path the routers serve, wherever it is, is deployed (or dev-only, listed above).
    let dev_only: BTreeSet<&str> = DEV_ONLY_PATHS.iter().map(|(path, _)| *path).collect();
    let routed_paths: BTreeSet<&str> = routed.iter().map(|(_, path)| path.as_str()).collect();
    for folder in ["functions/api/src", "bots/telegram/src", "bots/discord/src"] {
        for file in rust_files(folder) {
            for (method, path) in served_routes(&file) {
                assert!(
                    routed_paths.contains(path.as_str()) || dev_only.contains(path.as_str()),
                    "{file} serves {method} {path}, which no function of the template routes \
                     (route it, or list it in DEV_ONLY_PATHS with a reason)"
                );
            }
        }
    }
}

#[test]
fn the_environment_matches_what_the_lambda_crates_read() {
    let template = Template::load();
    let read: BTreeSet<String> = LAMBDA_PACKAGES
        .iter()
        .flat_map(|(_, crates)| variables_read_by_package(crates))
        .collect();
    let excluded: BTreeMap<&str, &str> = NEVER_ON_LAMBDA.iter().chain(DEFAULT_ON_LAMBDA).copied().collect();
    for name in excluded.keys() {
        assert!(
            read.contains(*name),
            "{name} is listed as read but unused on Lambda, yet no Lambda crate reads it any more: drop it from the list"
        );
    }
    let library: BTreeSet<String> = LIBRARY_VARIABLES.iter().map(|(name, _)| name.to_string()).collect();
    let expected: BTreeSet<String> = read
        .iter()
        .filter(|name| !excluded.contains_key(name.as_str()))
        .cloned()
        .chain(library.iter().cloned())
        .collect();
    let set: BTreeSet<String> = template
        .of_type("AWS::Serverless::Function")
        .values()
        .flat_map(|function| template.environment(function).into_keys())
        .collect();
    for name in &set {
        assert!(
            !excluded.contains_key(name.as_str()),
            "the template sets {name}, which is listed as unused on Lambda: {}",
            excluded[name.as_str()]
        );
    }
    assert_same(
        "environment variables (the code's reads, less NEVER_ON_LAMBDA and DEFAULT_ON_LAMBDA, vs the functions' environments)",
        &expected,
        &set,
    );
}

#[test]
fn each_function_gets_the_variables_its_binary_needs_and_no_others() {
    let template = Template::load();
    let library: BTreeSet<String> = LIBRARY_VARIABLES.iter().map(|(name, _)| name.to_string()).collect();
    for (binary, (id, function)) in template.functions_by_binary() {
        let code_uri = str_at(function, &["Properties", "CodeUri"]).unwrap_or_default();
        let source = code(&format!("{code_uri}/src/bin/{binary}.rs"));
        let mut required = BTreeSet::new();
        let mut allowed = library.clone();
        for (marker, needs, may) in NEEDS {
            if source.contains(marker) {
                required.extend(needs.iter().map(|name| name.to_string()));
                allowed.extend(needs.iter().chain(may.iter()).map(|name| name.to_string()));
            }
        }
        let (_, crates) = LAMBDA_PACKAGES
            .iter()
            .find(|(package, _)| *package == code_uri)
            .unwrap_or_else(|| panic!("function {id}: CodeUri {code_uri} is not a Lambda package"));
        let package_reads = variables_read_by_package(crates);
        let environment = template.environment(function);
        let names: BTreeSet<String> = environment.keys().cloned().collect();
        let missing: Vec<_> = required.difference(&names).collect();
        assert!(missing.is_empty(), "function {id} ({binary}) needs {missing:?}");
        let unread: Vec<_> = names.difference(&allowed).collect();
        assert!(
            unread.is_empty(),
            "function {id} ({binary}) is given {unread:?}, which it does not read"
        );
        for name in &names {
            assert!(
                package_reads.contains(name) || library.contains(name),
                "function {id}: no crate of {code_uri} reads {name}"
            );
        }
        for (name, value) in environment {
            if SECRETS.contains(&name.as_str()) {
                let text = sub_text(value).unwrap_or_default();
                assert!(
                    text.starts_with("{{resolve:secretsmanager:"),
                    "function {id}: {name} is a secret; take it from Secrets Manager with a dynamic reference, not {value:?}"
                );
            }
        }
    }
}

#[test]
fn lambda_packages_list_every_crate_they_link() {
    let manifest = read("Cargo.toml");
    let folder_of = |crate_name: &str| -> String {
        let line = manifest
            .lines()
            .find(|line| line.starts_with(&format!("{crate_name} = {{ path = ")))
            .unwrap_or_else(|| panic!("{crate_name} is not a workspace dependency with a path"));
        line.split('"').nth(1).expect("path").to_owned()
    };
    for (package, crates) in LAMBDA_PACKAGES {
        for folder in *crates {
            let cargo = read(&format!("{folder}/Cargo.toml"));
            let dependencies = cargo
                .split("[dependencies]")
                .nth(1)
                .and_then(|rest| rest.split("\n[").next())
                .unwrap_or_default();
            for line in dependencies.lines() {
                let name = line.split(['.', ' ', '=']).next().unwrap_or_default();
                if name.starts_with("tessera-") {
                    let dependency = folder_of(name);
                    assert!(
                        crates.contains(&dependency.as_str()),
                        "{folder} links {name} ({dependency}); add it to the crates of {package} in LAMBDA_PACKAGES"
                    );
                }
            }
        }
    }
}

#[test]
fn the_outputs_name_the_apis_the_lanes_and_the_bucket() {
    let template = Template::load();
    let outputs = field(&template.doc, "Outputs")
        .and_then(Value::as_mapping)
        .expect("Outputs");
    let names = keys(outputs);
    for required in [
        "ApiUrl",
        "BotsApiUrl",
        "JobLaneQueueUrls",
        "ArtifactsBucketName",
        "ResourcePrefix",
    ] {
        assert!(names.contains(required), "no output {required}");
    }
    let lanes: BTreeSet<String> = Definitions::tessera()
        .queues
        .iter()
        .filter(|queue| queue.name.starts_with("jobs-"))
        .map(|queue| queue.name.clone())
        .collect();
    let listed: BTreeSet<String> = outputs
        .get("JobLaneQueueUrls")
        .map(references)
        .unwrap_or_default()
        .iter()
        .filter_map(|id| Template::logical_name(at(template.resource(id), &["Properties", "QueueName"])))
        .collect();
    assert_same("the job lanes of the JobLaneQueueUrls output", &lanes, &listed);
    let bucket = outputs
        .get("ArtifactsBucketName")
        .and_then(|output| field(output, "Value"));
    let bucket = bucket.and_then(ref_target).expect("ArtifactsBucketName is a !Ref");
    assert_eq!(
        Template::logical_name(at(template.resource(&bucket), &["Properties", "BucketName"])).as_deref(),
        Some("artifacts")
    );
}
