//! The commands that act on a running server through its management API (`/api/v1/`, see `api.rs`): `yank`, `gc`
//! and `audit`. They authenticate with an API token, as a CI job would, and print one line per result.

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
        let text = response.body_mut().read_to_string().unwrap_or_default();
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
