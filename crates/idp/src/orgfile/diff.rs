//! Field-level differences between two versions of a resource, for `apply --dry-run`.
//! Lists of named items are compared by name, so reordering or adding one item shows as
//! that item, not as every index after it.

use serde::Serialize;
use serde_json::{Map, Value};

/// `path: old -> new` lines for every leaf that differs.
pub(crate) fn fields<T: Serialize>(old: &T, new: &T) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(old), serde_json::to_value(new)) else {
        return vec!["(changed)".into()];
    };
    let mut out = Vec::new();
    walk("", &keyed(a), &keyed(b), &mut out);
    out
}

/// Turns arrays of objects that all have a `name` into objects keyed by that name.
fn keyed(v: Value) -> Value {
    match v {
        Value::Array(items)
            if !items.is_empty()
                && items
                    .iter()
                    .all(|i| i.get("name").and_then(Value::as_str).is_some()) =>
        {
            let mut m = Map::new();
            for i in items {
                let name = i
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                m.insert(name, keyed(i));
            }
            Value::Object(m)
        }
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, keyed(v))).collect()),
        other => other,
    }
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => walk(&p, va, vb, out),
                    (None, Some(vb)) => out.push(format!("+ {p}: {vb}")),
                    (Some(va), None) => out.push(format!("- {p}: {va}")),
                    (None, None) => {}
                }
            }
        }
        _ if a != b => out.push(format!("~ {path}: {a} -> {b}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diffs_named_lists_by_name() {
        let a = json!({"scopes": [{"name": "a", "default": false}, {"name": "b"}], "audiences": ["x"]});
        let b = json!({"scopes": [{"name": "b"}, {"name": "a", "default": true}], "audiences": ["y"]});
        let d = fields(&a, &b);
        assert_eq!(
            d,
            vec![
                r#"~ audiences: ["x"] -> ["y"]"#,
                "~ scopes.a.default: false -> true"
            ]
        );
    }
}
