//! The JSON contract (docs/json.md): every JSON document a test sees is checked against
//! its schema in `docs/schemas/`, so a field the code adds, drops or retypes without the
//! documentation fails a test.

use std::process::Output;

use serde_json::Value;

/// Asserts that `document` follows `docs/schemas/<name>.schema.json`.
pub fn assert_valid(name: &str, document: &Value) {
    let path = super::project_root()
        .join("docs/schemas")
        .join(format!("{name}.schema.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let schema: Value = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{}: not JSON: {error}", path.display()));
    let validator = jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|error| panic!("{}: not a valid schema: {error}", path.display()));
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|error| format!("  at {}: {error}", error.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the output does not follow {}:\n{}\n{document:#}",
        path.display(),
        errors.join("\n")
    );
}

/// The schema that the stdout of `debstage ARGUMENTS` follows with `--format json`
/// (`build`, `repo-list`, ...), or `None` when they give no JSON format or no command
/// with JSON output.
pub fn schema_of(arguments: &[&str]) -> Option<String> {
    let json = arguments
        .windows(2)
        .any(|pair| pair == ["--format", "json"])
        || arguments.contains(&"--format=json");
    if !json {
        return None;
    }
    // The words that are not options or their values: `repo list`, `build`, ...
    let mut words = Vec::new();
    let mut skip_value = false;
    for argument in arguments {
        if skip_value {
            skip_value = false;
        } else if [
            "--format",
            "--repo",
            "--lock-timeout",
            "--manifest",
            "--target",
        ]
        .contains(argument)
        {
            skip_value = true;
        } else if !argument.starts_with('-') {
            words.push(*argument);
        }
    }
    match words.as_slice() {
        ["build", ..] if arguments.windows(2).any(|pair| pair == ["--target", "all"]) => {
            Some("build-targets".to_string())
        }
        ["build", ..] => Some("build".to_string()),
        // `repo publish --target NAME` and `repo verify --target NAME` print their own.
        ["repo", verb, ..] if arguments.contains(&"--target") => {
            Some(format!("repo-{verb}-target"))
        }
        // `repo key export` prints keys; `list`, `add`, `retire`, `extend` the key set.
        ["repo", "key", "export", ..] => Some("repo-key-export".to_string()),
        ["repo", verb, ..] => Some(format!("repo-{verb}")),
        _ => None,
    }
}

/// Checks what `debstage ARGUMENTS` printed in JSON mode: stdout against the command's
/// schema, and on failure stderr against the error object's. Nothing for text mode.
pub fn check_output(arguments: &[&str], output: &Output) {
    let Some(name) = schema_of(arguments) else {
        return;
    };
    if arguments.contains(&"--binary") {
        // `repo export-key --binary` prints the keyring whatever the format.
        return;
    }
    if !output.stdout.is_empty() {
        let document: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "debstage {arguments:?}: stdout is not one JSON document: {error}\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
        assert_valid(&name, &document);
    } else if output.status.success() {
        panic!("debstage {arguments:?}: printed nothing with --format json");
    }
    if !output.status.success() {
        let error: Value = serde_json::from_slice(&output.stderr).unwrap_or_else(|error| {
            panic!(
                "debstage {arguments:?}: stderr is not one JSON object: {error}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        assert_valid("error", &error);
    }
}

#[test]
fn the_schema_of_a_command_line_is_found_past_its_options() {
    assert_eq!(
        schema_of(&[
            "--format",
            "json",
            "repo",
            "--repo",
            "r",
            "list",
            "production"
        ]),
        Some("repo-list".to_string())
    );
    assert_eq!(
        schema_of(&["--quiet", "--format", "json", "build", "--manifest", "m"]),
        Some("build".to_string())
    );
    assert_eq!(schema_of(&["repo", "show", "hello"]), None);
}
