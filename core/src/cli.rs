//! The command line: `serve`, `check-config`, `scrub`, `user`, `token`, `yank`, `promote`, `retention`, `gc` and `audit`. Each command prints one clear line on
//! failure and exits non-zero (2 for a configuration with mistakes, 1 otherwise); none panics on bad input.
//!
//! `scrub`, `user` and `token` open the data directory themselves, so they run while the server is stopped (the
//! metadata store admits one process at a time and says so). `yank`, `promote`, `retention`, `gc` and `audit` ask a running server, through
//! the management API, with an API token (`remote.rs`).

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use wharf_config::Config;
use wharf_storage::{AuditEvent, Options, Store, Write};

use crate::error::{Error, Result};
use crate::observe::{LogFormat, init_logging};
use crate::remote::{self, AuditArgs, PromoteArgs, Remote, RetentionCommand, YankArgs};

#[derive(Parser)]
#[command(
    name = "wharf",
    version,
    about = "One artifact repository for every package format"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (with no configuration: 127.0.0.1:8080, data in ./wharf-data, one repository per format).
    Serve(ServeArgs),
    /// Check a configuration file and report every mistake with file:line:column.
    CheckConfig { file: PathBuf },
    /// Re-hash every blob and list those missing or changed; exits 1 if there are any.
    Scrub(StoreArgs),
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Yank a version on a running server (pip then skips it unless asked for it exactly), or un-yank it.
    Yank(YankArgs),
    /// Copy (or --move) a version with its tags to another repository of the same format, without moving bytes.
    Promote(PromoteArgs),
    /// Set a repository's retention policy, or run it (--dry-run prints the plan and changes nothing).
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Run garbage collection on a running server now (an administrator's token).
    Gc(Remote),
    /// Print a running server's newest audit events (an administrator's token).
    Audit(AuditArgs),
}

#[derive(Args)]
struct StoreArgs {
    /// Configuration file (TOML).
    #[arg(long, short, env = "WHARF_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory; overrides `storage.data_dir`.
    #[arg(long, env = "WHARF_DATA")]
    data: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on; overrides `server.listen`.
    #[arg(long, env = "WHARF_LISTEN")]
    listen: Option<SocketAddr>,
    #[arg(long, value_enum, default_value = "human")]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; reads the password from the first line of standard input.
    Add {
        name: String,
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List users.
    List(StoreArgs),
    /// Set a user's password; reads it from the first line of standard input.
    Passwd {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token for a user and print it (shown only this once).
    Create {
        user: String,
        /// A label to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tokens (id, user, label, created), never their secrets.
    List(StoreArgs),
    /// Revoke a token by its id.
    Revoke {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = actix_web::rt::System::new().block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::CheckConfig { file } => wharf_config::load(&file)
                .map(|_| println!("{}: ok", file.display()))
                .map_err(Error::from),
            Command::Scrub(args) => scrub(&args),
            Command::User { command } => user(command).await,
            Command::Token { command } => token(command).await,
            Command::Yank(args) => remote::yank(&args),
            Command::Promote(args) => remote::promote(&args),
            Command::Retention { command } => remote::retention(&command),
            Command::Gc(args) => remote::gc(&args),
            Command::Audit(args) => remote::audit(&args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Config(e @ wharf_config::Error::Invalid(_))) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn load_config(args: &StoreArgs) -> Result<Config> {
    let mut config = match &args.config {
        Some(path) => wharf_config::load(path)?,
        None => Config::default(),
    };
    if let Some(data) = &args.data {
        config.storage.data_dir = data.clone();
    }
    Ok(config)
}

async fn serve(args: ServeArgs) -> Result<()> {
    let mut config = load_config(&args.store)?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    let _log = init_logging(args.log_format);
    let addr = config.server.listen;
    let opened = crate::App::open(config).await?;
    let listener = std::net::TcpListener::bind(addr).map_err(|source| Error::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the listening address", e))?;
    if let Some(password) = &opened.admin_password {
        println!(
            "Created user `admin` with password {password} (also in {}; change it with `wharf user passwd admin`)",
            opened
                .app
                .store
                .data_dir()
                .join("initial-admin-password")
                .display()
        );
    }
    let r = &opened.reconciled;
    if r.temp_files_removed + r.sessions_expired > 0 {
        tracing::info!(
            temp_files = r.temp_files_removed,
            sessions = r.sessions_expired,
            "removed abandoned uploads"
        );
    }
    let app = Arc::new(opened.app);
    reconcile_in_background(app.store.clone());
    let stop = crate::server::signals();
    tracing::info!(data = %app.store.data_dir().display(), "listening on http://{local}");
    crate::run(listener, app, stop)
        .await
        .map_err(|e| Error::io("server failed", e))
}

/// Compares the blob files with the index off the request path; what it finds goes to the log.
fn reconcile_in_background(store: Store) {
    std::thread::spawn(move || match store.reconcile_index() {
        Ok(report) => {
            for digest in &report.missing {
                tracing::error!(%digest, "blob is indexed but its file is missing");
            }
            if report.orphans_queued > 0 {
                tracing::info!(
                    count = report.orphans_queued,
                    "unreferenced blobs queued for garbage collection"
                );
            }
        }
        Err(e) => tracing::error!(error = %e, "reconciliation failed"),
    });
}

fn open_store(args: &StoreArgs) -> Result<Store> {
    let config = load_config(args)?;
    let options = Options {
        data_dir: config.storage.data_dir.clone(),
        cache_bytes: config.storage.cache.bytes(),
        upload_max_age: config.storage.upload_max_age.get(),
    };
    if !config.storage.data_dir.join("meta").exists() {
        return Err(Error::Invalid(format!(
            "no Wharf data in {}",
            config.storage.data_dir.display()
        )));
    }
    Ok(Store::open(options)?.0)
}

fn scrub(args: &StoreArgs) -> Result<()> {
    let store = open_store(args)?;
    let report = store.scrub()?;
    for digest in &report.missing {
        println!("missing  {digest}");
    }
    for (expected, actual) in &report.mismatched {
        println!("mismatch {expected} (file hashes to {actual})");
    }
    println!(
        "{} blobs checked, {} bytes verified, {} missing, {} mismatched",
        report.checked,
        report.bytes,
        report.missing.len(),
        report.mismatched.len()
    );
    if report.missing.is_empty() && report.mismatched.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid("scrub found damaged blobs".into()))
    }
}

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::io("cannot read the password from standard input", e))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn audit(action: &str, target: &str) -> AuditEvent {
    AuditEvent {
        time: 0,
        principal: "cli".into(),
        action: action.into(),
        target: target.into(),
    }
}

async fn user(command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Add { name, admin, store } => {
            let store = open_store(&store)?;
            let password = read_password()?;
            store
                .apply(
                    &[crate::auth::new_user(&name, &password, admin)?],
                    &[audit("user-add", &name)],
                )
                .await?;
            println!("added user {name}");
        }
        UserCommand::List(args) => {
            for user in open_store(&args)?.meta().users()? {
                println!(
                    "{}\t{}",
                    user.name,
                    if user.admin { "admin" } else { "user" }
                );
            }
        }
        UserCommand::Passwd { name, store } => {
            let store = open_store(&store)?;
            let mut user = store
                .meta()
                .user(&name)?
                .ok_or_else(|| Error::Invalid(format!("no user named {name}")))?;
            let password = read_password()?;
            user.password_hash = crate::auth::checked_password_hash(&password)?;
            store
                .apply(
                    &[Write::PutUser {
                        user,
                        replace: true,
                    }],
                    &[audit("user-passwd", &name)],
                )
                .await?;
            println!("password of {name} changed");
        }
    }
    Ok(())
}

async fn token(command: TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create { user, name, store } => {
            let store = open_store(&store)?;
            store
                .meta()
                .user(&user)?
                .ok_or_else(|| Error::Invalid(format!("no user named {user}")))?;
            let (secret, write) = crate::auth::new_token(&user, &name);
            store
                .apply(&[write], &[audit("token-create", &user)])
                .await?;
            println!("{secret}");
        }
        TokenCommand::List(args) => {
            for token in open_store(&args)?.meta().tokens()? {
                println!(
                    "{}\t{}\t{}\t{}",
                    token.id, token.user, token.name, token.created
                );
            }
        }
        TokenCommand::Revoke { id, store } => {
            let store = open_store(&store)?;
            let token = store
                .meta()
                .token(&id)?
                .ok_or_else(|| Error::Invalid(format!("no token with id {id}")))?;
            store
                .apply(
                    &[Write::DeleteToken { id: id.clone() }],
                    &[audit("token-revoke", &token.user)],
                )
                .await?;
            println!("revoked token {id} of {}", token.user);
        }
    }
    Ok(())
}
