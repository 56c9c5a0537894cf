//! A chart as the repository knows it: its `Chart.yaml`, read out of the uploaded archive through the host's
//! bounded archive read and checked the way `helm` checks it, and the `index.yaml` entries made from the stored
//! versions.

use serde_json::{Map, Value, json};
use wharf_plugin_sdk::store::{self, ArchiveKind, ReadError};
use wharf_plugin_sdk::{Problem, problem};

/// A Chart.yaml is a few KiB; Helm itself refuses any file of a chart over 5 MiB.
const MAX_CHART_YAML: u32 = 1024 * 1024;
/// A `.prov` file is a clear-signed Chart.yaml and a digest: a few KiB.
pub const MAX_PROV: u64 = 1024 * 1024;
/// Listing pages asked of the host.
const PAGE: u32 = 1000;

/// A chart's name, version, and its Chart.yaml as JSON.
pub struct Chart {
    pub name: String,
    pub version: String,
    pub metadata: Map<String, Value>,
}

pub fn bad(message: impl Into<String>) -> Problem {
    problem(400, "BAD_REQUEST", message)
}

/// `<name>-<version>.tgz`, the name `helm package` gives the file.
pub fn file_name(name: &str, version: &str) -> String {
    format!("{name}-{version}.tgz")
}

/// Where a chart file lives in the repository; its provenance file is this plus `.prov`.
pub fn chart_path(name: &str, version: &str) -> String {
    format!("charts/{}", file_name(name, version))
}

/// Reads and checks the Chart.yaml at the top of an uploaded chart archive.
pub fn read(digest: &str) -> Result<Chart, Problem> {
    let bytes =
        match store::archive_member(digest, ArchiveKind::TarGz, "/Chart.yaml", MAX_CHART_YAML) {
            // `helm package` writes `<name>/Chart.yaml` first; a subchart's comes later, deeper.
            Ok(Some((path, bytes))) if path.split('/').count() == 2 => bytes,
            Ok(_) => return Err(bad("the chart has no Chart.yaml in its top directory")),
            Err(ReadError::TooLarge) => {
                return Err(bad("the chart's Chart.yaml is larger than 1 MiB"));
            }
            Err(ReadError::Damaged(why)) => {
                return Err(bad(format!(
                    "the chart cannot be read as a gzipped tar (what `helm package` makes): {why}"
                )));
            }
            Err(ReadError::NotFound) => {
                return Err(problem(
                    500,
                    "INTERNAL_ERROR",
                    "the uploaded chart vanished",
                ));
            }
        };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("Chart.yaml is not UTF-8"))?;
    let value: Value = yaml_serde::from_str(text)
        .map_err(|e| bad(format!("Chart.yaml is not valid YAML: {e}")))?;
    let Value::Object(metadata) = value else {
        return Err(bad("Chart.yaml is not a mapping"));
    };
    let field = |key: &str| -> Result<String, Problem> {
        match metadata.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(_) => Err(bad(format!("Chart.yaml: `{key}` must be a string"))),
            None => Err(bad(format!("Chart.yaml: `{key}` is required"))),
        }
    };
    let api_version = field("apiVersion")?;
    if !matches!(api_version.as_str(), "v1" | "v2" | "v3") {
        return Err(bad(format!(
            "Chart.yaml: apiVersion `{api_version}` is not one Helm knows (v1, v2, v3)"
        )));
    }
    let name = field("name")?;
    if !valid_name(&name) {
        return Err(bad(format!(
            "Chart.yaml: chart name `{}` is invalid: letters, digits, `-`, `_` and `.`, starting with a letter or \
             digit, at most 250 characters",
            name.chars().take(100).collect::<String>()
        )));
    }
    let version = field("version")?;
    if order_key(&version).is_none() {
        return Err(bad(format!(
            "Chart.yaml: version `{}` is not a semantic version (like 1.2.3)",
            version.chars().take(100).collect::<String>()
        )));
    }
    Ok(Chart {
        name,
        version,
        metadata,
    })
}

/// Also what keeps a name safe as a path segment: no `/`, no `..`, no leading dot.
pub fn valid_name(name: &str) -> bool {
    name.len() <= 250
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The version for ordering, read as Helm reads one (Masterminds' semver): an optional `v`, one to three numbers,
/// then a pre-release and build as in SemVer 2. `None` when Helm would refuse it.
pub fn order_key(version: &str) -> Option<semver::Version> {
    if version.len() > 128 {
        return None;
    }
    let rest = version.strip_prefix('v').unwrap_or(version);
    let core_end = rest.find(['-', '+']).unwrap_or(rest.len());
    let (core, tail) = rest.split_at(core_end);
    let numbers: Vec<&str> = core.split('.').collect();
    if numbers.len() > 3 || numbers.iter().any(|n| n.is_empty()) {
        return None;
    }
    let mut padded = numbers.join(".");
    for _ in numbers.len()..3 {
        padded.push_str(".0");
    }
    semver::Version::parse(&format!("{padded}{tail}")).ok()
}

/// The `index.yaml` entry of an uploaded chart: its Chart.yaml, plus where to get it, when and its digest.
pub fn entry(chart: &Chart, digest: &str, created: u64) -> Value {
    let mut entry = chart.metadata.clone();
    entry.insert(
        "urls".into(),
        json!([chart_path(&chart.name, &chart.version)]),
    );
    entry.insert("created".into(), Value::String(rfc3339(created)));
    entry.insert(
        "digest".into(),
        Value::String(digest.trim_start_matches("sha256:").into()),
    );
    Value::Object(entry)
}

/// Every version of one chart, newest first, as index entries.
pub fn versions(name: &str) -> Vec<Value> {
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let page = store::list_versions(name, after.as_deref(), PAGE);
        let full = page.len() == PAGE as usize;
        after = page.last().map(|(v, _)| v.clone());
        for (version, record) in page {
            if let Ok(entry) = serde_json::from_str::<Value>(&record.metadata) {
                found.push((order_key(&version), entry));
            }
        }
        if !full {
            break;
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, entry)| entry).collect()
}

/// Every chart in the repository, by name, each newest first: what `index.yaml` and `GET api/charts` list.
pub fn all() -> Map<String, Value> {
    let mut entries = Map::new();
    let mut after = None;
    loop {
        let page = store::list_packages(after.as_deref(), PAGE);
        let full = page.len() == PAGE as usize;
        after = page.last().cloned();
        for name in page {
            let versions = versions(&name);
            if !versions.is_empty() {
                entries.insert(name, Value::Array(versions));
            }
        }
        if !full {
            break;
        }
    }
    entries
}

/// `index.yaml` as Helm reads it.
pub fn index(now: u64) -> Result<String, Problem> {
    let document = json!({
        "apiVersion": "v1",
        "entries": all(),
        "generated": rfc3339(now),
    });
    yaml_serde::to_string(&document).map_err(|e| problem(500, "INTERNAL_ERROR", e.to_string()))
}

/// `2026-11-28T13:41:00Z` from Unix seconds (Howard Hinnant's days-to-civil).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_as_helm_reads_them() {
        assert!(order_key("1.2.3").is_some());
        assert!(order_key("v1.2").is_some());
        assert!(order_key("1.0.0-rc.1+build.5").is_some());
        assert!(order_key("banana").is_none());
        assert!(order_key("1.2.3.4").is_none());
        assert!(order_key("1..2").is_none());
        assert!(order_key("1.10.0") > order_key("1.9.0"));
        assert!(order_key("1.0.0") > order_key("1.0.0-rc.1"));
    }

    #[test]
    fn names_stay_inside_the_repository() {
        assert!(valid_name("my-chart_2.x"));
        for bad in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "a..b",
            "a b",
            &"x".repeat(251),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_873_260), "2026-11-28T13:41:00Z");
    }

    #[test]
    fn strings_that_look_like_numbers_stay_strings() {
        let yaml =
            yaml_serde::to_string(&json!({"version": "1.10", "appVersion": "true"})).unwrap();
        let back: Value = yaml_serde::from_str(&yaml).unwrap();
        assert_eq!(back["version"], "1.10");
        assert_eq!(back["appVersion"], "true");
    }
}
