//! The chart's documentation from one source: each key's `# --` comment in `values.yaml` becomes
//! its `description` in `values.schema.json` and its row in the chart's `README.md` (what
//! `helm show readme` prints). `make chart-docs` writes both; a test fails when either is stale, or
//! when a key of the schema has no comment.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use yaml_serde::{Mapping, Value};

/// The generated files' contents.
pub struct ChartDocs {
    pub schema: String,
    pub readme: String,
}

/// One documented key, as the README's table shows it.
struct Row {
    key: String,
    kind: &'static str,
    default: String,
    description: String,
}

/// Generates both files from the chart in `chart_dir`, or names every schema key that lacks a
/// `# --` comment in values.yaml.
pub fn generate(chart_dir: &Path) -> Result<ChartDocs, String> {
    let read = |name: &str| {
        std::fs::read_to_string(chart_dir.join(name)).map_err(|e| format!("{name}: {e}"))
    };
    let values_text = read("values.yaml")?;
    let comments = described_keys(&values_text);
    let values: Value =
        yaml_serde::from_str(&values_text).map_err(|e| format!("values.yaml: {e}"))?;
    // JSON is YAML: parsed this way the schema keeps its key order.
    let mut schema: Value =
        yaml_serde::from_str(&read("values.schema.json")?).map_err(|e| format!("schema: {e}"))?;
    let chart: Value =
        yaml_serde::from_str(&read("Chart.yaml")?).map_err(|e| format!("Chart.yaml: {e}"))?;

    let mut rows = Vec::new();
    let mut undocumented = Vec::new();
    let properties = schema
        .get_mut("properties")
        .and_then(Value::as_mapping_mut)
        .ok_or("the schema has no properties")?;
    describe(
        properties,
        "",
        true,
        &comments,
        &values,
        &mut rows,
        &mut undocumented,
    );
    if !undocumented.is_empty() {
        return Err(format!(
            "values.yaml has no `# --` comment for: {}",
            undocumented.join(", ")
        ));
    }
    let schema = serde_json::to_string_pretty(&schema).map_err(|e| e.to_string())? + "\n";
    Ok(ChartDocs {
        schema,
        readme: readme(&chart, &rows),
    })
}

/// Each key's `# --` comment (its continuation lines joined), by dotted path. A comment belongs
/// to the key right below it at its own indentation; the lines of a block scalar (`key: |`) are
/// text, not keys.
fn described_keys(values: &str) -> BTreeMap<String, String> {
    let mut described = BTreeMap::new();
    let mut parents: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    let mut block_scalar_above: Option<usize> = None;
    for line in values.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if let Some(key_indent) = block_scalar_above {
            if trimmed.is_empty() || indent > key_indent {
                continue;
            }
            block_scalar_above = None;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            let comment = comment.strip_prefix(' ').unwrap_or(comment);
            match (comment.strip_prefix("-- "), pending.as_mut()) {
                (Some(first), _) => pending = Some((indent, first.trim().to_owned())),
                (None, Some((_, text))) => {
                    text.push(' ');
                    text.push_str(comment.trim());
                }
                (None, None) => {}
            }
            continue;
        }
        let Some(key) = key_of(trimmed) else {
            pending = None;
            continue;
        };
        while parents.last().is_some_and(|(depth, _)| *depth >= indent) {
            parents.pop();
        }
        let path = parents
            .iter()
            .map(|(_, parent)| parent.as_str())
            .chain([key])
            .collect::<Vec<_>>()
            .join(".");
        if let Some((comment_indent, text)) = pending.take()
            && comment_indent == indent
        {
            described.insert(path, text);
        }
        if trimmed.ends_with('|') || trimmed.ends_with('>') || trimmed.ends_with("|-") {
            block_scalar_above = Some(indent);
        }
        parents.push((indent, key.to_owned()));
    }
    described
}

/// The key a `key: value` line sets (list items and everything else: none).
fn key_of(line: &str) -> Option<&str> {
    let (key, _) = line.split_once(':')?;
    let simple = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    simple.then_some(key)
}

/// Writes each property's description from its comment and collects its row. A property with
/// sub-properties is a section: its own comment is optional, and without one each of its
/// sub-properties needs one (below a documented property, none does).
fn describe(
    properties: &mut Mapping,
    prefix: &str,
    required: bool,
    comments: &BTreeMap<String, String>,
    values: &Value,
    rows: &mut Vec<Row>,
    undocumented: &mut Vec<String>,
) {
    for (key, property) in properties.iter_mut() {
        let Some(key) = key.as_str() else { continue };
        let path = format!("{prefix}{key}");
        let default = values.get(key);
        let comment = comments.get(&path);
        if let (Some(text), Some(property)) = (comment, property.as_mapping_mut()) {
            property.insert("description".into(), text.clone().into());
            rows.push(Row {
                key: path.clone(),
                kind: kind_of(default),
                default: default.map_or_else(String::new, compact_json),
                description: text.clone(),
            });
        }
        match property
            .get_mut("properties")
            .and_then(Value::as_mapping_mut)
        {
            Some(children) => describe(
                children,
                &format!("{path}."),
                required && comment.is_none(),
                comments,
                default.unwrap_or(&Value::Null),
                rows,
                undocumented,
            ),
            None if comment.is_none() && required => undocumented.push(path),
            None => {}
        }
    }
}

fn kind_of(value: Option<&Value>) -> &'static str {
    match value {
        Some(Value::Bool(_)) => "bool",
        Some(Value::Number(n)) if n.is_f64() => "float",
        Some(Value::Number(_)) => "int",
        Some(Value::String(_)) => "string",
        Some(Value::Sequence(_)) => "list",
        Some(Value::Mapping(_)) => "object",
        _ => "",
    }
}

/// A comment as table-cell text: pipes escaped, and angle brackets shown rather than read as HTML.
fn markdown_text(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn compact_json(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn readme(chart: &Value, rows: &[Row]) -> String {
    let field = |name: &str| chart.get(name).and_then(Value::as_str).unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", field("name"));
    let _ = writeln!(out, "{}\n", field("description"));
    let _ = writeln!(
        out,
        "Chart version {}, operator version {}, Kubernetes {}. The project's README ({}) covers \
         installing, upgrading, the Azure setup, usage and troubleshooting.\n",
        field("version"),
        field("appVersion"),
        field("kubeVersion"),
        field("home"),
    );
    let _ = writeln!(
        out,
        "```sh\n\
         git checkout v{}    # the chart, crds/ and image of one release\n\
         helm upgrade --install entra-operator charts/entra-operator \\\n  \
         --namespace entra-operator --create-namespace\n\
         ```\n",
        field("appVersion"),
    );
    out.push_str(
        "## Values\n\n\
         Generated by `make chart-docs` from the comments in `values.yaml`; edit those, not this \
         table. `values.schema.json` refuses unknown keys and values of the wrong shape.\n\n\
         | Key | Type | Default | Description |\n|---|---|---|---|\n",
    );
    for row in rows {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            row.key,
            row.kind,
            if row.default.is_empty() {
                String::new()
            } else {
                format!("`{}`", row.default.replace('|', "\\|"))
            },
            markdown_text(&row.description),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::described_keys;

    #[test]
    fn a_comment_belongs_to_the_key_below_it_at_its_indentation() {
        let described = described_keys(
            "a:\n  # -- the child\n  # continued\n  child: 1\n  # -- dangling\nb: 2\n\
             # -- the script\nscript: |\n  key: not a key\n  # -- not a comment\nc: 3\n",
        );
        assert_eq!(described["a.child"], "the child continued");
        assert!(!described.contains_key("b"), "{described:?}");
        assert_eq!(described["script"], "the script");
        assert!(!described.contains_key("script.key"));
        assert!(!described.contains_key("c"), "{described:?}");
    }
}
