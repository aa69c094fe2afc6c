//! CRD descriptions as flowing paragraphs. schemars keeps a doc comment's line breaks, which are
//! only where the source wrapped at 100 columns; `kubectl explain` and other readers wrap text
//! themselves, so a kept break shows as a break mid-sentence. Blank lines stay paragraph breaks
//! and markdown list items stay on their own lines.

use schemars::Schema;
use schemars::transform::transform_subschemas;
use serde_json::Value;

/// The schemars transform for a CRD's root types (`#[schemars(transform = flowing_descriptions)]`):
/// flows the description of the schema and of every schema inside it.
pub(crate) fn flowing_descriptions(schema: &mut Schema) {
    if let Some(Value::String(description)) = schema.get_mut("description") {
        *description = flowing(description);
    }
    transform_subschemas(&mut flowing_descriptions, schema);
}

/// `text` with the lines of each paragraph joined by single spaces.
fn flowing(text: &str) -> String {
    let mut flowed = String::with_capacity(text.len());
    for line in text.lines().map(str::trim) {
        let separator = if flowed.is_empty() {
            ""
        } else if line.is_empty() || flowed.ends_with('\n') || starts_list_item(line) {
            "\n"
        } else {
            " "
        };
        flowed.push_str(separator);
        flowed.push_str(line);
    }
    flowed
}

/// `- item`, `* item`, `+ item`, `1. item` or `1) item`.
fn starts_list_item(line: &str) -> bool {
    let after_number = line.trim_start_matches(|c: char| c.is_ascii_digit());
    let marker = if after_number.len() < line.len() {
        after_number.strip_prefix(['.', ')'])
    } else {
        line.strip_prefix(['-', '*', '+'])
    };
    marker.is_some_and(|rest| rest.starts_with(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_lines_join_into_one_paragraph() {
        assert_eq!(
            flowing("How long the credentials stay valid, as a duration such as 1h, 30m\nor 1.5h."),
            "How long the credentials stay valid, as a duration such as 1h, 30m or 1.5h."
        );
    }

    #[test]
    fn blank_lines_and_list_items_keep_their_breaks() {
        assert_eq!(
            flowing("Kinds:\n- Deployment, restarted\n  in place\n- StatefulSet\n\nThen\nmore."),
            "Kinds:\n- Deployment, restarted in place\n- StatefulSet\n\nThen more."
        );
        assert_eq!(flowing("Steps:\n1. one\n2) two"), "Steps:\n1. one\n2) two");
        assert_eq!(flowing("a\n-1 is not a list"), "a -1 is not a list");
    }

    #[test]
    fn no_crd_description_breaks_a_line_mid_sentence() {
        let crds = serde_json::to_value(crate::api::crds()).unwrap();
        let mut descriptions = Vec::new();
        collect_descriptions(&crds, &mut descriptions);
        assert!(
            descriptions.len() > 50,
            "{} descriptions",
            descriptions.len()
        );
        for description in descriptions {
            let lines: Vec<&str> = description.split('\n').collect();
            for pair in lines.windows(2) {
                let [before, after] = pair else {
                    unreachable!()
                };
                assert!(
                    before.is_empty() || after.is_empty() || starts_list_item(after),
                    "a line break mid-sentence in {description:?}"
                );
            }
        }
    }

    fn collect_descriptions<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(fields) => {
                for (key, field) in fields {
                    match (key.as_str(), field) {
                        ("description", Value::String(description)) => out.push(description),
                        _ => collect_descriptions(field, out),
                    }
                }
            }
            Value::Array(items) => items
                .iter()
                .for_each(|item| collect_descriptions(item, out)),
            _ => {}
        }
    }
}
