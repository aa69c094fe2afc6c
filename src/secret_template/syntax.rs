//! The template language: literal text and `{{ … }}` substitutions, a subset of Jinja's syntax.
//! A substitution joins variables and quoted strings with `~`, each optionally passed through
//! filters (`{{ (username ~ ":" ~ password) | b64encode }}`); `{# … #}` is a comment, and `{{-` /
//! `-}}` trim the whitespace beside them. There are no statements (`{% … %}`): no loops, no
//! conditions, no includes. So a template runs once from start to end, and the longest text it
//! can produce follows from its parts alone ([`Template::longest_output`]).

use super::filters::Filter;
use super::variables::Variable;

/// A parsed template.
#[derive(Debug, PartialEq)]
pub struct Template(pub(super) Vec<Part>);

#[derive(Debug, PartialEq)]
pub(super) enum Part {
    Text(String),
    Substitution(Expression),
}

#[derive(Debug, PartialEq)]
pub(super) enum Expression {
    Variable(Variable),
    Literal(String),
    /// `a ~ b ~ c`
    Join(Vec<Expression>),
    Filtered(Box<Expression>, Filter),
}

/// Why a template does not parse, with the line it is on; it quotes the template's own text at
/// most, never a value.
#[derive(Debug, PartialEq)]
pub struct SyntaxError {
    pub line: usize,
    pub problem: String,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, SyntaxError> {
        Parser {
            source,
            at: 0,
            depth: 0,
        }
        .template()
    }

    /// The most bytes this template can render, with every variable at its longest.
    pub fn longest_output(&self) -> usize {
        self.0
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.len(),
                Part::Substitution(expression) => expression.longest(),
            })
            .fold(0, usize::saturating_add)
    }
}

impl Expression {
    pub(super) fn longest(&self) -> usize {
        match self {
            Expression::Variable(variable) => variable.longest(),
            Expression::Literal(text) => text.len(),
            Expression::Join(parts) => parts
                .iter()
                .map(Expression::longest)
                .fold(0, usize::saturating_add),
            Expression::Filtered(inner, filter) => filter.longest(inner.longest()),
        }
    }
}

enum Opener {
    Substitution,
    Comment,
    Statement,
}

impl Opener {
    fn at(text: &str) -> Opener {
        if text.starts_with("{{") {
            Opener::Substitution
        } else if text.starts_with("{#") {
            Opener::Comment
        } else {
            Opener::Statement
        }
    }
}

/// Parentheses deeper than this are refused: parsing and rendering recurse once per level.
const DEEPEST_NESTING: usize = 8;
/// Filters one value may pass through.
const MOST_FILTERS: usize = 8;

struct Parser<'a> {
    source: &'a str,
    at: usize,
    /// Open parentheses around the current position.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.source[self.at..]
    }

    fn error(&self, problem: impl Into<String>) -> SyntaxError {
        SyntaxError {
            line: self.source[..self.at].matches('\n').count() + 1,
            problem: problem.into(),
        }
    }

    fn template(mut self) -> Result<Template, SyntaxError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut trim_next_text = false;
        loop {
            // One pass over the text: the next `{` that opens something.
            let next = self
                .rest()
                .match_indices('{')
                .map(|(offset, _)| offset)
                .find(|&offset| {
                    matches!(
                        self.rest().as_bytes().get(offset + 1),
                        Some(b'{' | b'#' | b'%')
                    )
                });
            let literal = &self.rest()[..next.unwrap_or(self.rest().len())];
            text.push_str(if trim_next_text {
                literal.trim_start()
            } else {
                literal
            });
            let Some(offset) = next else { break };
            self.at += offset;
            let opener = Opener::at(self.rest());
            self.at += 2;
            if self.rest().starts_with('-') {
                self.at += 1;
                text.truncate(text.trim_end().len());
            }
            trim_next_text = match opener {
                Opener::Substitution => {
                    let expression = self.join()?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Substitution(expression));
                    self.close("}}")?
                }
                Opener::Comment => {
                    let end = self
                        .rest()
                        .find("#}")
                        .ok_or_else(|| self.error("a comment is not closed with #}"))?;
                    let trims = self.rest()[..end].ends_with('-');
                    self.at += end + 2;
                    trims
                }
                Opener::Statement => {
                    return Err(self.error(
                        "statements ({% ... %}) are not supported: a template is text and \
                         {{ ... }} substitutions",
                    ));
                }
            };
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template(parts))
    }

    fn skip_spaces(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    /// Consumes `-}}` or `}}`; says whether the text after it is trimmed.
    fn close(&mut self, closer: &str) -> Result<bool, SyntaxError> {
        self.skip_spaces();
        let trims = self.rest().starts_with('-');
        let after_dash = if trims { 1 } else { 0 };
        if self.rest()[after_dash..].starts_with(closer) {
            self.at += after_dash + closer.len();
            Ok(trims)
        } else {
            Err(self.error(format!("expected {closer}")))
        }
    }

    /// `filtered ('~' filtered)*`
    fn join(&mut self) -> Result<Expression, SyntaxError> {
        let mut parts = vec![self.filtered()?];
        loop {
            self.skip_spaces();
            if !self.rest().starts_with('~') {
                break;
            }
            self.at += 1;
            parts.push(self.filtered()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expression::Join(parts)
        })
    }

    /// `primary ('|' filter)*`
    fn filtered(&mut self) -> Result<Expression, SyntaxError> {
        let mut expression = self.primary()?;
        for filters in 0.. {
            self.skip_spaces();
            if !self.rest().starts_with('|') {
                break;
            }
            if filters == MOST_FILTERS {
                return Err(self.error(format!("more than {MOST_FILTERS} filters on one value")));
            }
            self.at += 1;
            self.skip_spaces();
            let name = self.name();
            let filter = Filter::named(&name).ok_or_else(|| {
                self.error(format!(
                    "unknown filter {name:?} (known: {})",
                    Filter::NAMES.join(", ")
                ))
            })?;
            expression = Expression::Filtered(Box::new(expression), filter);
        }
        Ok(expression)
    }

    /// A variable, a quoted string, or a parenthesised join.
    fn primary(&mut self) -> Result<Expression, SyntaxError> {
        self.skip_spaces();
        match self.rest().chars().next() {
            Some('(') => {
                if self.depth == DEEPEST_NESTING {
                    return Err(self.error(format!(
                        "parentheses nested more than {DEEPEST_NESTING} deep"
                    )));
                }
                self.at += 1;
                self.depth += 1;
                let inner = self.join()?;
                self.depth -= 1;
                self.skip_spaces();
                if !self.rest().starts_with(')') {
                    return Err(self.error("expected )"));
                }
                self.at += 1;
                Ok(inner)
            }
            Some(quote @ ('"' | '\'')) => self.literal(quote),
            _ => {
                let name = self.name();
                if name.is_empty() {
                    return Err(
                        self.error("expected a variable, a quoted string or ( in a substitution")
                    );
                }
                Variable::named(&name)
                    .map(Expression::Variable)
                    .ok_or_else(|| {
                        self.error(format!(
                            "an unknown variable (known: {})",
                            Variable::NAMES.join(", ")
                        ))
                    })
            }
        }
    }

    fn name(&mut self) -> String {
        let rest = self.rest();
        let length = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        self.at += length;
        self.source[self.at - length..self.at].to_owned()
    }

    /// A quoted string: `\\`, `\n`, `\t` and the quote itself may be escaped.
    fn literal(&mut self, quote: char) -> Result<Expression, SyntaxError> {
        self.at += 1;
        let mut value = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, escaped @ ('\\' | '"' | '\''))) => value.push(escaped),
                    _ => return Err(self.error("an unknown escape in a string")),
                },
                c if c == quote => {
                    self.at += offset + 1;
                    return Ok(Expression::Literal(value));
                }
                c => value.push(c),
            }
        }
        Err(self.error("a string is not closed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_substitutions_parse_in_order() {
        let template = Template::parse("a {{ username }} b {{password|upper}}").unwrap();
        assert_eq!(
            template,
            Template(vec![
                Part::Text("a ".into()),
                Part::Substitution(Expression::Variable(Variable::Username)),
                Part::Text(" b ".into()),
                Part::Substitution(Expression::Filtered(
                    Box::new(Expression::Variable(Variable::Password)),
                    Filter::Upper
                )),
            ])
        );
    }

    #[test]
    fn filters_bind_tighter_than_joins_and_parentheses_group() {
        let Template(parts) =
            Template::parse(r#"{{ (username ~ ":" ~ password) | b64encode ~ 'x' }}"#).unwrap();
        let [Part::Substitution(Expression::Join(joined))] = parts.as_slice() else {
            panic!("{parts:?}");
        };
        assert!(matches!(
            &joined[0],
            Expression::Filtered(inner, Filter::B64Encode) if matches!(**inner, Expression::Join(_))
        ));
        assert_eq!(joined[1], Expression::Literal("x".into()));
    }

    #[test]
    fn comments_vanish_and_dashes_trim_whitespace() {
        let Template(parts) = Template::parse("a  {#- note -#}  b\n  {{- userId -}}  \nc").unwrap();
        assert_eq!(
            parts,
            vec![
                Part::Text("ab".into()),
                Part::Substitution(Expression::Variable(Variable::UserId)),
                Part::Text("c".into()),
            ]
        );
    }

    #[test]
    fn what_the_language_lacks_is_refused_with_the_line() {
        for (source, line, problem) in [
            ("a\n{% for i in range(9) %}x{% endfor %}", 2, "statements"),
            ("{{ username * 1000 }}", 1, "expected }}"),
            ("{{ expiresAt }}", 1, "unknown variable"),
            ("{{ password | indent(100000000) }}", 1, "unknown filter"),
            ("{{ password | replace }}", 1, "unknown filter"),
            ("{{ [1, 2, 3] }}", 1, "expected a variable"),
            ("{{ range(100000) }}", 1, "unknown variable"),
            ("\n\n{{ 'open }}", 3, "not closed"),
            ("{{ username ", 1, "expected }}"),
            ("{# never closed", 1, "comment"),
            (
                &format!("{{{{ {}username{} }}}}", "(".repeat(9), ")".repeat(9)),
                1,
                "nested",
            ),
            (
                &format!("{{{{ password{} }}}}", " | trim".repeat(9)),
                1,
                "filters",
            ),
        ] {
            let error = Template::parse(source).expect_err(source);
            assert_eq!(error.line, line, "{source}: {error:?}");
            assert!(error.problem.contains(problem), "{source}: {error:?}");
        }
    }

    #[test]
    fn the_longest_output_adds_text_and_each_variable_at_its_longest() {
        let template = Template::parse("ab{{ userId }}{{ 'xyz' }}").unwrap();
        assert_eq!(
            template.longest_output(),
            2 + Variable::UserId.longest() + 3
        );
    }
}
