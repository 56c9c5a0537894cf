//! `helm` as a plugin: a chart repository. `index.yaml` is generated from the stored charts; charts and their `.prov`
//! files are served under `charts/`; the ChartMuseum API uploads (`POST api/charts`, a multipart form with `chart`
//! and `prov`, `?force`), lists, describes and deletes. A chart is a version of a package named after the chart, so
//! retention and GC see it like any other. Errors come in ChartMuseum's `{"error": "..."}` shape, which helm-push
//! prints.

mod chart;

use chart::{Chart, bad, chart_path};
use serde_json::{Value, json};
use wharf_plugin_sdk::*;

struct Helm;

/// `METHOD path` parsed once.
enum Endpoint {
    Index,
    /// A chart or its `.prov`, by its path in the repository.
    File(String),
    Upload {
        force: bool,
    },
    ListAll,
    ListChart(String),
    Describe(String, String),
    Delete(String, String),
}

impl Endpoint {
    fn parse(head: &RequestHead) -> Result<Endpoint, Problem> {
        let path = safe_path(&head.path)?;
        let segments: Vec<&str> = path.split('/').collect();
        let read = matches!(head.method.as_str(), "GET" | "HEAD");
        let name = |s: &str| match chart::valid_name(s) {
            true => Ok(s.to_string()),
            false => Err(bad(format!("`{s}` is not a chart name"))),
        };
        Ok(match (head.method.as_str(), segments.as_slice()) {
            (_, ["index.yaml"]) if read => Endpoint::Index,
            (_, ["charts", _]) if read => Endpoint::File(path.clone()),
            ("POST", ["api", "charts"]) => Endpoint::Upload {
                force: forced(head.query.as_deref()),
            },
            (_, ["api", "charts"]) if read => Endpoint::ListAll,
            (_, ["api", "charts", chart]) if read => Endpoint::ListChart(name(chart)?),
            (_, ["api", "charts", chart, version]) if read => {
                Endpoint::Describe(name(chart)?, version.to_string())
            }
            ("DELETE", ["api", "charts", chart, version]) => {
                Endpoint::Delete(name(chart)?, version.to_string())
            }
            _ if read || head.method == "DELETE" => return Err(not_found(&path)),
            _ => {
                return Err(problem(
                    405,
                    "METHOD_NOT_ALLOWED",
                    "method not allowed here",
                ));
            }
        })
    }
}

/// `?force`, `?force=true` or `?force=1`, as helm-push and ChartMuseum spell it.
fn forced(query: Option<&str>) -> bool {
    query.unwrap_or("").split('&').any(|pair| {
        matches!(
            pair.split_once('=').unwrap_or((pair, "")),
            ("force", "" | "true" | "1")
        )
    })
}

fn not_found(what: &str) -> Problem {
    problem(404, "NOT_FOUND", format!("{what} not found"))
}

fn chart_not_found(name: &str, version: Option<&str>) -> Problem {
    match version {
        Some(version) => not_found(&format!("chart {name} version {version}")),
        None => not_found(&format!("chart {name}")),
    }
}

fn json_response(status: u16, value: &Value) -> Response {
    response(status, "application/json", value.to_string())
}

/// The stored entry of one version; `latest` names the highest.
fn describe(name: &str, version: &str) -> Result<Value, Problem> {
    let versions = chart::versions(name);
    let found = match version {
        "latest" => versions.into_iter().next(),
        _ => versions.into_iter().find(|v| v["version"] == version),
    };
    found.ok_or_else(|| chart_not_found(name, Some(version)))
}

/// The writes that store an uploaded chart (and its provenance file), or why not.
fn upload(head: &RequestHead, force: bool, form: &Form) -> Result<Commit, Problem> {
    let file = |field: &str| form.files.iter().find(|f| f.field == field);
    let Some(upload) = file("chart") else {
        return Err(bad(
            "the form has no `chart` file (send it as -F chart=@mychart-0.1.0.tgz)",
        ));
    };
    let chart = chart::read(&upload.blob.digest)?;
    let prov = file("prov").map(|f| &f.blob);
    if let Some(prov) = prov {
        check_prov(prov)?;
    }
    let Chart { name, version, .. } = &chart;
    let path = chart_path(name, version);
    let replace = force && head.allow_overwrite;
    if store::get_version(name, version).is_some() && !replace {
        let why = match head.allow_overwrite {
            true => "add ?force to replace it",
            false => "this repository does not allow overwriting a chart",
        };
        return Err(problem(
            409,
            "CONFLICT",
            format!(
                "file already exists: {} ({why})",
                chart::file_name(name, version)
            ),
        ));
    }
    let created = store::now();
    let asset = |blob: &BlobInfo, content_type: &str| Asset {
        digest: blob.digest.clone(),
        size: blob.size,
        package: Some(name.clone()),
        version: Some(version.clone()),
        content_type: Some(content_type.into()),
        created,
    };
    let entry = chart::entry(&chart, &upload.blob.digest, created);
    let mut blobs = vec![upload.blob.digest.clone()];
    let mut writes = vec![Write::PutAsset(PutAsset {
        path: path.clone(),
        asset: asset(&upload.blob, "application/gzip"),
        replace,
    })];
    let prov_path = format!("{path}.prov");
    match prov {
        Some(prov) => {
            blobs.push(prov.digest.clone());
            writes.push(Write::PutAsset(PutAsset {
                path: prov_path,
                asset: asset(prov, "application/pgp-signature"),
                replace,
            }));
        }
        // A forced upload without a signature must not leave the old chart's signature beside the new chart.
        None if store::get_asset(&prov_path).is_some() => {
            writes.push(Write::DeleteAsset(prov_path))
        }
        None => {}
    }
    writes.push(Write::PutVersion(PutVersion {
        package: name.clone(),
        version: version.clone(),
        record: Version {
            blobs,
            metadata: entry.to_string(),
            created,
        },
        replace,
    }));
    Ok(commit(
        writes,
        json_response(201, &json!({ "saved": true })),
    ))
}

/// The writes that remove a chart version, its file and its provenance file.
fn removal(name: String, version: String) -> Vec<Write> {
    let path = chart_path(&name, &version);
    let prov = format!("{path}.prov");
    let mut writes = vec![
        Write::DeleteVersion((name, version)),
        Write::DeleteAsset(path),
    ];
    if store::get_asset(&prov).is_some() {
        writes.push(Write::DeleteAsset(prov));
    }
    writes
}

/// A provenance file is a small PGP clear-signed message; anything else would be served to `helm verify` as one.
fn check_prov(prov: &BlobInfo) -> Result<(), Problem> {
    const HEADER: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----";
    if prov.size > chart::MAX_PROV {
        return Err(bad("the provenance file is larger than 1 MiB"));
    }
    let start = store::read_range(&prov.digest, 0, HEADER.len() as u32).unwrap_or_default();
    if start != HEADER {
        return Err(bad(
            "the provenance file is not a PGP clear-signed message (what `helm package --sign` makes)",
        ));
    }
    Ok(())
}

impl Format for Helm {
    fn describe() -> PluginInfo {
        PluginInfo {
            format: "helm".into(),
            api_version: API_VERSION,
        }
    }

    fn classify(head: RequestHead) -> Result<Access, Problem> {
        Ok(match Endpoint::parse(&head)? {
            Endpoint::Upload { .. } => Access::Write,
            Endpoint::Delete(..) => Access::Delete,
            _ => Access::Read,
        })
    }

    fn handle(head: RequestHead) -> Result<Plan, Problem> {
        let respond = |value: Value| Ok(Plan::Respond(json_response(200, &value)));
        match Endpoint::parse(&head)? {
            Endpoint::Index => Ok(Plan::Respond(response(
                200,
                "application/x-yaml",
                chart::index(store::now())?,
            ))),
            Endpoint::File(path) => {
                let asset = store::get_asset(&path).ok_or_else(|| not_found(&path))?;
                note_file_pull(&head, &asset);
                let content_type = asset
                    .content_type
                    .unwrap_or("application/octet-stream".into());
                Ok(Plan::Serve(ServeBlob {
                    digest: asset.digest,
                    status: 200,
                    headers: vec![("content-type".into(), content_type)],
                }))
            }
            Endpoint::Upload { .. } => Ok(Plan::Form(FormBody {
                // Helm's own bound on a whole chart, inflated.
                max_size: 100 * 1024 * 1024,
                max_files: 2,
                want: Want {
                    sha1: false,
                    md5: false,
                    sha512: false,
                },
            })),
            Endpoint::ListAll => respond(Value::Object(chart::all())),
            Endpoint::ListChart(name) => match chart::versions(&name) {
                versions if versions.is_empty() => Err(chart_not_found(&name, None)),
                versions => respond(Value::Array(versions)),
            },
            Endpoint::Describe(name, version) => respond(describe(&name, &version)?),
            Endpoint::Delete(name, version) => {
                store::get_version(&name, &version)
                    .ok_or_else(|| chart_not_found(&name, Some(&version)))?;
                Ok(Plan::Buffer(0))
            }
        }
    }

    fn commit_ingested(_head: RequestHead, _blob: BlobInfo) -> Result<Commit, Problem> {
        Err(problem(
            500,
            "INTERNAL_ERROR",
            "helm never ingests a bare body",
        ))
    }

    fn commit_buffered(head: RequestHead, _body: Vec<u8>) -> Result<Commit, Problem> {
        let Endpoint::Delete(name, version) = Endpoint::parse(&head)? else {
            return Err(problem(
                405,
                "METHOD_NOT_ALLOWED",
                "method not allowed here",
            ));
        };
        Ok(commit(
            removal(name, version),
            json_response(200, &json!({ "deleted": true })),
        ))
    }

    fn commit_form(head: RequestHead, form: Form) -> Result<Commit, Problem> {
        match Endpoint::parse(&head)? {
            Endpoint::Upload { force } => upload(&head, force, &form),
            _ => Err(problem(
                405,
                "METHOD_NOT_ALLOWED",
                "method not allowed here",
            )),
        }
    }

    /// A chart version goes with its file and provenance, as `DELETE api/charts/<name>/<version>` does.
    fn expire(package: String, version: String) -> Result<Vec<Write>, Problem> {
        Ok(removal(package, version))
    }

    /// ChartMuseum's error shape: helm-push prints `error`.
    fn render(problem: Problem) -> Response {
        json_response(problem.status, &json!({ "error": problem.message }))
    }
}

wharf_plugin_sdk::export!(Helm);
