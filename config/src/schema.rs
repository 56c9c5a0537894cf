//! The TOML schema: every section and key Wharf reads, with its default.
//!
//! ```toml
//! [server]       listen, public_url, max_upload, max_document, max_manifest, workers
//! [storage]      data_dir, upload_max_age, gc_grace, gc_interval, cache
//! [auth]         anonymous_read, credential_cache
//! [[repository]] name, format, kind = "hosted" | "proxy" | "group", url (proxy), members (group),
//!                allow_overwrite, immutable, retention_action = "delete" | "yank", [[repository.retention]]
//! [[plugin]]     path
//! ```
//!
//! Every struct denies unknown keys, so a misspelt key is an error rather than a silently ignored setting.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::units::{ByteSize, Duration};

/// The formats Wharf ships. Plugins named in `[[plugin]]` may add more.
/// The formats this binary serves without a `[[plugin]]`: built in, or bundled plugins. `generic-builtin` is the
/// built-in twin of the bundled `generic` plugin, kept so one protocol suite can run against both.
pub const BUILTIN_FORMATS: [&str; 7] = [
    "docker",
    "npm",
    "pypi",
    "maven",
    "helm",
    "generic",
    "generic-builtin",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub storage: Storage,
    #[serde(default)]
    pub auth: Auth,
    /// With no `[[repository]]` at all, one hosted repository per built-in format, named after it.
    #[serde(default = "default_repositories", rename = "repository")]
    pub repositories: Vec<Repository>,
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<Plugin>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: Server::default(),
            storage: Storage::default(),
            auth: Auth::default(),
            repositories: default_repositories(),
            plugins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Address to listen on; `WHARF_LISTEN` overrides it.
    pub listen: SocketAddr,
    /// The URL clients reach Wharf at, for absolute links (npm tarball URLs, Location headers). Without it, each
    /// response uses the scheme and host of its request.
    #[serde(deserialize_with = "http_url")]
    pub public_url: Option<String>,
    /// Largest single artifact (blob) a client may upload.
    pub max_upload: ByteSize,
    /// Largest buffered document (a manifest, a package document, a form) a client may send.
    pub max_document: ByteSize,
    /// Largest OCI/Docker manifest a client may push.
    pub max_manifest: ByteSize,
    /// HTTP worker threads; the number of cores when unset.
    pub workers: Option<usize>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            max_upload: ByteSize::gib(10),
            max_document: ByteSize::mib(16),
            max_manifest: ByteSize::mib(4),
            workers: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// Where blobs and metadata live; `WHARF_DATA` overrides it.
    pub data_dir: PathBuf,
    /// Resumable upload sessions untouched for this long are removed at start-up.
    pub upload_max_age: Duration,
    /// How long an unreferenced blob is kept before garbage collection may remove it.
    pub gc_grace: Duration,
    /// How often garbage collection runs on its own; zero: only on demand.
    pub gc_interval: Duration,
    /// Memory the metadata store may use as cache. Filled only as the index is read, so a small store never uses
    /// it; the default holds the index of about 100,000 versions, so that retention and GC over a repository that
    /// size read it from memory rather than back from the file on every pass.
    pub cache: ByteSize,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            data_dir: PathBuf::from("./wharf-data"),
            upload_max_age: Duration::secs(24 * 3600),
            gc_grace: Duration::secs(3600),
            gc_interval: Duration::secs(3600),
            cache: ByteSize::mib(128),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Anyone may read every repository; writes always need a user.
    pub anonymous_read: bool,
    /// How long a verified password stays verified in memory, so clients that send Basic credentials on every
    /// request (docker, helm, mvn) do not pay for an argon2 hash each time. `0s` turns the cache off.
    pub credential_cache: Duration,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            anonymous_read: true,
            credential_cache: Duration::secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Hosted,
    Proxy,
    Group,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    pub name: Spanned<String>,
    pub format: Spanned<String>,
    #[serde(default)]
    pub kind: Kind,
    /// Upstream of a proxy repository.
    pub url: Option<String>,
    /// Member repositories of a group, in lookup order.
    #[serde(default)]
    pub members: Vec<String>,
    /// Lets a client replace a stored version when it asks to (Helm's `?force`); refused otherwise, as
    /// Artifactory's and Nexus's "disable redeploy" do.
    #[serde(default)]
    pub allow_overwrite: bool,
    /// Tags and versions that can never be overwritten, moved or deleted: `true` for all, or patterns
    /// (`["v*", "release-*"]`, `*` and `?` as in a shell).
    #[serde(default)]
    pub immutable: Immutable,
    /// Lifecycle rules, the TOML form of an ECR lifecycle policy; when present they replace the stored policy at
    /// start-up.
    #[serde(default)]
    pub retention: Vec<RetentionRule>,
    /// What retention does to a version it expires: deletes it, or (PyPI) yanks it, so pins still install.
    #[serde(default)]
    pub retention_action: RetentionAction,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionAction {
    #[default]
    Delete,
    Yank,
}

/// One rule of `[[repository.retention]]`: ECR's rule with snake_case names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    pub priority: u32,
    #[serde(default)]
    pub description: String,
    /// "tagged", "untagged" or "any".
    pub select: String,
    #[serde(default)]
    pub tag_prefixes: Vec<String>,
    #[serde(default)]
    pub tag_patterns: Vec<String>,
    /// Keep the newest this many of the selection (ECR's imageCountMoreThan).
    pub keep_last: Option<u64>,
    /// Expire what was pushed more than this many days ago (ECR's sinceImagePushed).
    pub expire_after_days: Option<u64>,
    /// Keep this many most recently pulled of the selection (pulledImageCountMoreThan).
    pub keep_last_pulled: Option<u64>,
    /// Expire what was not pulled (or, never pulled, pushed) in this many days (sinceImagePulled).
    pub expire_unpulled_after_days: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Immutable {
    #[default]
    None,
    All(bool),
    Patterns(Vec<String>),
}

impl Immutable {
    /// As the storage transaction takes them: `true` is the pattern `*`.
    pub fn patterns(&self) -> Vec<String> {
        match self {
            Immutable::All(true) => vec!["*".into()],
            Immutable::Patterns(patterns) => patterns.clone(),
            Immutable::None | Immutable::All(false) => Vec::new(),
        }
    }
}

impl Repository {
    pub fn hosted(name: &str, format: &str) -> Self {
        Repository {
            name: Spanned::new(0..0, name.to_string()),
            format: Spanned::new(0..0, format.to_string()),
            kind: Kind::Hosted,
            url: None,
            members: Vec::new(),
            allow_overwrite: false,
            immutable: Immutable::None,
            retention: Vec::new(),
            retention_action: RetentionAction::Delete,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    /// A WebAssembly component implementing the format world.
    pub path: Spanned<PathBuf>,
}

fn http_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let url = String::deserialize(d)?;
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(Some(url.trim_end_matches('/').to_string()))
    } else {
        Err(serde::de::Error::custom(format!(
            "`{url}` must start with http:// or https://"
        )))
    }
}

fn default_repositories() -> Vec<Repository> {
    BUILTIN_FORMATS
        .iter()
        .map(|f| Repository::hosted(f, f))
        .collect()
}
