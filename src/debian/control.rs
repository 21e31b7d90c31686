//! The `control` file of a package: fields in Debian's order, the multi-line Description,
//! and the syntax of relationship fields such as Depends.

use std::fmt::Write as _;

use crate::debian::names;
use crate::debian::version::Version;

/// A control paragraph: field names and values, kept in the order they were set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Control {
    fields: Vec<(String, String)>,
}

impl Control {
    /// An empty paragraph.
    pub(crate) fn new() -> Self {
        Control::default()
    }

    /// Sets a field, replacing an earlier value of the same name; empty values are skipped.
    pub(crate) fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        if value.is_empty() {
            self.fields
                .retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
            return;
        }
        match self
            .fields
            .iter_mut()
            .find(|(existing, _)| existing.eq_ignore_ascii_case(name))
        {
            Some(field) => field.1 = value,
            None => self.fields.push((name.to_string(), value)),
        }
    }

    /// The value of a field, if set.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(existing, _)| existing.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The paragraph as text: `Name: value` lines; continuation lines of multi-line values
    /// already start with a space (see [`description`]). Ends with a newline.
    pub(crate) fn to_text(&self) -> String {
        let mut text = String::new();
        for (name, value) in &self.fields {
            let _ = writeln!(text, "{name}: {value}");
        }
        text
    }
}

/// Formats a Description value: the synopsis, then each extended line indented by one
/// space, with empty lines written as ` .` (Debian Policy 5.6.13).
pub(crate) fn description(synopsis: &str, extended: &str) -> String {
    let mut value = synopsis.trim().to_string();
    for line in extended.lines() {
        let line = line.trim_end();
        value.push('\n');
        if line.trim().is_empty() {
            value.push_str(" .");
        } else {
            value.push_str(&wrap(line, 79));
        }
    }
    // A trailing " ." carries no text and lintian flags it.
    while value.ends_with("\n .") {
        value.truncate(value.len() - 3);
    }
    value
}

/// One extended-description line, wrapped at word boundaries into lines of at most
/// `width` characters, each starting with a space (lines that keep their own leading
/// spaces are verbatim text and are left as they are).
fn wrap(line: &str, width: usize) -> String {
    if line.starts_with(' ') || line.len() < width {
        return format!(" {line}");
    }
    let mut out = String::new();
    let mut current = String::new();
    for word in line.split_whitespace() {
        if !current.is_empty() && current.len() + 1 + word.len() >= width {
            out.push_str(&format!(" {current}\n"));
            current.clear();
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    out.push_str(&format!(" {current}"));
    out
}

/// Checks one relationship entry of a Depends-like field: alternatives separated by `|`,
/// each `name[:arch] [(op version)]`.
pub(crate) fn check_relation(text: &str) -> Result<(), String> {
    for alternative in text.split('|') {
        let alternative = alternative.trim();
        let (name, constraint) = match alternative.split_once('(') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix(')')
                    .ok_or("a version constraint must end with ')'")?;
                (name.trim(), Some(inner.trim()))
            }
            None => (alternative, None),
        };
        let name = name.split_once(':').map_or(name, |(name, architecture)| {
            let _ = architecture;
            name
        });
        names::check_package_name(name).map_err(|message| format!("package {name:?} {message}"))?;
        if let Some(constraint) = constraint {
            let operator_end = constraint
                .find(|c: char| !"<>=".contains(c))
                .ok_or("a version constraint needs an operator and a version")?;
            let (operator, version) = constraint.split_at(operator_end);
            if !["<<", "<=", "=", ">=", ">>"].contains(&operator) {
                return Err(format!("operator {operator:?}: allowed are << <= = >= >>"));
            }
            Version::parse(version.trim())
                .map_err(|error| format!("version {:?}: {error}", version.trim()))?;
        }
    }
    Ok(())
}

/// Joins relationship entries into one field value: duplicates dropped, sorted by name.
pub(crate) fn join_relations<'a>(relations: impl IntoIterator<Item = &'a str>) -> String {
    let mut all: Vec<String> = relations
        .into_iter()
        .map(|relation| relation.trim().to_string())
        .collect();
    all.sort();
    all.dedup();
    all.join(", ")
}

/// Why a control paragraph is refused: each a rule of dpkg's parser (or, for control
/// characters, a rule of ours that keeps them out of signed indexes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ControlError {
    /// A line that is neither `Field: value` nor a continuation.
    #[error("line {line}: {text:?} is not \"Field: value\" nor a continuation line")]
    NotAField {
        /// The line number, from 1.
        line: usize,
        /// The line.
        text: String,
    },
    /// A continuation line before any field.
    #[error("line {line}: a continuation line before any field")]
    ContinuationFirst {
        /// The line number.
        line: usize,
    },
    /// A field name dpkg refuses.
    #[error("line {line}: field name {name:?} {reason}")]
    BadFieldName {
        /// The line number.
        line: usize,
        /// The name.
        name: String,
        /// The rule.
        reason: &'static str,
    },
    /// The same field twice (names compare without case).
    #[error("line {line}: duplicate field {name:?} (dpkg allows each field once)")]
    DuplicateField {
        /// The line number of the second one.
        line: usize,
        /// The name.
        name: String,
    },
    /// A continuation line of only spaces and tabs.
    #[error(
        "line {line}: blank line in the value of field {field:?} (write \" .\" for an empty line)"
    )]
    BlankContinuation {
        /// The line number.
        line: usize,
        /// The field it continues.
        field: String,
    },
    /// A control character other than tab and newline (CR, NUL, ...).
    #[error("line {line}: control character {character:?} (only tab and newline are allowed)")]
    ControlCharacter {
        /// The line number.
        line: usize,
        /// The character.
        character: char,
    },
    /// A second paragraph where one is allowed.
    #[error("line {line}: a second paragraph (a package's control file holds exactly one)")]
    SecondParagraph {
        /// The line number where it starts.
        line: usize,
    },
    /// No field at all.
    #[error("the control paragraph is empty")]
    Empty,
}

/// A control paragraph parsed with dpkg's rules, borrowing its text: each field's name and
/// raw value (the first line without its leading blanks, continuation lines included,
/// without the final newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Paragraph<'a> {
    fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Paragraph<'a> {
    /// Parses exactly one paragraph; blank lines before and after it are allowed.
    pub(crate) fn parse(text: &'a str) -> Result<Paragraph<'a>, ControlError> {
        let mut paragraphs = Paragraphs::new(text);
        let paragraph = paragraphs.next().unwrap_or(Err(ControlError::Empty))?;
        match paragraphs.next() {
            None => Ok(paragraph),
            Some(Err(error)) => Err(error),
            Some(Ok(_)) => Err(ControlError::SecondParagraph {
                line: paragraphs.paragraph_line,
            }),
        }
    }

    /// The raw value of a field (names compare without case).
    pub(crate) fn get(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }

    /// The fields in the order of the text.
    pub(crate) fn fields(&self) -> &[(&'a str, &'a str)] {
        &self.fields
    }

    /// The paragraph as a [`Control`], each value trimmed.
    pub(crate) fn to_control(&self) -> Control {
        let mut control = Control::new();
        for (name, value) in &self.fields {
            control.set(name, value.trim());
        }
        control
    }
}

/// The paragraphs of a text of several (a `Packages` file), each parsed with the rules of
/// [`Paragraph::parse`].
pub(crate) struct Paragraphs<'a> {
    text: &'a str,
    offset: usize,
    line: usize,
    paragraph_line: usize,
}

impl<'a> Paragraphs<'a> {
    /// The paragraphs of `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        Paragraphs {
            text,
            offset: 0,
            line: 0,
            paragraph_line: 0,
        }
    }
}

impl<'a> Iterator for Paragraphs<'a> {
    type Item = Result<Paragraph<'a>, ControlError>;

    fn next(&mut self) -> Option<Self::Item> {
        let text = self.text;
        let mut fields: Vec<(&'a str, &'a str)> = Vec::new();
        // The field being read: its name and where its value starts.
        let mut current: Option<(&'a str, usize)> = None;
        let mut end_of_last_line = self.offset;
        while self.offset < text.len() {
            let start = self.offset;
            let line = match text[start..].find('\n') {
                Some(length) => &text[start..start + length],
                None => &text[start..],
            };
            self.offset = (start + line.len() + 1).min(text.len());
            self.line += 1;
            let number = self.line;
            if let Some(character) = line.chars().find(|c| c.is_control() && *c != '\t') {
                return Some(Err(ControlError::ControlCharacter {
                    line: number,
                    character,
                }));
            }
            if line.is_empty() {
                if current.is_some() {
                    break;
                }
                continue;
            }
            if line.starts_with([' ', '\t']) {
                let Some((name, _)) = current else {
                    return Some(Err(ControlError::ContinuationFirst { line: number }));
                };
                if line.trim().is_empty() {
                    return Some(Err(ControlError::BlankContinuation {
                        line: number,
                        field: name.to_string(),
                    }));
                }
                end_of_last_line = start + line.len();
                continue;
            }
            if current.is_none() {
                self.paragraph_line = number;
            }
            if let Some((name, value_start)) = current.take() {
                fields.push((name, &text[value_start..end_of_last_line.max(value_start)]));
            }
            let Some((name, _)) = line.split_once(':') else {
                return Some(Err(ControlError::NotAField {
                    line: number,
                    text: line.to_string(),
                }));
            };
            if let Err(reason) = check_field_name(name) {
                return Some(Err(ControlError::BadFieldName {
                    line: number,
                    name: name.to_string(),
                    reason,
                }));
            }
            if fields
                .iter()
                .any(|(seen, _)| seen.eq_ignore_ascii_case(name))
            {
                return Some(Err(ControlError::DuplicateField {
                    line: number,
                    name: name.to_string(),
                }));
            }
            let after_colon = start + name.len() + 1;
            let blanks = text[after_colon..start + line.len()]
                .bytes()
                .take_while(|byte| *byte == b' ' || *byte == b'\t')
                .count();
            current = Some((name, after_colon + blanks));
            end_of_last_line = start + line.len();
        }
        let (name, value_start) = current?;
        fields.push((name, &text[value_start..end_of_last_line.max(value_start)]));
        Some(Ok(Paragraph { fields }))
    }
}

/// dpkg's rule for field names: printable ASCII without spaces or `:`, not starting with
/// `-`; `#` would start a comment line in the deb822 files apt reads.
fn check_field_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.starts_with('-') || name.starts_with('#') {
        return Err("must not start with '-' or '#'");
    }
    if !name.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err("may contain only printable ASCII characters other than space");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn description_has_the_policy_form() {
        let value = description("A shop", "First paragraph.\n\nSecond one.\n");
        assert_eq!(value, "A shop\n First paragraph.\n .\n Second one.");
        let mut control = Control::new();
        control.set("Package", "shop");
        control.set("Description", value);
        assert_eq!(
            control.to_text(),
            "Package: shop\nDescription: A shop\n First paragraph.\n .\n Second one.\n"
        );
    }

    #[test]
    fn relations() {
        for good in [
            "libc6 (>= 2.36)",
            "python3.11",
            "aa | bb (<< 2)",
            "libssl3:amd64",
        ] {
            assert!(check_relation(good).is_ok(), "{good}");
        }
        for bad in [
            "Libc6",
            "libc6 (>= )",
            "libc6 (=> 1)",
            "libc6 (>= 1",
            "a ||",
            "x; rm",
        ] {
            assert!(check_relation(bad).is_err(), "{bad}");
        }
        assert_eq!(join_relations(["b", "a (>= 1)", "b"]), "a (>= 1), b");
    }

    #[test]
    fn one_paragraph_with_dpkgs_rules() {
        let text = "\nPackage: a\nDescription: x\n more\n .\n end\nVersion:\t1.0  \n\n";
        let paragraph = Paragraph::parse(text).unwrap();
        assert_eq!(paragraph.get("package"), Some("a"));
        assert_eq!(paragraph.get("Description"), Some("x\n more\n .\n end"));
        assert_eq!(paragraph.get("Version"), Some("1.0  "));
        assert_eq!(paragraph.to_control().get("Version"), Some("1.0"));
        let refused = [
            ("Package: a\npackage: b\n", "duplicate field"),
            ("Package: a\n\nPackage: b\n", "a second paragraph"),
            (
                "Package: a\nDescription: x\n  \n y\n",
                "blank line in the value",
            ),
            ("Package: a\r\n", "control character"),
            ("Package: a\0\n", "control character"),
            (" x\nPackage: a\n", "continuation line before"),
            ("-Bad: a\n", "must not start"),
            ("Package a\n", "is not \"Field: value\""),
            ("\n\n", "empty"),
        ];
        for (text, expected) in refused {
            let error = Paragraph::parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let many: Vec<_> = Paragraphs::new("A: 1\n\nA: 2\nB: 3\n").collect();
        assert_eq!(many.len(), 2);
        assert_eq!(many[1].as_ref().unwrap().get("B"), Some("3"));
    }
}
