//! What a failed pip install says, read from its output: the reason first (pip's first
//! error, the step that failed and the error lines of that step's own output), and the
//! build tool a C extension found missing, named as the Debian package that brings it.

/// How many lines of reason an error shows at most.
const MOST: usize = 15;

/// How many lines of a failed build step's own output are shown when none of them says
/// `error`.
const LAST_OF_STEP: usize = 5;

/// The lines of a failed pip install's output that say why, in order: from pip's first
/// error on, its `×` lines, the error lines of the failed step's output (`[N lines of
/// output]` ... `[end of output]`), and its `ERROR:` lines; without its progress, hints
/// and the frame drawn around a step's output.
pub(crate) fn reasons(lines: &[String]) -> Vec<String> {
    let Some(first) = lines.iter().position(|line| is_error(line.trim())) else {
        return Vec::new();
    };
    let mut reasons: Vec<String> = Vec::new();
    let mut step: Option<Vec<String>> = None;
    let push = |reasons: &mut Vec<String>, line: &str| {
        if !reasons.iter().any(|known| known == line) {
            reasons.push(line.to_string());
        }
    };
    for line in &lines[first..] {
        let text = line.trim();
        if let Some(output) = step.as_mut() {
            if text == "[end of output]" {
                let output = std::mem::take(output);
                step = None;
                let errors: Vec<&String> = output.iter().filter(|line| says_error(line)).collect();
                if errors.is_empty() {
                    let start = output.len().saturating_sub(LAST_OF_STEP);
                    for line in &output[start..] {
                        push(&mut reasons, line);
                    }
                } else {
                    for line in errors {
                        push(&mut reasons, line);
                    }
                }
            } else if !text.is_empty() {
                output.push(text.to_string());
            }
            continue;
        }
        if text.starts_with("╰─>") {
            step = Some(Vec::new());
        } else if text.starts_with('×')
            || text.starts_with("ERROR:")
            || (text.starts_with("error:") && !is_error_code(text))
        {
            push(&mut reasons, text);
        }
    }
    if reasons.is_empty() {
        reasons.push(lines[first].trim().to_string());
    }
    reasons.truncate(MOST);
    reasons
}

/// A line that starts one of pip's errors.
fn is_error(text: &str) -> bool {
    text.starts_with("error:") || text.starts_with("ERROR:")
}

/// pip's error codes (`error: subprocess-exited-with-error`): the lines after them say more.
fn is_error_code(text: &str) -> bool {
    text.strip_prefix("error: ").is_some_and(|code| {
        !code.is_empty()
            && code
                .chars()
                .all(|character| character.is_ascii_lowercase() || character == '-')
    })
}

/// A line of a build step's output that reports an error (a compiler's, setuptools', an
/// exception's last line); not a compiler's command line with `-Werror=...` in it.
fn says_error(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    lower.contains("error:") || lower.contains("no such file or directory")
}

/// The Debian package of a build tool that the failed install did not find: a C or C++
/// compiler (`gcc`, `g++`), Python's headers (`python3-dev`), or `make`.
pub(crate) fn missing_build_tool(lines: &[String]) -> Option<&'static str> {
    lines.iter().find_map(|line| {
        if line.contains("Python.h: No such file or directory") {
            return Some("python3-dev");
        }
        if line.contains("make: not found") || line.contains("make: command not found") {
            return Some("make");
        }
        // setuptools: `error: [Errno 2] No such file or directory: 'x86_64-linux-gnu-gcc'`;
        // older ones: `error: command 'gcc' failed: No such file or directory`, `unable to
        // execute 'gcc': No such file or directory`.
        let named = line
            .split_once("No such file or directory: '")
            .and_then(|(_, rest)| rest.split_once('\''))
            .map(|(program, _)| program);
        let program = named
            .or_else(|| {
                line.split_once("command '")
                    .or_else(|| line.split_once("unable to execute '"))
                    .and_then(|(_, rest)| rest.split_once('\''))
                    .filter(|(_, rest)| rest.contains("No such file or directory"))
                    .map(|(program, _)| program)
            })
            .map(|program| program.rsplit('/').next().unwrap_or(program))?;
        if program.ends_with("g++") || program.ends_with("c++") {
            Some("g++")
        } else if program.ends_with("gcc") || program.ends_with("cc") {
            Some("gcc")
        } else if program == "make" {
            Some("make")
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    /// A setuptools build of a C extension without a compiler, as pip 23 prints it.
    const NO_COMPILER: &str = "Processing ./vendor/fastsum-1.0.tar.gz
  Building wheel for fastsum (pyproject.toml): started
  error: subprocess-exited-with-error

  × Building wheel for fastsum (pyproject.toml) did not run successfully.
  │ exit code: 1
  ╰─> [9 lines of output]
      running bdist_wheel
      running build
      running build_ext
      building 'fastsum._sum' extension
      creating build/temp.linux-x86_64-cpython-311
      x86_64-linux-gnu-gcc -g -fPIC -c sum.c -o build/sum.o
      error: command 'x86_64-linux-gnu-gcc' failed: No such file or directory
      [end of output]

  note: This error originates from a subprocess, and is likely not a problem with pip.
  Building wheel for fastsum (pyproject.toml): finished with status 'error'
  ERROR: Failed building wheel for fastsum
Failed to build fastsum
ERROR: Could not build wheels for fastsum, which is required to install pyproject.toml-based projects";

    #[test]
    fn the_failed_step_and_its_error_lines_come_first() {
        assert_eq!(
            reasons(&lines(NO_COMPILER)),
            [
                "× Building wheel for fastsum (pyproject.toml) did not run successfully.",
                "error: command 'x86_64-linux-gnu-gcc' failed: No such file or directory",
                "ERROR: Failed building wheel for fastsum",
                "ERROR: Could not build wheels for fastsum, which is required to install \
                 pyproject.toml-based projects",
            ]
        );
        assert_eq!(missing_build_tool(&lines(NO_COMPILER)), Some("gcc"));
    }

    #[test]
    fn a_plain_error_is_its_own_reason_and_a_quiet_step_shows_its_end() {
        let resolution = "Collecting nothing-here\nERROR: Could not find a version that \
                          satisfies the requirement nothing-here (from versions: none)\n\
                          ERROR: No matching distribution found for nothing-here";
        assert_eq!(reasons(&lines(resolution)).len(), 2);
        let quiet = "  error: subprocess-exited-with-error\n  × Getting requirements to \
                     build wheel did not run successfully.\n  ╰─> [2 lines of output]\n      \
                     one\n      two\n      [end of output]";
        assert_eq!(
            reasons(&lines(quiet)),
            [
                "× Getting requirements to build wheel did not run successfully.",
                "one",
                "two"
            ]
        );
        assert!(reasons(&lines("Successfully installed six")).is_empty());
    }

    #[test]
    fn missing_tools_are_named_as_debian_packages() {
        for (line, tool) in [
            (
                "sum.c:1:10: fatal error: Python.h: No such file or directory",
                "python3-dev",
            ),
            (
                "error: command 'g++' failed: No such file or directory",
                "g++",
            ),
            ("unable to execute 'gcc': No such file or directory", "gcc"),
            ("/bin/sh: 1: make: not found", "make"),
            (
                "error: [Errno 2] No such file or directory: 'x86_64-linux-gnu-gcc'",
                "gcc",
            ),
        ] {
            assert_eq!(missing_build_tool(&lines(line)), Some(tool), "{line}");
        }
        assert_eq!(
            missing_build_tool(&lines("error: command 'gcc' failed with exit code 1")),
            None
        );
    }
}
