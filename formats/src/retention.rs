//! Retention: lifecycle rules per repository, in the JSON of ECR's lifecycle policies (accepted verbatim) and
//! evaluated as ECR documents it. Each package (an image, an npm package) is judged on its own: its versions are
//! the items, the tags pointing at a version make it tagged, its push time is the version's creation time.
//!
//! - Rules run in `rulePriority` order, lowest first. A rule selects the items not claimed by an earlier rule whose
//!   tags match (`tagged`: some tag starts with every prefix of `tagPrefixList`, or matches every pattern of
//!   `tagPatternList`; `untagged`: no tag; `any`: all) and claims them: a later rule never sees them again.
//! - `imageCountMoreThan` keeps the newest `countNumber` of its selection and expires the rest;
//!   `sinceImagePushed` expires those pushed more than `countNumber` days ago.
//! - Two more count types give the pull windows users ask zot and Harbor for: `pulledImageCountMoreThan` keeps the
//!   `countNumber` most recently pulled, `sinceImagePulled` expires what was not pulled in the last `countNumber`
//!   days. A version never pulled counts as pulled when it was pushed, so a new version is never expired for not
//!   having been pulled yet. Formats record a pull when a client downloads a version's content (an OCI manifest
//!   GET, an npm tarball, a file), to the minute.
//! - What no rule selects is kept. An immutable version or tag is kept whatever a rule says, and so is what the
//!   format refuses to remove (`Format::expire`): the plan says why, and the real run does exactly what the plan
//!   says.
//! - An item that follows others (an OCI referrer its subject, an untagged manifest the index that lists it) is not
//!   judged by the rules: it goes when everything it follows goes, and stays while any of it stays (`follow`).
//!   One whose subject is not there at all is judged like any other item.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use wharf_storage::{Store, Time, glob};

use crate::Problem;

/// Versions and tags are read in pages of this many.
const PAGE: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub rule_priority: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub selection: Selection,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selection {
    pub tag_status: TagStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_prefix_list: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_pattern_list: Vec<String>,
    pub count_type: CountType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_unit: Option<String>,
    pub count_number: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagStatus {
    Tagged,
    Untagged,
    Any,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CountType {
    ImageCountMoreThan,
    SinceImagePushed,
    PulledImageCountMoreThan,
    SinceImagePulled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    #[serde(rename = "type")]
    pub kind: String,
}

impl Policy {
    /// Reads a policy and checks it as ECR does; the message says what to fix.
    pub fn parse(json: &[u8]) -> Result<Policy, Problem> {
        let policy: Policy = serde_json::from_slice(json)
            .map_err(|e| Problem::bad_request(format!("not a lifecycle policy: {e}")))?;
        policy.check().map_err(Problem::bad_request)?;
        Ok(policy)
    }

    fn check(&self) -> Result<(), String> {
        let mut priorities: Vec<u32> = self.rules.iter().map(|r| r.rule_priority).collect();
        priorities.sort_unstable();
        if priorities.windows(2).any(|w| w[0] == w[1]) {
            return Err("each rule needs its own rulePriority".into());
        }
        let highest = priorities.last().copied().unwrap_or(0);
        let mut untagged = 0;
        for rule in &self.rules {
            let s = &rule.selection;
            let at = format!("rule {}", rule.rule_priority);
            if rule.action.kind != "expire" {
                return Err(format!("{at}: the only action is {{\"type\": \"expire\"}}"));
            }
            let (prefixes, patterns) = (
                !s.tag_prefix_list.is_empty(),
                !s.tag_pattern_list.is_empty(),
            );
            match s.tag_status {
                TagStatus::Tagged if prefixes == patterns => {
                    return Err(format!(
                        "{at}: a tagged rule needs tagPrefixList or tagPatternList, not both"
                    ));
                }
                TagStatus::Untagged | TagStatus::Any if prefixes || patterns => {
                    return Err(format!("{at}: only a tagged rule lists tags"));
                }
                TagStatus::Untagged => untagged += 1,
                TagStatus::Any if rule.rule_priority != highest => {
                    return Err(format!(
                        "{at}: a rule of tagStatus any must have the highest rulePriority"
                    ));
                }
                _ => {}
            }
            if s.tag_pattern_list
                .iter()
                .any(|p| p.matches('*').count() > 4)
            {
                return Err(format!("{at}: a tag pattern has at most four wildcards"));
            }
            let days = matches!(
                s.count_type,
                CountType::SinceImagePushed | CountType::SinceImagePulled
            );
            match (days, s.count_unit.as_deref()) {
                (true, Some("days")) | (false, None) => {}
                (true, _) => {
                    return Err(format!(
                        "{at}: sinceImagePushed and sinceImagePulled need \"countUnit\": \"days\""
                    ));
                }
                (false, Some(_)) => {
                    return Err(format!(
                        "{at}: imageCountMoreThan and pulledImageCountMoreThan take no countUnit"
                    ));
                }
            }
            if s.count_number == 0 {
                return Err(format!("{at}: countNumber must be at least 1"));
            }
        }
        if untagged > 1 {
            return Err("only one rule may select untagged items".into());
        }
        Ok(())
    }
}

impl Selection {
    fn selects(&self, tags: &[String]) -> bool {
        match self.tag_status {
            TagStatus::Any => true,
            TagStatus::Untagged => tags.is_empty(),
            TagStatus::Tagged => {
                !tags.is_empty()
                    && self
                        .tag_prefix_list
                        .iter()
                        .all(|prefix| tags.iter().any(|t| t.starts_with(prefix.as_str())))
                    && self
                        .tag_pattern_list
                        .iter()
                        .all(|pattern| tags.iter().any(|t| glob(pattern, t)))
            }
        }
    }
}

/// A version as retention sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Shared by the items of a package: one allocation per package, not per version.
    pub package: Arc<str>,
    pub version: String,
    pub tags: Vec<String>,
    pub pushed: Time,
    /// When a client last pulled it, if ever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pulled: Option<Time>,
    /// Versions of the same package whose fate this one shares.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub follows: Vec<String>,
}

/// The items of one package as most formats have them: each version, tagged by the tags that point at it, pushed
/// when its record was written. (`Format::retention_items` is this unless a format's versions hold more than one
/// item, as a Maven SNAPSHOT holds its builds.)
pub fn version_items(store: &Store, repo: &str, package: &str) -> Result<Vec<Item>, Problem> {
    version_items_following::<serde::de::IgnoredAny>(store, repo, package, |versions, _| {
        vec![Vec::new(); versions.len()]
    })
}

/// What retention reads of a version record: when it was pushed, and the part of its metadata (`M`) a format needs
/// to say what the version follows. Only those fields are decoded: over 100,000 versions, building each one's whole
/// metadata to drop it again took most of a dry run's time, in the allocator.
#[derive(Deserialize)]
pub struct Listed<M> {
    pub created: Time,
    #[serde(default)]
    pub metadata: M,
}

/// `version_items`, with what each version follows: `follows(versions, their tags)` answers for each version.
pub fn version_items_following<M: serde::de::DeserializeOwned + Default>(
    store: &Store,
    repo: &str,
    package: &str,
    follows: impl FnOnce(&[(String, Listed<M>)], &[Vec<String>]) -> Vec<Vec<String>>,
) -> Result<Vec<Item>, Problem> {
    let meta = store.meta();
    let mut tagged: HashMap<String, Vec<String>> = HashMap::new();
    for (tag, t) in paged(|after, limit| meta.tags(repo, package, after, limit))? {
        tagged.entry(t.version).or_default().push(tag);
    }
    let versions =
        paged(|after, limit| meta.version_records::<Listed<M>>(repo, package, after, limit))?;
    let tags = align(&versions, tagged);
    let follows = follows(&versions, &tags);
    let pulls = meta.pulls(repo, package)?;
    let pulls = align(&versions, pulls.into_iter().map(|(v, at)| (v, Some(at))));
    let package: Arc<str> = package.into();
    Ok(versions
        .into_iter()
        .zip(tags)
        .zip(follows)
        .zip(pulls)
        .map(|((((version, v), tags), follows), pulled)| Item {
            package: package.clone(),
            pulled,
            version,
            tags,
            pushed: v.created,
            follows,
        })
        .collect())
}

/// `by_name`'s values in the order of `versions` (the default where a version has none). `versions` is a
/// key-ordered scan, so sorted by name: each entry of `by_name` is placed by binary search, from the map's side since
/// it is usually far smaller than the listing (a few tags, the versions ever pulled).
fn align<L, T: Default + Clone>(
    versions: &[(String, L)],
    by_name: impl IntoIterator<Item = (String, T)>,
) -> Vec<T> {
    debug_assert!(
        versions.windows(2).all(|w| w[0].0 < w[1].0),
        "listing not sorted"
    );
    let mut aligned = vec![T::default(); versions.len()];
    for (name, value) in by_name {
        if let Ok(i) = versions.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            aligned[i] = value;
        }
    }
    aligned
}

/// The writes that remove a version and the tags it had when listed: what retention does to an OCI manifest or an
/// npm version.
pub fn version_removal(repo: &str, item: &Item) -> Vec<wharf_storage::Write> {
    use wharf_storage::Write;
    let mut writes: Vec<Write> = item
        .tags
        .iter()
        .map(|tag| Write::DeleteTag {
            repo: repo.into(),
            package: item.package.to_string(),
            tag: tag.clone(),
        })
        .collect();
    writes.push(Write::DeleteVersion {
        repo: repo.into(),
        package: item.package.to_string(),
        version: item.version.clone(),
    });
    writes
}

/// Every page of a listing that takes "start after": `page(after, limit)` reads one, and a page shorter than `limit`
/// is the last. The size is chosen here, so no caller can pass one that ends the listing early.
pub fn paged<T>(
    mut page: impl FnMut(Option<&str>, usize) -> wharf_storage::Result<Vec<(String, T)>>,
) -> Result<Vec<(String, T)>, Problem> {
    let mut all: Vec<(String, T)> = Vec::new();
    loop {
        let after = all.last().map(|(name, _)| name.clone());
        let next = page(after.as_deref(), PAGE)?;
        let full = next.len() == PAGE;
        all.extend(next);
        if !full {
            return Ok(all);
        }
    }
}

impl Item {
    /// When it was last pulled, or pushed if it never was: what the pull windows count from.
    pub fn last_used(&self) -> Time {
        self.pulled.unwrap_or(self.pushed).max(self.pushed)
    }
}

/// What happens to an item, and which rule (if any) decided it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    #[serde(flatten)]
    pub item: Item,
    pub remove: bool,
    /// The removal is a yank (`retention_action = "yank"`): the version stays installable by its exact number.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub yank: bool,
    pub rule: Option<u32>,
    pub why: Why,
}

/// Why a decision is what it is; written out as a sentence. A value, not a `String`: a plan of 100,000 versions
/// would otherwise make (and free) 100,000 strings only to print them once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    NoRule,
    /// `imageCountMoreThan`: among the newest `count` of its selection, or beyond them.
    Newest {
        among: bool,
        count: u64,
    },
    /// `pulledImageCountMoreThan`.
    MostPulled {
        among: bool,
        count: u64,
    },
    /// `sinceImagePushed`.
    Pushed {
        days: u64,
        limit: u64,
    },
    /// `sinceImagePulled`, of a version pulled at some time, or never (then `days` counts from its push).
    Pulled {
        days: u64,
        limit: u64,
        ever: bool,
    },
    /// A follower: what it follows and, once settled, whether that goes.
    Follows {
        leaders: Vec<String>,
        goes: Option<bool>,
    },
    /// The removal was refused (`reason`), so the item stays.
    Kept {
        reason: String,
        was: Box<Why>,
    },
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = |among: bool| if among { "among" } else { "beyond" };
        match self {
            Why::NoRule => f.write_str("no rule selects it"),
            Why::Newest { among, count } => write!(f, "{} the newest {count}", place(*among)),
            Why::MostPulled { among, count } => {
                write!(f, "{} the {count} most recently pulled", place(*among))
            }
            Why::Pushed { days, limit } => write!(f, "pushed {days} days ago, limit {limit} days"),
            Why::Pulled {
                days,
                limit,
                ever: true,
            } => write!(f, "pulled {days} days ago, limit {limit} days"),
            Why::Pulled { days, limit, .. } => {
                write!(
                    f,
                    "never pulled, pushed {days} days ago, limit {limit} days"
                )
            }
            Why::Follows { leaders, goes } => {
                write!(f, "follows {}", leaders.join(", "))?;
                match goes {
                    Some(true) => f.write_str(", which goes"),
                    Some(false) => f.write_str(", which stays"),
                    None => Ok(()),
                }
            }
            Why::Kept { reason, was } => write!(f, "{reason}, so kept ({was})"),
        }
    }
}

impl Serialize for Why {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Judges the versions of one package at time `now`.
pub fn evaluate(policy: &Policy, items: Vec<Item>, now: Time) -> Vec<Decision> {
    // Each item's verdict, (remove, rule, why), taken by the first rule that selects it; the items move into their
    // decisions at the end rather than being copied (over 100,000 versions, copies cost a third of a dry run).
    let mut verdicts: Vec<Option<(bool, Option<u32>, Why)>> = vec![None; items.len()];
    // Followers are decided by `follow`, after what they follow; for now they are kept.
    if items.iter().any(|i| !i.follows.is_empty()) {
        let present: std::collections::HashSet<&str> =
            items.iter().map(|i| i.version.as_str()).collect();
        for (i, item) in items.iter().enumerate() {
            if item.follows.iter().any(|f| present.contains(f.as_str())) {
                let why = Why::Follows {
                    leaders: item.follows.clone(),
                    goes: None,
                };
                verdicts[i] = Some((false, None, why));
            }
        }
    }
    let ranks = version_ranks(&items);
    let mut rules: Vec<&Rule> = policy.rules.iter().collect();
    rules.sort_by_key(|r| r.rule_priority);
    for rule in rules {
        let s = &rule.selection;
        let by_pull = matches!(
            s.count_type,
            CountType::PulledImageCountMoreThan | CountType::SinceImagePulled
        );
        let time = |i: usize| match by_pull {
            true => items[i].last_used(),
            false => items[i].pushed,
        };
        // Newest (or most recently pulled) first; equal times fall back to the version (its rank), so a plan is
        // the same every time. Sorted as (time, rank, index) triples side by side: a sort that looked each item
        // up instead wandered over all of them (100,000 items: 15 MB) for every comparison.
        let mut selected: Vec<(Time, usize, usize)> = (0..items.len())
            .filter(|&i| verdicts[i].is_none() && s.selects(&items[i].tags))
            .map(|i| (time(i), ranks[i], i))
            .collect();
        selected.sort_unstable_by(|a, b| b.cmp(a));
        for (rank, &(_, _, i)) in selected.iter().enumerate() {
            let (among, count) = ((rank as u64) < s.count_number, s.count_number);
            let days = now.saturating_sub(time(i)) / 86_400;
            let (remove, why) = match s.count_type {
                CountType::ImageCountMoreThan => (!among, Why::Newest { among, count }),
                CountType::PulledImageCountMoreThan => (!among, Why::MostPulled { among, count }),
                CountType::SinceImagePushed => (days >= count, Why::Pushed { days, limit: count }),
                CountType::SinceImagePulled => (
                    days >= count,
                    Why::Pulled {
                        days,
                        limit: count,
                        ever: items[i].pulled.is_some(),
                    },
                ),
            };
            verdicts[i] = Some((remove, Some(rule.rule_priority), why));
        }
    }
    items
        .into_iter()
        .zip(verdicts)
        .map(|(item, verdict)| {
            let (remove, rule, why) = verdict.unwrap_or((false, None, Why::NoRule));
            Decision {
                item,
                remove,
                yank: false,
                rule,
                why,
            }
        })
        .collect()
}

/// Each item's place in version order, so that sorting by time and version compares numbers, not strings. Most
/// formats list versions in that order already (a key-ordered scan), which one pass confirms.
fn version_ranks(items: &[Item]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    if !items.windows(2).all(|w| w[0].version <= w[1].version) {
        order.sort_by(|&a, &b| items[a].version.cmp(&items[b].version));
    }
    let mut ranks = vec![0; items.len()];
    for (rank, &i) in order.iter().enumerate() {
        ranks[i] = rank;
    }
    ranks
}

/// Carries the decisions out: `act` is called on each decision to remove, the rules' first, then each follower once
/// everything it follows is settled (so a referrer of a referrer waits a round). A follower goes when all it follows
/// goes and stays while any of it stays. When `act` fails the item stays, and the message says why.
/// Content-addressed versions cannot follow in a circle; were some to, they would stay.
pub fn settle(decisions: &mut [Decision], mut act: impl FnMut(&Decision) -> Result<(), String>) {
    let leaders = leaders(decisions);
    let mut settled: Vec<bool> = leaders.iter().map(Vec::is_empty).collect();
    let mut round: Vec<usize> = (0..decisions.len()).filter(|&i| settled[i]).collect();
    while !round.is_empty() {
        for &i in &round {
            if decisions[i].remove
                && let Err(reason) = act(&decisions[i])
            {
                let decision = &mut decisions[i];
                decision.remove = false;
                let was = Box::new(std::mem::replace(&mut decision.why, Why::NoRule));
                decision.why = Why::Kept { reason, was };
            }
        }
        round = (0..decisions.len())
            .filter(|&i| !settled[i] && leaders[i].iter().all(|&j| settled[j]))
            .collect();
        for &i in &round {
            let remove = leaders[i].iter().all(|&j| decisions[j].remove);
            let leaders = leaders[i]
                .iter()
                .map(|&j| decisions[j].item.version.clone())
                .collect();
            decisions[i].why = Why::Follows {
                leaders,
                goes: Some(remove),
            };
            decisions[i].remove = remove;
            settled[i] = true;
        }
    }
}

/// For each decision, the decisions of what its item follows (empty for an item the rules judge).
fn leaders(decisions: &[Decision]) -> Vec<Vec<usize>> {
    if decisions.iter().all(|d| d.item.follows.is_empty()) {
        return vec![Vec::new(); decisions.len()];
    }
    let index: HashMap<&str, usize> = decisions
        .iter()
        .enumerate()
        .map(|(i, d)| (d.item.version.as_str(), i))
        .collect();
    decisions
        .iter()
        .map(|d| {
            d.item
                .follows
                .iter()
                .filter_map(|f| index.get(f.as_str()).copied())
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests;
