//! The `control` file of a package: fields in Debian's order, the multi-line Description,
//! and the syntax of relationship fields such as Depends.

use std::fmt::Write as _;

use crate::names;
use crate::version::Version;

/// A control paragraph: field names and values, kept in the order they were set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Control {
    fields: Vec<(String, String)>,
}

impl Control {
    /// An empty paragraph.
    pub fn new() -> Self {
        Control::default()
    }

    /// Sets a field, replacing an earlier value of the same name; empty values are skipped.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
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
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(existing, _)| existing.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The fields in order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The paragraph as text: `Name: value` lines; continuation lines of multi-line values
    /// already start with a space (see [`description`]). Ends with a newline.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for (name, value) in &self.fields {
            let _ = writeln!(text, "{name}: {value}");
        }
        text
    }
}

/// Formats a Description value: the synopsis, then each extended line indented by one
/// space, with empty lines written as ` .` (Debian Policy 5.6.13).
pub fn description(synopsis: &str, extended: &str) -> String {
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
pub fn check_relation(text: &str) -> Result<(), String> {
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
pub fn join_relations<'a>(relations: impl IntoIterator<Item = &'a str>) -> String {
    let mut all: Vec<String> = relations
        .into_iter()
        .map(|relation| relation.trim().to_string())
        .collect();
    all.sort();
    all.dedup();
    all.join(", ")
}

#[cfg(test)]
mod tests {
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
}
