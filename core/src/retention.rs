//! Running retention on a repository (`formats/src/retention.rs` decides; this plans over the store and carries the
//! plan out). The policy is stored with the repository (kv `retention:policy`), set through the API or
//! `wharf retention import`. A run walks every package, judges its versions, keeps what is immutable or what the
//! format will not remove (the plan says why), and, unless it is a dry run, applies each package's removals in
//! one transaction, with an audit event per removed version. The dry run and the real run make the same plan.
//! A repository with `retention_action = "yank"` (PyPI) yanks what expires instead: pins still install it.

use wharf_config::RetentionAction;
use wharf_formats::Problem;
use wharf_formats::retention::{Decision, Policy, evaluate, settle};
use wharf_storage::{AuditEvent, RepositoryRecord, Write, now};

use std::sync::Arc;

use crate::server::App;

const POLICY_KEY: &str = "retention:policy";
/// Packages are read in pages of this many.
const PAGE: usize = 1000;

/// `[[repository.retention]]` as the stored policy: the ECR document the rules spell, checked as an imported one is.
pub fn from_config(repo: &wharf_config::Repository) -> crate::error::Result<Write> {
    let invalid = |message: String| {
        crate::error::Error::Invalid(format!(
            "[[repository.retention]] of `{}`: {message}",
            repo.name.get_ref()
        ))
    };
    let count = |r: &wharf_config::RetentionRule| {
        [
            ("imageCountMoreThan", r.keep_last),
            ("sinceImagePushed", r.expire_after_days),
            ("pulledImageCountMoreThan", r.keep_last_pulled),
            ("sinceImagePulled", r.expire_unpulled_after_days),
        ]
        .into_iter()
        .filter_map(|(kind, n)| n.map(|n| (kind, n)))
        .collect::<Vec<_>>()
    };
    if let Some(rule) = repo.retention.iter().find(|r| count(r).len() != 1) {
        return Err(invalid(format!(
            "rule {} needs one of keep_last, expire_after_days, keep_last_pulled, expire_unpulled_after_days",
            rule.priority
        )));
    }
    let rules: Vec<serde_json::Value> = repo
        .retention
        .iter()
        .map(|r| {
            let mut selection = serde_json::json!({ "tagStatus": r.select });
            if !r.tag_prefixes.is_empty() {
                selection["tagPrefixList"] = r.tag_prefixes.clone().into();
            }
            if !r.tag_patterns.is_empty() {
                selection["tagPatternList"] = r.tag_patterns.clone().into();
            }
            let (kind, n) = count(r)[0];
            selection["countType"] = kind.into();
            selection["countNumber"] = n.into();
            if kind.starts_with("since") {
                selection["countUnit"] = "days".into();
            }
            serde_json::json!({
                "rulePriority": r.priority,
                "description": r.description,
                "selection": selection,
                "action": { "type": "expire" },
            })
        })
        .collect();
    let json = serde_json::to_vec(&serde_json::json!({ "rules": rules })).unwrap_or_default();
    let policy = Policy::parse(&json).map_err(|p| invalid(p.message))?;
    Ok(Write::PutKv {
        repo: repo.name.get_ref().clone(),
        key: POLICY_KEY.into(),
        value: serde_json::to_vec(&policy).map_err(|e| invalid(e.to_string()))?,
    })
}

pub fn policy(app: &App, repo: &str) -> Result<Option<Policy>, Problem> {
    match app.store.meta().kv(repo, POLICY_KEY)? {
        Some(json) => Policy::parse(&json).map(Some),
        None => Ok(None),
    }
}

/// Stores (or with `None` removes) a repository's policy.
pub async fn set_policy(
    app: &App,
    repo: &str,
    policy: Option<&Policy>,
    principal: &str,
) -> Result<(), Problem> {
    let write = match policy {
        Some(policy) => Write::PutKv {
            repo: repo.into(),
            key: POLICY_KEY.into(),
            value: serde_json::to_vec(policy).map_err(Problem::internal)?,
        },
        None => Write::DeleteKv {
            repo: repo.into(),
            key: POLICY_KEY.into(),
        },
    };
    let event = AuditEvent {
        time: 0,
        principal: principal.into(),
        action: "retention-policy".into(),
        target: format!(
            "{repo}: {}",
            if policy.is_some() { "set" } else { "removed" }
        ),
    };
    app.store.apply(&[write], &[event]).await?;
    Ok(())
}

/// Plans retention for `repo` and, unless `dry_run`, carries the plan out. Every version gets a decision. The
/// planning reads the store (and may call a plugin) package by package on a low-priority thread
/// (`background`), so HTTP workers keep serving, and quickly, while a large repository is judged.
pub async fn run(
    app: Arc<App>,
    repo: &str,
    dry_run: bool,
    principal: &str,
) -> Result<Vec<Decision>, Problem> {
    let policy = policy(&app, repo)?.ok_or_else(|| {
        Problem::not_found(format!("repository `{repo}` has no retention policy"))
    })?;
    let record = app
        .store
        .meta()
        .repository(repo)?
        .ok_or_else(|| Problem::not_found(format!("no repository named `{repo}`")))?;
    // Planned on a low-priority thread, package by package, applied here as each plan arrives.
    let (sender, mut planned) = tokio::sync::mpsc::channel(4);
    let planner = {
        let (app, repo) = (app.clone(), repo.to_string());
        crate::background::spawn("retention", move || {
            plan_all(&app, &repo, &record, &policy, dry_run, &sender)
        })?
    };
    let mut decisions = Vec::new();
    while let Some(result) = planned.recv().await {
        let (package, judged, writes): Planned = result?;
        if !dry_run && !writes.is_empty() {
            let events: Vec<AuditEvent> = judged
                .iter()
                .filter(|d| d.remove)
                .map(|d| AuditEvent {
                    time: 0,
                    principal: principal.into(),
                    action: if d.yank {
                        "retention-yank"
                    } else {
                        "retention"
                    }
                    .into(),
                    target: format!("{repo}/{}@{}: {}", package, d.item.version, d.why),
                })
                .collect();
            app.store.apply(&writes, &events).await?;
        }
        match decisions.is_empty() {
            true => decisions = judged,
            false => decisions.extend(judged),
        }
    }
    crate::background::finished("retention", planner).await?;
    Ok(decisions)
}

/// A package's name, its decisions and the writes that carry them out.
type Planned = (String, Vec<Decision>, Vec<Write>);

/// Plans every package of `repo`, sending each plan (or the error that stopped planning) to `sender`. Stops early
/// when the receiver is gone.
fn plan_all(
    app: &App,
    repo: &str,
    record: &RepositoryRecord,
    policy: &Policy,
    dry_run: bool,
    sender: &tokio::sync::mpsc::Sender<Result<Planned, Problem>>,
) {
    let mut after: Option<String> = None;
    loop {
        let packages = match app.store.meta().packages(repo, after.as_deref(), PAGE) {
            Ok(packages) => packages,
            Err(error) => {
                let _ = sender.blocking_send(Err(error.into()));
                return;
            }
        };
        let full = packages.len() == PAGE;
        after = packages.last().map(|(name, _)| name.clone());
        for (package, _) in packages {
            let planned =
                plan(app, record, policy, &package, dry_run).map(|(d, w)| (package, d, w));
            if sender.blocking_send(planned).is_err() {
                return;
            }
        }
        if !full {
            return;
        }
    }
}

/// One package's decisions and, unless `dry_run`, the writes that carry them out. A dry run still asks the format
/// for each removal's writes, so that it knows what the format refuses, but keeps none of them.
fn plan(
    app: &App,
    record: &RepositoryRecord,
    policy: &Policy,
    package: &str,
    dry_run: bool,
) -> Result<(Vec<Decision>, Vec<Write>), Problem> {
    let repo = record.name.as_str();
    let served = app
        .repos
        .get(repo)
        .ok_or_else(|| Problem::not_found(format!("repository `{repo}` is not served")))?;
    let (format, yank) = (
        &served.format,
        served.retention_action == RetentionAction::Yank,
    );
    let ctx = crate::dispatch::context(app);
    let items = format.retention_items(&ctx, repo, package)?;
    let mut decisions = evaluate(policy, items, now());
    let mut writes = Vec::new();
    settle(&mut decisions, |decision| {
        let removal = removal(format.as_ref(), &ctx, record, package, decision, yank)?;
        if !dry_run {
            writes.extend(removal);
        }
        Ok(())
    });
    if yank {
        for decision in decisions.iter_mut().filter(|d| d.remove) {
            decision.yank = true;
        }
    } else if !dry_run && !writes.is_empty() {
        writes.extend(format.expired(&ctx, repo, &decisions)?);
    }
    Ok((decisions, writes))
}

/// The writes that remove (or yank) a version retention expires, or why it stays: it is immutable, or the format
/// refuses.
fn removal(
    format: &dyn wharf_formats::Format,
    ctx: &wharf_formats::Context<'_>,
    record: &RepositoryRecord,
    package: &str,
    decision: &Decision,
    yank: bool,
) -> Result<Vec<Write>, String> {
    let (repo, item) = (record.name.as_str(), &decision.item);
    if record.is_immutable(&item.version) || item.tags.iter().any(|t| record.is_immutable(t)) {
        return Err("it is immutable".into());
    }
    let writes = if yank {
        let reason = format!("retention: {}", decision.why);
        format
            .yank(ctx, repo, package, &item.version, Some(&reason))
            .map(|commit| commit.writes)
    } else {
        format.expire(ctx, repo, item)
    };
    writes.map_err(|problem| problem.message)
}
