//! `maven-metadata.xml`, always generated from what is stored (so two concurrent deploys can never lose a version,
//! as they can when clients upload a merged file), Maven's version order, and the checks on uploaded XML: well-formed,
//! and no DOCTYPE at all, so no entity is ever declared, let alone expanded.

use std::cmp::Ordering;

use quick_xml::events::Event;

use super::maven_error;
use super::path::Artifact;
use crate::Problem;
use crate::dates::compact;

/// Artifact-level metadata: every version, the latest, the latest release.
pub fn artifact_level(artifact: &Artifact, versions: &[String], updated: u64) -> String {
    let mut sorted: Vec<&String> = versions.iter().collect();
    sorted.sort_by(|a, b| compare(a, b));
    let latest = sorted.last().map(|v| v.as_str()).unwrap_or_default();
    let release = sorted
        .iter()
        .rev()
        .find(|v| !v.ends_with("-SNAPSHOT"))
        .map(|v| v.as_str());
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata>\n  <groupId>{}</groupId>\n  <artifactId>{}</artifactId>\n  <versioning>\n    <latest>{latest}</latest>\n",
        artifact.group, artifact.artifact
    );
    if let Some(release) = release {
        xml.push_str(&format!("    <release>{release}</release>\n"));
    }
    xml.push_str("    <versions>\n");
    for v in &sorted {
        xml.push_str(&format!("      <version>{v}</version>\n"));
    }
    xml.push_str(&format!(
        "    </versions>\n    <lastUpdated>{}</lastUpdated>\n  </versioning>\n</metadata>\n",
        compact(updated)
    ));
    xml
}

/// One timestamped SNAPSHOT file name taken apart: `lib-1.0-20261128.032329-2-sources.jar`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    pub timestamp: String,
    pub build: u64,
    pub classifier: Option<String>,
    pub extension: String,
}

pub fn snapshot_file(artifact: &str, version: &str, file: &str) -> Option<SnapshotFile> {
    let base = version.strip_suffix("-SNAPSHOT")?;
    let rest = file.strip_prefix(&format!("{artifact}-{base}-"))?;
    let (timestamp, rest) = rest.split_at_checked(15)?;
    let ok = timestamp.as_bytes()[8] == b'.'
        && timestamp
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 8 || b.is_ascii_digit());
    let rest = rest.strip_prefix('-').filter(|_| ok)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let build = rest[..digits].parse().ok()?;
    let rest = &rest[digits..];
    let (classifier, extension) = match rest.strip_prefix('-') {
        Some(c) => {
            let (classifier, extension) = c.split_once('.')?;
            (Some(classifier.to_string()), extension)
        }
        None => (None, rest.strip_prefix('.')?),
    };
    Some(SnapshotFile {
        timestamp: timestamp.into(),
        build,
        classifier,
        extension: extension.into(),
    })
}

/// SNAPSHOT version-level metadata from the files of that version: the newest build, and the newest file of each
/// classifier and extension. `None` when no timestamped file is stored.
pub fn version_level(
    artifact: &Artifact,
    version: &str,
    files: &[(String, u64)],
) -> Option<String> {
    let base = version.strip_suffix("-SNAPSHOT")?;
    let parsed: Vec<(SnapshotFile, u64)> = files
        .iter()
        .filter_map(|(name, time)| {
            snapshot_file(&artifact.artifact, version, name).map(|f| (f, *time))
        })
        .collect();
    let newest = parsed.iter().max_by_key(|(f, _)| f.build)?;
    let mut latest: Vec<&(SnapshotFile, u64)> = Vec::new();
    for entry in &parsed {
        let (f, _) = entry;
        match latest
            .iter_mut()
            .find(|(l, _)| l.classifier == f.classifier && l.extension == f.extension)
        {
            Some(slot) if slot.0.build < f.build => *slot = entry,
            Some(_) => {}
            None => latest.push(entry),
        }
    }
    latest
        .sort_by(|a, b| (&a.0.classifier, &a.0.extension).cmp(&(&b.0.classifier, &b.0.extension)));
    let updated = compact(newest.1);
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata modelVersion=\"1.1.0\">\n  <groupId>{}</groupId>\n  <artifactId>{}</artifactId>\n  <version>{version}</version>\n  <versioning>\n    <snapshot>\n      <timestamp>{}</timestamp>\n      <buildNumber>{}</buildNumber>\n    </snapshot>\n    <lastUpdated>{updated}</lastUpdated>\n    <snapshotVersions>\n",
        artifact.group, artifact.artifact, newest.0.timestamp, newest.0.build
    );
    for (f, time) in latest {
        xml.push_str("      <snapshotVersion>\n");
        if let Some(classifier) = &f.classifier {
            xml.push_str(&format!("        <classifier>{classifier}</classifier>\n"));
        }
        xml.push_str(&format!(
            "        <extension>{}</extension>\n        <value>{base}-{}-{}</value>\n        <updated>{}</updated>\n      </snapshotVersion>\n",
            f.extension, f.timestamp, f.build, compact(*time)
        ));
    }
    xml.push_str("    </snapshotVersions>\n  </versioning>\n</metadata>\n");
    Some(xml)
}

/// What an uploaded XML document holds at its top: the root element's name and its direct children's text.
pub struct Checked {
    pub root: String,
    pub children: Vec<(String, String)>,
}

/// Parses uploaded XML (a POM, a metadata file) without ever expanding an entity: a DOCTYPE is refused outright,
/// since neither POMs nor metadata use one, and it is the only way to declare an entity.
pub fn check_xml(bytes: &[u8], what: &str) -> Result<Checked, Problem> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut buf = Vec::new();
    let mut depth = 0usize;
    let mut root = None;
    let mut children = Vec::new();
    let mut current: Option<(String, String)> = None;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| maven_error(400, format!("the {what} is not well-formed XML: {e}")))?;
        match event {
            Event::DocType(_) => {
                return Err(maven_error(
                    400,
                    format!(
                        "the {what} has a DOCTYPE declaration: not accepted (entities are never expanded)"
                    ),
                ));
            }
            Event::Start(e) => {
                let name = e.local_name().into_inner().to_string();
                depth += 1;
                match depth {
                    1 => root = Some(name),
                    2 => current = Some((name, String::new())),
                    _ => {}
                }
            }
            Event::Empty(e) if depth == 0 => {
                root = Some(e.local_name().into_inner().to_string());
            }
            Event::Text(t) if depth == 2 => {
                if let Some((_, text)) = current.as_mut() {
                    text.push_str(t.trim());
                }
            }
            Event::End(_) => {
                if depth == 2
                    && let Some(child) = current.take()
                {
                    children.push(child);
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let root = root.ok_or_else(|| maven_error(400, format!("the {what} has no root element")))?;
    if depth != 0 {
        return Err(maven_error(
            400,
            format!("the {what} ends before its elements close"),
        ));
    }
    Ok(Checked { root, children })
}

/// Maven's version order (ComparableVersion, simplified): numbers numerically, qualifiers in the order
/// alpha < beta < milestone < rc < snapshot < release < sp, unknown qualifiers after those, alphabetically.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (items(a), items(b));
    for i in 0..a.len().max(b.len()) {
        let order = match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(x), None) => x.vs_null(),
            (None, Some(y)) => y.vs_null().reverse(),
            (None, None) => Ordering::Equal,
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    /// A qualifier: its rank, then its text for unknown ones.
    Qualifier(u8, String),
    Number(u64),
}

impl Item {
    /// "Nothing here": what a release has where another version goes on (`1.0` against `1.0-sp1`).
    const NULL: Item = Item::Qualifier(5, String::new());

    /// Against a missing item: a zero is no different, a qualifier ranks against a release.
    fn vs_null(&self) -> Ordering {
        match self {
            Item::Number(0) => Ordering::Equal,
            Item::Number(_) => Ordering::Greater,
            q => q.cmp(&Item::NULL),
        }
    }
}

fn items(version: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut current = String::new();
    for c in version.to_ascii_lowercase().chars() {
        let switch = current
            .chars()
            .last()
            .is_some_and(|last| last.is_ascii_digit() != c.is_ascii_digit());
        if c == '.' || c == '-' || switch {
            if !current.is_empty() {
                items.push(item(&std::mem::take(&mut current)));
            }
            // A `-` closes a group: its trailing zeros and release markers say nothing (1.0-rc1 is 1-rc1).
            if c == '-' {
                trim(&mut items);
            }
            if c == '.' || c == '-' {
                continue;
            }
        }
        current.push(c);
    }
    if !current.is_empty() {
        items.push(item(&current));
    }
    trim(&mut items);
    items
}

fn trim(items: &mut Vec<Item>) {
    while items.len() > 1 && items.last().is_some_and(|i| i.vs_null() == Ordering::Equal) {
        items.pop();
    }
}

fn item(token: &str) -> Item {
    if let Ok(n) = token.parse::<u64>() {
        return Item::Number(n);
    }
    let rank = match token {
        "alpha" | "a" => 0,
        "beta" | "b" => 1,
        "milestone" | "m" => 2,
        "rc" | "cr" => 3,
        "snapshot" => 4,
        "ga" | "final" | "release" => 5,
        "sp" => 6,
        _ => 7,
    };
    Item::Qualifier(
        rank,
        if rank == 7 {
            token.into()
        } else {
            String::new()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order() {
        let ordered = [
            "1.0-alpha-1",
            "1.0-beta",
            "1.0-rc1",
            "1.0-SNAPSHOT",
            "1.0",
            "1.0-sp1",
            "1.0.1",
            "1.2",
            "1.10",
            "2.0",
        ];
        for pair in ordered.windows(2) {
            assert_eq!(compare(pair[0], pair[1]), Ordering::Less, "{pair:?}");
        }
        assert_eq!(compare("1.0", "1.0.0"), Ordering::Equal);
        assert_eq!(compare("1", "1.0"), Ordering::Equal);
    }

    #[test]
    fn snapshot_names() {
        assert_eq!(
            snapshot_file(
                "lib",
                "1.0-SNAPSHOT",
                "lib-1.0-20261128.032329-12-sources.jar"
            ),
            Some(SnapshotFile {
                timestamp: "20261128.032329".into(),
                build: 12,
                classifier: Some("sources".into()),
                extension: "jar".into()
            })
        );
        assert_eq!(
            snapshot_file("lib", "1.0-SNAPSHOT", "lib-1.0-20261128.032329-2.pom")
                .map(|f| (f.build, f.extension)),
            Some((2, "pom".into()))
        );
        assert_eq!(
            snapshot_file("lib", "1.0-SNAPSHOT", "lib-1.0-SNAPSHOT.jar"),
            None
        );
        assert_eq!(snapshot_file("lib", "1.0", "lib-1.0.jar"), None);
    }

    #[test]
    fn snapshot_metadata_names_the_newest_build() {
        let artifact = Artifact {
            group: "g".into(),
            artifact: "lib".into(),
        };
        let files = vec![
            ("lib-1.0-20261128.010101-1.jar".to_string(), 0),
            ("lib-1.0-20261128.020202-2.jar".to_string(), 0),
            ("lib-1.0-20261128.020202-2.pom".to_string(), 0),
        ];
        let xml = version_level(&artifact, "1.0-SNAPSHOT", &files).unwrap();
        assert!(xml.contains("<buildNumber>2</buildNumber>"), "{xml}");
        assert!(
            xml.contains("<value>1.0-20261128.020202-2</value>"),
            "{xml}"
        );
        assert!(!xml.contains("010101"), "{xml}");
    }

    #[test]
    fn xml_checks() {
        let pom = b"<?xml version=\"1.0\"?><project><artifactId>lib</artifactId><parent><groupId>x</groupId></parent></project>";
        let checked = check_xml(pom, "POM").ok().unwrap();
        assert_eq!(checked.root, "project");
        assert!(
            checked
                .children
                .contains(&("artifactId".into(), "lib".into()))
        );
        let xxe = b"<?xml version=\"1.0\"?><!DOCTYPE project [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><project>&x;</project>";
        assert!(check_xml(xxe, "POM").is_err());
        assert!(check_xml(b"<project><a></project>", "POM").is_err());
        assert!(check_xml(b"not xml at all", "POM").is_err());
    }
}
