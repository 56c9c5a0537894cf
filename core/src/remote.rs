//! The commands that act on a running server through its management API (`/api/v1/`, see `api.rs`): `yank`,
//! `promote`, `retention`, `gc` and `audit`. They authenticate with an API token, as a CI job would, and print one line per result.

use clap::Args;

use crate::error::{Error, Result};

/// Where the server is and who asks.
#[derive(Args)]
pub struct Remote {
    /// The server (plain HTTP).
    #[arg(long, env = "WHARF_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// An API token (`wharf token create USER`).
    #[arg(long, env = "WHARF_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Args)]
pub struct YankArgs {
    repository: String,
    package: String,
    version: String,
    /// Why, shown by pip when the version is installed anyway.
    #[arg(long, default_value = "")]
    reason: String,
    /// Un-yank instead.
    #[arg(long)]
    undo: bool,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Args)]
pub struct PromoteArgs {
    /// `<repo>/<package>@<version>` or `<repo>/<package>:<tag>` (`docker/app@sha256:...`, `npm/@acme/util@1.2.0`).
    reference: String,
    /// The repository to promote to (the same one: only add tags).
    #[arg(long)]
    to: String,
    /// A tag to set in the target; repeat for more.
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Remove it from the source in the same transaction.
    #[arg(long = "move")]
    move_: bool,
    #[command(flatten)]
    remote: Remote,
}

#[derive(clap::Subcommand)]
pub enum RetentionCommand {
    /// Set a repository's policy from an ECR lifecycle policy file, verbatim.
    Import {
        #[arg(long)]
        ecr: std::path::PathBuf,
        #[arg(long)]
        repository: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Apply a repository's policy now, or with --dry-run only print what it would do. Prints every version.
    Run {
        #[arg(long)]
        repository: String,
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Args)]
pub struct AuditArgs {
    /// How many of the newest events.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[command(flatten)]
    remote: Remote,
}

impl Remote {
    /// Sends one request; the JSON answer of a 200, or the server's message as the error.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default())
            .map_err(|e| Error::Invalid(format!("bad request to {url}: {e}")))?;
        let mut response = agent
            .run(request)
            .map_err(|e| Error::Invalid(format!("cannot reach {}: {e}", self.server)))?;
        let status = response.status().as_u16();
        // A retention plan names every version of a repository.
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .unwrap_or_default();
        let json = serde_json::from_str::<serde_json::Value>(&text).ok();
        if status != 200 {
            let message = json
                .as_ref()
                .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_string))
                .unwrap_or(text);
            return Err(Error::Invalid(format!("{status}: {message}")));
        }
        json.ok_or_else(|| Error::Invalid(format!("{url} did not answer JSON")))
    }
}

pub fn yank(args: &YankArgs) -> Result<()> {
    let path = format!(
        "/api/v1/repositories/{}/packages/{}/versions/{}/yank",
        args.repository, args.package, args.version
    );
    match args.undo {
        true => args.remote.call("DELETE", &path, None)?,
        false => {
            let body = serde_json::json!({ "reason": args.reason });
            args.remote.call("PUT", &path, Some(body))?
        }
    };
    let what = if args.undo { "un-yanked" } else { "yanked" };
    println!("{} {} {what}", args.package, args.version);
    Ok(())
}

/// `<repo>/<package>@<version>` or `<repo>/<package>:<tag>` as the API's fields. A scoped npm name starts with `@`,
/// so only an `@` after the package's first character separates a version.
fn reference(text: &str) -> Result<serde_json::Value> {
    let bad = || {
        Error::Invalid(format!(
            "`{text}` is not <repository>/<package>@<version> or <repository>/<package>:<tag>"
        ))
    };
    let (repository, rest) = text.split_once('/').ok_or_else(bad)?;
    let at = rest
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '@')
        .map(|(i, _)| i);
    let (package, field, value) = match at {
        Some(i) => (&rest[..i], "version", &rest[i + 1..]),
        None => {
            let (package, tag) = rest.rsplit_once(':').ok_or_else(bad)?;
            (package, "tag", tag)
        }
    };
    if repository.is_empty() || package.is_empty() || value.is_empty() {
        return Err(bad());
    }
    Ok(serde_json::json!({ "repository": repository, "package": package, field: value }))
}

pub fn promote(args: &PromoteArgs) -> Result<()> {
    let mut body = reference(&args.reference)?;
    body["to"] = args.to.clone().into();
    body["tags"] = args.tags.clone().into();
    body["move"] = args.move_.into();
    let done = args.remote.call("POST", "/api/v1/promote", Some(body))?;
    let verb = if args.move_ { "moved" } else { "promoted" };
    println!(
        "{verb} {}/{}@{} to {}",
        done["from"].as_str().unwrap_or(""),
        done["package"].as_str().unwrap_or(""),
        done["version"].as_str().unwrap_or(""),
        done["to"].as_str().unwrap_or("")
    );
    Ok(())
}

pub fn retention(command: &RetentionCommand) -> Result<()> {
    match command {
        RetentionCommand::Import {
            ecr,
            repository,
            remote,
        } => {
            let text = std::fs::read(ecr)
                .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", ecr.display())))?;
            let policy: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|e| Error::Invalid(format!("{} is not JSON: {e}", ecr.display())))?;
            let path = format!("/api/v1/repositories/{repository}/retention");
            let stored = remote.call("PUT", &path, Some(policy))?;
            let rules = stored["rules"].as_array().map_or(0, Vec::len);
            println!("retention policy of {repository} set: {rules} rules");
        }
        RetentionCommand::Run {
            repository,
            dry_run,
            remote,
        } => {
            let path = format!("/api/v1/repositories/{repository}/retention/run?dry_run={dry_run}");
            let plan = remote.call("POST", &path, None)?;
            for d in plan["decisions"].as_array().into_iter().flatten() {
                let tags: Vec<&str> = d["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str())
                    .collect();
                let rule = match d["rule"].as_u64() {
                    Some(rule) => format!("rule {rule}: "),
                    None => String::new(),
                };
                println!(
                    "{}  {}@{}  [{}]  pushed {}  {rule}{}",
                    match (d["remove"] == true, d["yank"] == true) {
                        (true, true) => "yank  ",
                        (true, false) => "remove",
                        _ => "keep  ",
                    },
                    d["package"].as_str().unwrap_or(""),
                    d["version"].as_str().unwrap_or(""),
                    tags.join(","),
                    wharf_formats::dates::iso(d["pushed"].as_u64().unwrap_or(0)),
                    d["why"].as_str().unwrap_or("")
                );
            }
            let yanks = plan["decisions"]
                .as_array()
                .is_some_and(|all| all.iter().any(|d| d["yank"] == true));
            let verb = match (*dry_run, yanks) {
                (true, false) => "would remove",
                (false, false) => "removed",
                (true, true) => "would yank",
                (false, true) => "yanked",
            };
            println!("{verb} {}, kept {}", plan["removed"], plan["kept"]);
        }
    }
    Ok(())
}

pub fn gc(remote: &Remote) -> Result<()> {
    let collected = remote.call("POST", "/api/v1/gc", None)?;
    println!(
        "reclaimed {} blobs, {} bytes in {} ms",
        collected["blobs"], collected["bytes"], collected["millis"]
    );
    Ok(())
}

pub fn audit(args: &AuditArgs) -> Result<()> {
    let events = args
        .remote
        .call("GET", &format!("/api/v1/audit?limit={}", args.limit), None)?;
    for event in events.as_array().into_iter().flatten() {
        println!(
            "{}  {}  {}  {}",
            wharf_formats::dates::iso(event["time"].as_u64().unwrap_or(0)),
            event["principal"].as_str().unwrap_or(""),
            event["action"].as_str().unwrap_or(""),
            event["target"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::reference;

    #[test]
    fn references() {
        let parsed = |t: &str| reference(t).unwrap();
        assert_eq!(
            parsed("docker/app@sha256:ab"),
            serde_json::json!({"repository": "docker", "package": "app", "version": "sha256:ab"})
        );
        assert_eq!(
            parsed("docker/team/app:1.0"),
            serde_json::json!({"repository": "docker", "package": "team/app", "tag": "1.0"})
        );
        assert_eq!(
            parsed("npm/@acme/util@1.2.0"),
            serde_json::json!({"repository": "npm", "package": "@acme/util", "version": "1.2.0"})
        );
        assert_eq!(
            parsed("npm/@acme/util:beta"),
            serde_json::json!({"repository": "npm", "package": "@acme/util", "tag": "beta"})
        );
        for bad in ["docker", "docker/app", "/app:1", "docker/:1", "docker/app@"] {
            assert!(reference(bad).is_err(), "{bad}");
        }
    }
}
