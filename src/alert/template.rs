//! Alert templates: loading (shipped defaults, then `email.templates_dir`, then inline
//! `email.templates`), validation against each template's placeholders, and rendering, a pure
//! function of the template and the values.
//!
//! Two syntaxes: handlebars (`{{node_name}}`, `{{#if suppressed}}…{{/if}}`), and jmanager's Python
//! `str.format` fields (`{node_name}`, `{{` and `}}` for literal braces). A text with a
//! single-brace field `{name}` is read as Python fields, any other text containing `{{` as
//! handlebars. Either way an unknown placeholder is a
//! configuration error naming the template, and nothing here panics on any text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{Handlebars, Path as HbPath};
use serde_json::Value;

use super::catalog::{self, TemplateName};
use super::settings::TemplateSettings;

/// The values of one alert's placeholders (strings, and numbers for counts).
pub type Values = BTreeMap<&'static str, Value>;

/// File extension of templates in `email.templates_dir`.
pub const FILE_EXTENSION: &str = "txt";

/// Helpers a handlebars template may call (handlebars' built-ins).
const HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "eq", "ne", "gt", "gte", "lt", "lte", "and", "or",
    "not", "len",
];

/// A problem with a template, for the configuration's error list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateProblem {
    /// The configuration key (`email.templates.NAME.subject`, `email.templates_dir`).
    pub key: String,
    /// What is wrong, naming the template (and its file).
    pub message: String,
}

/// A subject or body, rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// One line.
    pub subject: String,
    /// Plain text, ending with a newline.
    pub body: String,
}

/// One text (subject or body), parsed and checked.
#[derive(Clone, Debug)]
enum Part {
    /// Registered in the handlebars registry under this key.
    Handlebars(String),
    /// Python `str.format` fields.
    Python(Vec<Segment>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Field(String),
}

#[derive(Clone, Debug)]
struct Entry {
    subject: Part,
    body: Part,
    /// Whether the template shows the suppressed count itself; if not, a line is appended.
    uses_suppressed: bool,
    /// Where it comes from, for log lines: `shipped`, a file, or a key.
    origin: String,
}

/// Every template, ready to render.
#[derive(Clone, Debug)]
pub struct Templates {
    registry: Handlebars<'static>,
    entries: BTreeMap<TemplateName, Entry>,
}

impl Templates {
    /// The shipped defaults only.
    pub fn shipped() -> Result<Templates, Vec<TemplateProblem>> {
        Templates::load(&TemplateSettings::default())
    }

    /// The shipped defaults, overridden by `*.txt` files of `settings.dir` (by file name),
    /// overridden by inline `settings.inline` (by key; jmanager's `stuck` and `bootstrap_restart`
    /// stand for the templates they map to, and a template's own name wins over them). Every
    /// problem is returned, each naming its template.
    pub fn load(settings: &TemplateSettings) -> Result<Templates, Vec<TemplateProblem>> {
        let mut templates = Templates {
            registry: Handlebars::new(),
            entries: BTreeMap::new(),
        };
        templates.registry.set_strict_mode(true);
        templates.registry.register_escape_fn(handlebars::no_escape);
        let mut problems = Vec::new();
        for name in TemplateName::ALL {
            let origin = format!("shipped template {name}");
            match split_file(name.shipped()) {
                Some((subject, body)) => templates.set(
                    name.as_str(),
                    &[name],
                    (subject, body),
                    &origin,
                    ("email".to_string(), "email".to_string()),
                    &mut problems,
                ),
                None => problems.push(TemplateProblem {
                    key: "email".into(),
                    message: format!("{origin}: expected `Subject: ...` on the first line"),
                }),
            }
        }
        if let Some(dir) = &settings.dir {
            templates.load_dir(dir, &mut problems);
        }
        for (name, template) in by_precedence(settings.inline.iter().map(|(k, v)| (k.as_str(), v)))
        {
            let key = format!("email.templates.{name}");
            let targets = catalog::targets(name);
            if targets.is_empty() {
                problems.push(TemplateProblem {
                    key,
                    message: unknown_name(name),
                });
                continue;
            }
            templates.set(
                name,
                &targets,
                (&template.subject, &template.message),
                &format!("template {name}"),
                (format!("{key}.subject"), format!("{key}.message")),
                &mut problems,
            );
        }
        if problems.is_empty() {
            Ok(templates)
        } else {
            Err(problems)
        }
    }

    fn load_dir(&mut self, dir: &Path, problems: &mut Vec<TemplateProblem>) {
        let key = "email.templates_dir".to_string();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                problems.push(TemplateProblem {
                    key,
                    message: format!("cannot read {}: {e}", dir.display()),
                });
                return;
            }
        };
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(FILE_EXTENSION) {
                continue;
            }
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            files.push((stem.to_string(), path));
        }
        files.sort();
        let files: Vec<(&str, &std::path::PathBuf)> = files
            .iter()
            .map(|(stem, path)| (stem.as_str(), path))
            .collect();
        for (name, path) in by_precedence(files.into_iter()) {
            let file = path.display();
            let targets = catalog::targets(name);
            if targets.is_empty() {
                problems.push(TemplateProblem {
                    key: key.clone(),
                    message: format!("{file}: {}", unknown_name(name)),
                });
                continue;
            }
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) => {
                    problems.push(TemplateProblem {
                        key: key.clone(),
                        message: format!("cannot read {file}: {e}"),
                    });
                    continue;
                }
            };
            match split_file(&text) {
                Some(parts) => self.set(
                    name,
                    &targets,
                    parts,
                    &format!("{file} (template {name})"),
                    (key.clone(), key.clone()),
                    problems,
                ),
                None => problems.push(TemplateProblem {
                    key: key.clone(),
                    message: format!(
                        "{file} (template {name}): expected `Subject: ...` on the first line, \
                         then a blank line and the body"
                    ),
                }),
            }
        }
    }

    /// Parses `subject` and `body` for each of `targets` (what the name `written` stands for); on
    /// success they replace the current entries, else every problem is recorded under `keys`
    /// (subject's, body's).
    fn set(
        &mut self,
        written: &str,
        targets: &[TemplateName],
        (subject, body): (&str, &str),
        origin: &str,
        (subject_key, body_key): (String, String),
        problems: &mut Vec<TemplateProblem>,
    ) {
        // jmanager's `stuck` stands for two templates with the same placeholders: each problem
        // is said once.
        let mut seen = BTreeSet::new();
        for &target in targets {
            let allowed = target.placeholders();
            let parsed_subject = parse_part(subject, &allowed);
            let parsed_body = parse_part(body, &allowed);
            for (key, part, parsed) in [
                (&subject_key, "subject", &parsed_subject),
                (&body_key, "body", &parsed_body),
            ] {
                let Err(messages) = parsed else { continue };
                for message in messages {
                    if !seen.insert((key.clone(), message.clone())) {
                        continue;
                    }
                    let label = if written == target.as_str() || targets.len() > 1 {
                        origin.to_string()
                    } else {
                        format!("{origin} (as {target})")
                    };
                    problems.push(TemplateProblem {
                        key: key.clone(),
                        message: format!("{label}, {part}: {message}"),
                    });
                }
            }
            let (Ok(subject), Ok(body)) = (parsed_subject, parsed_body) else {
                continue;
            };
            let uses_suppressed = subject.uses("suppressed") || body.uses("suppressed");
            let subject = self.register(target, "subject", subject);
            let body = self.register(target, "body", body);
            self.entries.insert(
                target,
                Entry {
                    subject,
                    body,
                    uses_suppressed,
                    origin: origin.to_string(),
                },
            );
        }
    }

    fn register(&mut self, target: TemplateName, part: &str, parsed: Parsed) -> Part {
        match parsed {
            Parsed::Handlebars(template, _) => {
                let key = format!("{target}.{part}");
                self.registry.register_template(&key, template);
                Part::Handlebars(key)
            }
            Parsed::Python(segments, _) => Part::Python(segments),
        }
    }

    /// Where template `name` comes from (`shipped template NAME`, a file, or a key).
    pub fn origin(&self, name: TemplateName) -> &str {
        self.entries
            .get(&name)
            .map(|entry| entry.origin.as_str())
            .unwrap_or("missing")
    }

    /// Renders template `name` with `values`. Pure; never fails: a value missing at render time
    /// (a bug, since templates are checked at load) yields a plain mail listing every value, so
    /// that no alert is lost to a template. When the template does not show `suppressed` itself
    /// and it is above zero, a line saying so is appended to the body. An empty subject means
    /// "do not send" (see `Rendered::is_disabled`).
    pub fn render(&self, name: TemplateName, values: &Values) -> Rendered {
        let Some(entry) = self.entries.get(&name) else {
            return fallback(name, values, "no such template");
        };
        let subject = self.render_part(&entry.subject, values);
        let body = self.render_part(&entry.body, values);
        let (subject, mut body) = match (subject, body) {
            (Ok(subject), Ok(body)) => (subject, body),
            (Err(e), _) | (_, Err(e)) => return fallback(name, values, &e),
        };
        let suppressed = values
            .get("suppressed")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if suppressed > 0 && !entry.uses_suppressed {
            if !body.is_empty() && !body.ends_with('\n') {
                body.push('\n');
            }
            body.push_str(&format!(
                "\n({suppressed} similar alert(s) in the last {} were not mailed.)\n",
                values.get("window").map(text).unwrap_or_default()
            ));
        }
        Rendered {
            subject: one_line(&subject),
            body: with_final_newline(body),
        }
    }

    fn render_part(&self, part: &Part, values: &Values) -> Result<String, String> {
        match part {
            Part::Handlebars(key) => self.registry.render(key, values).map_err(|e| e.to_string()),
            Part::Python(segments) => {
                let mut out = String::new();
                for segment in segments {
                    match segment {
                        Segment::Literal(literal) => out.push_str(literal),
                        Segment::Field(name) => match values.get(name.as_str()) {
                            Some(value) => out.push_str(&text(value)),
                            None => return Err(format!("no value for {{{name}}}")),
                        },
                    }
                }
                Ok(out)
            }
        }
    }
}

impl Rendered {
    /// A template whose subject renders empty is switched off: the alert is not mailed.
    pub fn is_disabled(&self) -> bool {
        self.subject.is_empty()
    }
}

/// A value as text: strings as they are, numbers in decimal, null as nothing.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn with_final_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// A mail made without the template: every value, one per line.
fn fallback(name: TemplateName, values: &Values, error: &str) -> Rendered {
    let subject_of = values
        .get("node_name")
        .or_else(|| values.get("supervisor"))
        .map(text)
        .filter(|s| !s.is_empty());
    let subject = match subject_of {
        Some(about) => format!("[nodekeeper] {name}: {about}"),
        None => format!("[nodekeeper] {name}"),
    };
    let mut body = String::new();
    for (key, value) in values {
        body.push_str(&format!("{key}: {}\n", text(value)));
    }
    body.push_str(&format!(
        "\n(template {name} could not be rendered: {error})\n"
    ));
    Rendered {
        subject: one_line(&subject),
        body,
    }
}

/// Applies jmanager's names before nodekeeper's, so that a template's own name wins.
fn by_precedence<'a, T>(
    items: impl Iterator<Item = (&'a str, T)>,
) -> impl Iterator<Item = (&'a str, T)> {
    let (mut ordered, own): (Vec<_>, Vec<_>) = items.partition(|(name, _)| {
        catalog::JMANAGER_NAMES
            .iter()
            .any(|(alias, _)| alias == name)
    });
    ordered.extend(own);
    ordered.into_iter()
}

fn unknown_name(name: &str) -> String {
    let known = catalog::known_names();
    let guess = known
        .iter()
        .map(|candidate| (strsim::jaro_winkler(name, candidate), *candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| format!(" (did you mean `{candidate}`?)"))
        .unwrap_or_default();
    format!(
        "unknown template `{name}`{guess}; expected one of: {}",
        known.join(", ")
    )
}

/// `Subject: ...` on the first line, then (after an optional blank line) the body.
pub fn split_file(text: &str) -> Option<(&str, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let first = first.strip_suffix('\r').unwrap_or(first);
    let prefix = first.get(..8)?;
    if !prefix.eq_ignore_ascii_case("subject:") {
        return None;
    }
    let subject = first[8..].trim();
    let body = rest
        .strip_prefix("\r\n")
        .or_else(|| rest.strip_prefix('\n'))
        .unwrap_or(rest);
    Some((subject, body))
}

/// A text parsed, with the placeholders it uses.
enum Parsed {
    Handlebars(handlebars::Template, BTreeSet<String>),
    Python(Vec<Segment>, BTreeSet<String>),
}

impl Parsed {
    fn uses(&self, name: &str) -> bool {
        match self {
            Parsed::Handlebars(_, used) | Parsed::Python(_, used) => used.contains(name),
        }
    }
}

/// Whether `text` has a jmanager-style field: `{name}` (or `{name:spec}`, `{name!r}`) with
/// single braces.
fn has_python_field(text: &str) -> bool {
    let bytes = text.as_bytes();
    for (at, _) in text.match_indices('{') {
        if at > 0 && bytes[at - 1] == b'{' {
            continue;
        }
        let rest = &text[at + 1..];
        let name_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if name_len == 0 {
            continue;
        }
        let after = &rest[name_len..];
        let spec_len = if after.starts_with([':', '!']) {
            after
                .bytes()
                .take_while(|b| *b != b'{' && *b != b'}')
                .count()
        } else {
            0
        };
        let after = &after[spec_len..];
        if after.starts_with('}') && !after[1..].starts_with('}') {
            return true;
        }
    }
    false
}

/// Parses `text` (Python fields when it has a `{name}` field, else handlebars when it contains
/// `{{`, else Python) and checks that it uses
/// only `allowed` placeholders. Errors are one line each.
fn parse_part(text: &str, allowed: &[&str]) -> Result<Parsed, Vec<String>> {
    if text.contains("{{") && !has_python_field(text) {
        let template = handlebars::Template::compile(text).map_err(|e| {
            let reason = e.reason().to_string();
            let reason = reason.lines().next().unwrap_or_default();
            let reason = reason
                .strip_prefix("invalid handlebars syntax: ")
                .unwrap_or(reason)
                .to_string();
            vec![match e.pos() {
                Some((line, column)) => {
                    format!("invalid handlebars syntax at line {line}, column {column}: {reason}")
                }
                None => format!("invalid handlebars syntax: {reason}"),
            }]
        })?;
        let mut check = Check::default();
        check.elements(&template.elements);
        let mut errors = check.errors;
        for name in &check.used {
            if !allowed.contains(&name.as_str()) {
                errors.push(unknown_placeholder(
                    &format!("{{{{{name}}}}}"),
                    name,
                    allowed,
                    "{{",
                    "}}",
                ));
            }
        }
        if errors.is_empty() {
            Ok(Parsed::Handlebars(template, check.used))
        } else {
            Err(errors)
        }
    } else {
        let segments = parse_python(text).map_err(|e| vec![e])?;
        let mut errors = Vec::new();
        let mut used = BTreeSet::new();
        for segment in &segments {
            if let Segment::Field(name) = segment {
                if !allowed.contains(&name.as_str()) {
                    let error =
                        unknown_placeholder(&format!("{{{name}}}"), name, allowed, "{", "}");
                    if !errors.contains(&error) {
                        errors.push(error);
                    }
                }
                used.insert(name.clone());
            }
        }
        if errors.is_empty() {
            Ok(Parsed::Python(segments, used))
        } else {
            Err(errors)
        }
    }
}

fn unknown_placeholder(
    shown: &str,
    name: &str,
    allowed: &[&str],
    open: &str,
    close: &str,
) -> String {
    let guess = allowed
        .iter()
        .map(|candidate| (strsim::jaro_winkler(name, candidate), *candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| format!(" (did you mean {open}{candidate}{close}?)"))
        .unwrap_or_default();
    format!(
        "unknown placeholder {shown}{guess}; placeholders here: {}",
        allowed
            .iter()
            .map(|name| format!("{open}{name}{close}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Python `str.format` fields: `{name}` (a format spec or conversion after `:` or `!` is
/// accepted and ignored), `{{` and `}}` for braces. Anything else with a brace is an error.
fn parse_python(text: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                chars.next();
                literal.push('{');
            }
            '{' => {
                let mut field = String::new();
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    match c {
                        '}' => {
                            closed = true;
                            break;
                        }
                        '{' => {
                            return Err(format!(
                                "nested `{{` in the field at character {}: write `{{{{` for a brace",
                                at + 1
                            ));
                        }
                        c => field.push(c),
                    }
                }
                if !closed {
                    return Err(format!(
                        "unmatched `{{` at character {}: write `{{{{` for a brace",
                        at + 1
                    ));
                }
                let name = field.split([':', '!']).next().unwrap_or_default().trim();
                if name.is_empty() {
                    return Err(format!(
                        "empty field `{{{field}}}` at character {}: name a placeholder",
                        at + 1
                    ));
                }
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segments.push(Segment::Field(name.to_string()));
            }
            '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                chars.next();
                literal.push('}');
            }
            '}' => {
                return Err(format!(
                    "single `}}` at character {}: write `}}}}` for a brace",
                    at + 1
                ));
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal));
    }
    Ok(segments)
}

/// Walks a handlebars template, collecting the placeholders it reads and what it may not use.
#[derive(Default)]
struct Check {
    used: BTreeSet<String>,
    errors: Vec<String>,
}

impl Check {
    fn elements(&mut self, elements: &[TemplateElement]) {
        for element in elements {
            self.element(element);
        }
    }

    fn element(&mut self, element: &TemplateElement) {
        match element {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
            TemplateElement::Expression(helper) | TemplateElement::HtmlExpression(helper) => {
                self.helper(helper);
            }
            TemplateElement::HelperBlock(helper) => {
                self.helper(helper);
                if let Some(template) = &helper.template {
                    self.elements(&template.elements);
                }
                if let Some(inverse) = &helper.inverse {
                    self.elements(&inverse.elements);
                }
            }
            TemplateElement::DecoratorExpression(_)
            | TemplateElement::DecoratorBlock(_)
            | TemplateElement::PartialExpression(_)
            | TemplateElement::PartialBlock(_) => {
                self.error("partials and decorators are not supported".to_string());
            }
            _ => self.error("unsupported handlebars construct".to_string()),
        }
    }

    fn helper(&mut self, helper: &HelperTemplate) {
        let has_arguments = !helper.params.is_empty() || !helper.hash.is_empty();
        match &helper.name {
            Parameter::Name(name) if HELPERS.contains(&name.as_str()) => {}
            Parameter::Name(name) if !has_arguments && !helper.block => self.name(name),
            Parameter::Name(name) => self.error(format!(
                "unknown helper `{name}`; helpers here: {}",
                HELPERS.join(", ")
            )),
            other => self.parameter(other),
        }
        for parameter in helper.params.iter().chain(helper.hash.values()) {
            self.parameter(parameter);
        }
    }

    fn parameter(&mut self, parameter: &Parameter) {
        match parameter {
            Parameter::Name(name) => self.name(name),
            Parameter::Path(path) => self.path(path),
            Parameter::Subexpression(sub) => self.element(sub.as_element()),
            Parameter::Literal(_) => {}
            _ => self.error("unsupported handlebars parameter".to_string()),
        }
    }

    fn path(&mut self, path: &HbPath) {
        match path {
            // `@index`, `@first` and the like, inside `#each`.
            HbPath::Local(_) => {}
            HbPath::Relative((_, raw)) => {
                let head = raw
                    .trim_start_matches("./")
                    .split(['.', '/', '['])
                    .next()
                    .unwrap_or_default();
                if head != "this" && !head.is_empty() && !raw.starts_with("../") {
                    self.name(head);
                }
            }
        }
    }

    fn name(&mut self, name: &str) {
        self.used.insert(name.to_string());
    }

    fn error(&mut self, error: String) {
        if !self.errors.contains(&error) {
            self.errors.push(error);
        }
    }
}

#[cfg(test)]
mod tests;
