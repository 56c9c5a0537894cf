//! The HTTP server: the shared state (`App`), the routes, and `run(listener, app, shutdown)`, which tests call on a
//! port-0 listener and `wharf serve` calls on the configured address.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use wharf_config::{Config, Kind};
use wharf_storage::{AuditEvent, Options, RepositoryRecord, Store, Write, now};

use crate::auth::Auth;
use crate::dispatch::{self, Repo};
use crate::error::{Error, Result};
use crate::observe;

pub struct App {
    pub store: Store,
    pub config: Config,
    pub repos: HashMap<String, Repo>,
    pub auth: Auth,
}

/// What opening the store found and did, for the caller to report.
pub struct Opened {
    pub app: App,
    pub reconciled: wharf_storage::Reconciled,
    /// Set on the first start only: the generated password of `admin`.
    pub admin_password: Option<String>,
}

impl App {
    /// Opens the store, checks that every configured repository can be served, records them, and creates the first
    /// admin on an empty store.
    pub async fn open(config: Config) -> Result<Opened> {
        refuse_unsupported(&config)?;
        let options = Options {
            data_dir: config.storage.data_dir.clone(),
            cache_bytes: config.storage.cache.bytes(),
            upload_max_age: config.storage.upload_max_age.get(),
        };
        let (store, reconciled) = Store::open(options)?;
        // After the store, which creates the data directory the compiled plugins are cached in.
        let formats = formats(&config)?;
        let mut repos = HashMap::new();
        let mut writes = Vec::new();
        for repo in &config.repositories {
            let (name, format) = (repo.name.get_ref().clone(), repo.format.get_ref().clone());
            match store.meta().repository(&name)? {
                Some(known) if known.format != format => {
                    return Err(Error::Invalid(format!(
                        "repository `{name}` holds {} data but the configuration says format `{format}`",
                        known.format
                    )));
                }
                // The immutable patterns live in the record, where the storage transaction reads them.
                Some(known) if known.immutable == repo.immutable.patterns() => {}
                known => writes.push(Write::PutRepository(RepositoryRecord {
                    name: name.clone(),
                    format: format.clone(),
                    created: known.map_or_else(now, |k| k.created),
                    immutable: repo.immutable.patterns(),
                })),
            }
            // A format without an implementation yet (docker, npm, ... until their issues land) is configured but
            // not served: its requests get 404 from dispatch rather than a half-working endpoint.
            if let Some(format) = formats.get(&format) {
                repos.insert(
                    name.clone(),
                    Repo {
                        name,
                        format: format.clone(),
                        allow_overwrite: repo.allow_overwrite,
                        retention_action: repo.retention_action,
                    },
                );
            }
        }
        for repo in config
            .repositories
            .iter()
            .filter(|r| !r.retention.is_empty())
        {
            writes.push(crate::retention::from_config(repo)?);
        }
        if !writes.is_empty() {
            store.apply(&writes, &[]).await?;
        }
        let admin_password = first_admin(&store).await?;
        let signer = crate::bearer::Signer::load(&store).await?;
        let auth = Auth::new(store.clone(), config.auth.credential_cache.get()).with_signer(signer);
        Ok(Opened {
            app: App {
                store,
                config,
                repos,
                auth,
            },
            reconciled,
            admin_password,
        })
    }
}

fn refuse_unsupported(config: &Config) -> Result<()> {
    for repo in &config.repositories {
        if repo.kind != Kind::Hosted {
            let kind = if repo.kind == Kind::Proxy {
                "proxy"
            } else {
                "group"
            };
            return Err(Error::Unsupported(format!(
                "repository `{}`: kind `{kind}` is not supported yet (only `hosted`)",
                repo.name.get_ref()
            )));
        }
    }
    Ok(())
}

/// Every format by name: the built-in ones, then the bundled plugins, then `[[plugin]]` files. A plugin takes the
/// name of a built-in format it shares it with; the built-in one stays reachable as `<name>-builtin`.
fn formats(config: &Config) -> Result<HashMap<String, Arc<dyn wharf_formats::Format>>> {
    let mut formats: HashMap<String, Arc<dyn wharf_formats::Format>> = wharf_formats::builtin()
        .into_iter()
        .map(|f| (f.name().to_string(), f))
        .collect();
    let cache = std::path::absolute(config.storage.data_dir.join("plugin-cache"))
        .map_err(|e| Error::io("cannot resolve the data directory", e))?;
    let host = wharf_plugins::Host::new(wharf_plugins::Limits::default(), Some(cache))?;
    let mut loaded = Vec::new();
    for (name, wasm) in wharf_plugins::bundled() {
        loaded.push(host.load(name, wasm)?);
    }
    for plugin in &config.plugins {
        let path = plugin.path.get_ref();
        let wasm = std::fs::read(path)
            .map_err(|e| Error::io(format!("cannot read plugin {}", path.display()), e))?;
        loaded.push(host.load(&path.display().to_string(), &wasm)?);
    }
    for plugin in loaded {
        let name = wharf_formats::Format::name(&plugin).to_string();
        if let Some(builtin) = formats.remove(&name) {
            formats.insert(format!("{name}-builtin"), builtin);
        }
        formats.insert(name, Arc::new(plugin));
    }
    Ok(formats)
}

/// On an empty store, creates `admin` with a random password, written to `<data>/initial-admin-password` (0600).
async fn first_admin(store: &Store) -> Result<Option<String>> {
    if !store.meta().users()?.is_empty() {
        return Ok(None);
    }
    let password = crate::auth::random_secret(18);
    let path = store.data_dir().join("initial-admin-password");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    file.write_all(format!("{password}\n").as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    let event = AuditEvent {
        time: 0,
        principal: "system".into(),
        action: "user-add".into(),
        target: "admin".into(),
    };
    store
        .apply(
            &[crate::auth::new_user("admin", &password, true)?],
            &[event],
        )
        .await?;
    Ok(Some(password))
}

/// The routes, shared by `run` and the in-process tests.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/healthz",
        web::get().to(|| async { HttpResponse::Ok().body("ok\n") }),
    )
    .route("/readyz", web::get().to(readyz))
    .route("/metrics", web::get().to(observe::render_metrics))
    .service(web::resource("/repository/{repo}/{tail:.*}").to(dispatch::repository))
    .service(web::resource("/api/repository/{repo}/charts{tail:.*}").to(dispatch::chartmuseum))
    .configure(crate::v2::routes)
    .configure(crate::api::routes);
}

/// Ready when the store is open and takes writes.
async fn readyz(app: web::Data<App>) -> HttpResponse {
    match app.store.ready() {
        Ok(()) => HttpResponse::Ok().body("ready\n"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            HttpResponse::ServiceUnavailable().body("not ready: the store does not take writes\n")
        }
    }
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish (up to 30 s).
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    observe::metrics();
    crate::gc::schedule(app.clone());
    crate::background::later_checksums(app.store.clone());
    let workers = app.config.server.workers;
    let data = web::Data::from(app);
    let mut server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .wrap(from_fn(observe::middleware))
            .configure(routes)
    })
    // Small answers (manifests, documents) are written in pieces: without TCP_NODELAY, Nagle's algorithm and the
    // client's delayed ACK hold each one back for tens of milliseconds.
    .on_connect(|conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .disable_signals()
    .shutdown_timeout(30);
    if let Some(workers) = workers {
        server = server.workers(workers.max(1));
    }
    let server = server.listen(listener)?.run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing requests in flight");
        handle.stop(true).await;
    });
    server.await
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed at the call, not at the first poll, so a signal that
/// comes right after "listening" is a graceful stop, not the default death.
pub fn signals() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
