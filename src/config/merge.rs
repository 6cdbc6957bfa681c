//! Pure JSON deep merge of a node config template with per-node overrides, the check that an
//! override keeps the template's JSON types, and the default-peers (fallback) variant of a node
//! config. No I/O: values in, values out; inputs are never mutated.
//!
//! Merge rules ([`merge`]):
//!
//! - **Objects merge recursively**, key by key. Keys keep the template's order, keys only in the
//!   override follow in the override's order (with `serde_json`'s `preserve_order`; without it,
//!   keys are sorted).
//! - **Scalars and `null` in the override overwrite** the template's value. `null` stays in the
//!   node config as `null`; it does not delete the key.
//! - **Lists replace** the template's list whole. jmanager merged lists index by index, which kept
//!   the template's surplus elements and never overwrote scalar elements; we do not copy that.
//! - **A key missing from the template is added** (jmanager raised `KeyError`).
//! - A value of another type in the override replaces the template's value; [`type_conflicts`]
//!   reports such changes so that configuration loading can refuse them.
//!
//! The result owns its data: it shares nothing with the inputs.

use serde_json::{Map, Value};

/// The JSON kind of a value, as named in [`TypeConflict`]: `object`, `array`, `string`, `number`
/// (integer or float), `boolean` or `null`.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    }
}

/// The node config: `template` deep-merged with the node's `overrides` (rules in the module doc).
pub fn merge(template: &Value, overrides: &Value) -> Value {
    match (template, overrides) {
        (Value::Object(template_map), Value::Object(override_map)) => {
            let mut merged: Map<String, Value> = template_map.clone();
            for (key, override_value) in override_map {
                let value = match template_map.get(key) {
                    Some(template_value) => merge(template_value, override_value),
                    None => override_value.clone(),
                };
                // Inserting an existing key keeps its position (template order).
                merged.insert(key.clone(), value);
            }
            Value::Object(merged)
        }
        // Scalars, null and lists in the override replace; so does any change of type.
        (_, override_value) => override_value.clone(),
    }
}

/// An override that changes a key's JSON type relative to the template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeConflict {
    /// Where: keys joined with `.`, list indices as `[i]`, e.g. `p2p.trusted_peers` or
    /// `log[0].level`; the empty string is the root.
    pub path: String,
    /// The template's kind there (see [`kind`]).
    pub template_kind: &'static str,
    /// The override's kind there.
    pub override_kind: &'static str,
}

/// Every place where `overrides` changes the JSON type of a value of `template`, in document
/// order.
///
/// Allowed, so not reported: `null` in the override (an explicit overwrite), anything over a
/// template `null` (an unset value), integer vs float (both `number`), and keys the template
/// lacks. Lists are compared element by element: override element `i` against template element
/// `i`, and elements past the template's end against the template's first element when all the
/// template's elements are of one kind (its elements then describe the list's element type).
pub fn type_conflicts(template: &Value, overrides: &Value) -> Vec<TypeConflict> {
    let mut conflicts = Vec::new();
    collect_conflicts(template, overrides, &mut String::new(), &mut conflicts);
    conflicts
}

fn collect_conflicts(
    template: &Value,
    overrides: &Value,
    path: &mut String,
    conflicts: &mut Vec<TypeConflict>,
) {
    match (template, overrides) {
        (_, Value::Null) | (Value::Null, _) => {}
        (Value::Object(template_map), Value::Object(override_map)) => {
            for (key, override_value) in override_map {
                if let Some(template_value) = template_map.get(key) {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    collect_conflicts(template_value, override_value, path, conflicts);
                    path.truncate(len);
                }
            }
        }
        (Value::Array(template_items), Value::Array(override_items)) => {
            let homogeneous = template_items
                .windows(2)
                .all(|pair| kind(&pair[0]) == kind(&pair[1]));
            for (index, override_item) in override_items.iter().enumerate() {
                let template_item = match template_items.get(index) {
                    Some(item) => item,
                    None if homogeneous => match template_items.first() {
                        Some(first) => first,
                        None => break,
                    },
                    None => break,
                };
                let len = path.len();
                path.push_str(&format!("[{index}]"));
                collect_conflicts(template_item, override_item, path, conflicts);
                path.truncate(len);
            }
        }
        (template_value, override_value) => {
            if kind(template_value) != kind(override_value) {
                conflicts.push(TypeConflict {
                    path: path.clone(),
                    template_kind: kind(template_value),
                    override_kind: kind(override_value),
                });
            }
        }
    }
}

/// The node's default (fallback) variant: a copy of the merged `config` whose
/// `p2p.trusted_peers` is `peers`.
///
/// `p2p` is created when missing (or replaced by an object when it is not one; a config that is
/// not an object becomes `{"p2p": {"trusted_peers": peers}}`). Always derive it from the pristine
/// merged config: `config` is not modified, so switching back to the normal config restores it
/// exactly. (jmanager mutated its template in place, so after a fallback switch its "normal"
/// config kept the default peers.)
pub fn with_trusted_peers(config: &Value, peers: &[Value]) -> Value {
    let mut fallback = match config {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let mut p2p = match fallback.get("p2p") {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    p2p.insert("trusted_peers".to_string(), Value::Array(peers.to_vec()));
    fallback.insert("p2p".to_string(), Value::Object(p2p));
    Value::Object(fallback)
}

/// The value at `dotted` in `value`: keys separated by `.`, each optionally followed by list
/// indices `[i]` (e.g. `rest.listen`, `log[0].level`, `p2p.trusted_peers[1].address`). The
/// empty path is `value` itself. `None` when any step is missing, of the wrong kind, or
/// malformed.
pub fn get_path<'a>(value: &'a Value, dotted: &str) -> Option<&'a Value> {
    if dotted.is_empty() {
        return Some(value);
    }
    let mut current = value;
    for segment in dotted.split('.') {
        let (key, mut indices) = match segment.find('[') {
            Some(at) => segment.split_at(at),
            None => (segment, ""),
        };
        if key.is_empty() {
            return None;
        }
        current = current.as_object()?.get(key)?;
        while !indices.is_empty() {
            let rest = indices.strip_prefix('[')?;
            let close = rest.find(']')?;
            let index: usize = rest[..close].parse().ok()?;
            current = current.as_array()?.get(index)?;
            indices = &rest[close + 1..];
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests;
