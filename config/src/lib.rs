//! Wharf's configuration: the TOML schema ([`schema`]), human units ([`units`]), and loading with a report that
//! names every mistake at once, each with `file:line:column` and its key.
//!
//! Loading never stops at the first problem: when serde refuses a key or a value, the lines it sits on are blanked
//! (offsets kept, so later positions stay right) and the file is read again, until it deserializes; then the checks
//! that span several keys (duplicate repository names, known formats) run on the result.

pub mod schema;
pub mod units;

use std::fmt;
use std::ops::Range;
use std::path::Path;

pub use schema::{
    Auth, BUILTIN_FORMATS, Config, Kind, Plugin, Repository, RetentionAction, RetentionRule,
    Server, Storage,
};
pub use units::{ByteSize, Duration};

/// One mistake in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the key, e.g. `server.max_upload` or `repository[2].name`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.key, self.message
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", Report(.0))]
    Invalid(Vec<Problem>),
}

struct Report<'a>(&'a [Problem]);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<Config, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&path.display().to_string(), &text).map_err(Error::Invalid)
}

/// Parses configuration text; `file` only labels the problems.
pub fn parse(file: &str, src: &str) -> Result<Config, Vec<Problem>> {
    let at = |span: Range<usize>, message: String| locate(file, src, span.start, message);
    if let Err(e) = src.parse::<toml::Table>() {
        return Err(vec![at(e.span().unwrap_or(0..0), e.message().to_string())]);
    }
    let mut text = src.as_bytes().to_vec();
    let mut problems = Vec::new();
    let config = loop {
        let attempt = std::str::from_utf8(&text).expect("blanking whole lines keeps UTF-8");
        // A blanked multi-line value can leave text that is no longer TOML; what was found so far stands.
        if attempt.parse::<toml::Table>().is_err() {
            break None;
        }
        match toml::from_str::<Config>(attempt) {
            Ok(config) => break Some(config),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                problems.push(at(span.clone(), e.message().to_string()));
                if !blank_lines(&mut text, span) || problems.len() >= 100 {
                    break None;
                }
            }
        }
    };
    if let Some(config) = &config {
        problems.extend(
            check(config, src)
                .into_iter()
                .map(|(span, msg)| at(span, msg)),
        );
    }
    // serde visits tables in its own order; the report reads top to bottom.
    problems.sort_by_key(|p| (p.line, p.column));
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(problems),
    }
}

/// Checks that involve more than one key. Spans point into the original text.
fn check(config: &Config, src: &str) -> Vec<(Range<usize>, String)> {
    let line_of = |offset: usize| src[..offset.min(src.len())].matches('\n').count() + 1;
    let mut problems = Vec::new();
    let plugins_may_add_formats = !config.plugins.is_empty();
    for (i, repo) in config.repositories.iter().enumerate() {
        let name = repo.name.get_ref();
        if let Some(first) = config.repositories[..i]
            .iter()
            .find(|r| r.name.get_ref() == name)
        {
            problems.push((
                repo.name.span(),
                format!(
                    "repository name `{name}` is already used on line {}",
                    line_of(first.name.span().start)
                ),
            ));
        }
        if !valid_name(name) {
            problems.push((
                repo.name.span(),
                format!("repository name `{name}` must be 1-64 characters of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit"),
            ));
        }
        if repo.immutable.patterns().iter().any(|p| p.is_empty()) {
            problems.push((
                repo.name.span(),
                format!("repository `{name}`: an immutable pattern is empty"),
            ));
        }
        let format = repo.format.get_ref();
        // Only PyPI has a yank that leaves a version installable by its exact number.
        if repo.retention_action == RetentionAction::Yank && format != "pypi" {
            problems.push((
                repo.format.span(),
                format!("repository `{name}`: retention_action = \"yank\" is for pypi repositories; {format} versions cannot be yanked"),
            ));
        }
        if !plugins_may_add_formats && !BUILTIN_FORMATS.contains(&format.as_str()) {
            problems.push((
                repo.format.span(),
                format!(
                    "unknown format `{format}`: use one of {} or load a plugin",
                    BUILTIN_FORMATS.join(", ")
                ),
            ));
        }
    }
    problems
}

/// Repository names appear in URLs and image references, so they keep to what every client accepts.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b))
}

/// Replaces every line the span touches with spaces, keeping newlines (and so every offset) in place. A span on a
/// table header (a missing key) blanks the whole table, so its keys do not fall into the table above.
/// Returns false when there was nothing left to blank, which ends the retry loop.
fn blank_lines(text: &mut [u8], span: Range<usize>) -> bool {
    let start = text[..span.start.min(text.len())]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let end_from = span.end.max(span.start + 1).min(text.len());
    let mut end = text[end_from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| end_from + i);
    if text[start..].trim_ascii_start().starts_with(b"[") {
        while end < text.len() && !text[end + 1..].trim_ascii_start().starts_with(b"[") {
            end = text[end + 1..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(text.len(), |i| end + 1 + i);
        }
    }
    let mut changed = false;
    for b in &mut text[start..end] {
        if !matches!(*b, b'\n' | b' ') {
            *b = b' ';
            changed = true;
        }
    }
    changed
}

fn locate(file: &str, src: &str, offset: usize, message: String) -> Problem {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = src[line_start..offset].chars().count() + 1;
    Problem {
        file: file.to_string(),
        line,
        column,
        key: key_at(src, line_start),
        message,
    }
}

/// The dotted key of the line starting at `line_start`: the nearest table header above it, plus the key on it.
fn key_at(src: &str, line_start: usize) -> String {
    let line = src[line_start..].lines().next().unwrap_or("").trim();
    let mut table = String::new();
    let mut index = None;
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    for header in src[..line_start + line.len()].lines().map(str::trim) {
        if let Some(name) = header.strip_prefix("[[").and_then(|h| h.split("]]").next()) {
            let count = seen.entry(name.trim().to_string()).or_default();
            index = Some(*count);
            *count += 1;
            table = name.trim().to_string();
        } else if let Some(name) = header.strip_prefix('[').and_then(|h| h.split(']').next()) {
            table = name.trim().to_string();
            index = None;
        }
    }
    if !table.is_empty() && line.starts_with('[') {
        return table_path(&table, index);
    }
    let key = line
        .split('=')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches('"');
    match (table.as_str(), key) {
        ("", "") => "(top level)".to_string(),
        ("", key) => key.to_string(),
        (_, key) => format!("{}.{key}", table_path(&table, index)),
    }
}

fn table_path(table: &str, index: Option<usize>) -> String {
    match index {
        Some(i) => format!("{table}[{i}]"),
        None => table.to_string(),
    }
}

#[cfg(test)]
mod tests;
