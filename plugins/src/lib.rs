//! The WebAssembly format-plugin host: a component built against `plugins/wit/format.wit` becomes a `Format` like
//! the built-in ones, and the host moves every byte.
//!
//! - One engine for all plugins, with a pooling allocator (a fresh instance per call costs microseconds) and epoch
//!   interruption (a thread ticks every 10 ms; a call past its deadline traps).
//! - A component is compiled once per process and kept by the sha256 of its bytes; given a cache directory
//!   (`<data_dir>/plugin-cache`), wasmtime keeps the compiled code there too, so a restart loads in milliseconds
//!   what took cranelift most of a second to compile. `InstancePre` resolves imports once, so each call only
//!   instantiates.
//! - Each call runs with a memory limit and a time limit, on the host's blocking pool (`Format::isolated`), never on
//!   an HTTP worker: a trap, a timeout or an out-of-memory becomes a clear error for that request alone, counted in
//!   `/metrics` (`wharf_plugin_failures_total`) and logged; the server and every other repository keep serving.
//! - WASI is there for the standard library only: no files, no network, no environment, no arguments.

mod convert;
mod host;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Trap,
};
use wasmtime_wasi::WasiCtxBuilder;
use wharf_formats::{Access, Commit, Context, Form, Format, Plan, Problem, RequestHead, Response};
use wharf_storage::BlobInfo;

pub mod bindings {
    wasmtime::component::bindgen!({ world: "format-plugin", path: "wit" });
}

use bindings::{FormatPlugin, FormatPluginPre};
use host::State;

/// Version of the format contract (`plugins/wit/format.wit`) a plugin must be built against.
pub const API_VERSION: u32 = 2;

/// How much of an instance's memory and tables is kept mapped between calls and reset in place. Without it each
/// call ends in an `madvise`, whose TLB shootdown interrupts every core. HEAD of a small file through the generic
/// plugin, 16 connections, 2 cores: 5,400 requests/s with wasmtime's defaults; 6,600 with the tables kept; 15,500
/// with the memory kept too and its written pages found with Linux's `PAGEMAP_SCAN` (6.7 on), 8,000 of that
/// without the tables. It costs each warm slot at most its written pages: 2.5 MiB more RSS after that load.
const KEEP: usize = 2 << 20;
const KEEP_TABLE: usize = 64 << 10;

/// How often the epoch ticks: the granularity of every time limit.
const TICK: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error("plugin {name}: {message}")]
    Load { name: String, message: String },
}

/// The limits each call runs under.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub memory: usize,
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 64 * 1024 * 1024,
            timeout: Duration::from_secs(2),
        }
    }
}

/// The engine, the linker with the host's imports, and the compiled components by hash.
pub struct Host {
    engine: Engine,
    linker: Linker<State>,
    compiled: Mutex<HashMap<[u8; 32], Component>>,
    limits: Limits,
}

impl Host {
    /// A host whose calls run under `limits`; with `cache`, compiled code is kept in that directory. (wasmtime's
    /// cache: it checks an entry's engine and version and writes atomically, and the `unsafe` of mapping stored
    /// code stays in wasmtime rather than in this workspace, which forbids it.)
    pub fn new(limits: Limits, cache: Option<PathBuf>) -> Result<Arc<Host>, Error> {
        let engine_error = |e: wasmtime::Error| Error::Engine(format!("{e:#}"));
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_core_instances(1024)
            .total_memories(256)
            .total_tables(512)
            .max_memory_size(limits.memory)
            .table_keep_resident(KEEP_TABLE);
        // Without the scan, keeping memory resident means a `memset` of all of it after every call, which is
        // slower than the `madvise` it saves (4,600 requests/s against 5,400 in the measurement below).
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.linear_memory_keep_resident(KEEP)
                .pagemap_scan(wasmtime::Enabled::Yes);
        }
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if let Some(directory) = cache {
            let mut settings = CacheConfig::new();
            settings.with_directory(directory);
            config.cache(Some(Cache::new(settings).map_err(engine_error)?));
        }
        let engine = Engine::new(&config).map_err(engine_error)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_error)?;
        FormatPlugin::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
            .map_err(engine_error)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(|e| Error::Engine(e.to_string()))?;
        Ok(Arc::new(Host {
            engine,
            linker,
            compiled: Mutex::new(HashMap::new()),
            limits,
        }))
    }

    /// Compiles (or finds compiled) a component, checks its contract version and returns it as a `Format`.
    pub fn load(self: &Arc<Host>, label: &str, wasm: &[u8]) -> Result<PluginFormat, Error> {
        let load_error = |message: String| Error::Load {
            name: label.to_string(),
            message,
        };
        let hash = *wharf_storage::Digest::of(wasm).as_bytes();
        let component = {
            let mut compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
            match compiled.get(&hash) {
                Some(component) => component.clone(),
                None => {
                    let component = Component::new(&self.engine, wasm)
                        .map_err(|e| load_error(format!("not a valid component: {e:#}")))?;
                    compiled.insert(hash, component.clone());
                    component
                }
            }
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(FormatPluginPre::new)
            .map_err(|e| load_error(format!("its imports cannot be satisfied: {e:#}")))?;
        let mut plugin = PluginFormat {
            name: label.to_string(),
            host: self.clone(),
            pre,
        };
        // On a thread of its own: loading happens while the server starts, on its async runtime.
        let info = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    plugin.call(None, "", |store, p| {
                        p.wharf_format_handler().call_describe(store)
                    })
                })
                .join()
                .unwrap_or_else(|_| Err(convert::misbehaved("describe panicked")))
        })
        .map_err(|p| load_error(p.detail.unwrap_or(p.message)))?;
        if info.api_version != API_VERSION {
            return Err(load_error(format!(
                "built against contract version {}, this Wharf speaks {API_VERSION}",
                info.api_version
            )));
        }
        plugin.name = info.format;
        Ok(plugin)
    }
}

/// A loaded plugin, serving as a `Format`.
pub struct PluginFormat {
    name: String,
    host: Arc<Host>,
    pre: FormatPluginPre<State>,
}

/// Tracks whether the plugin asked for more memory than its limit, so the failure can say so.
pub(crate) struct MemoryLimit {
    max: usize,
    denied: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.denied |= desired > self.max;
        Ok(desired <= self.max)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl PluginFormat {
    /// One call into a fresh instance, under the limits. It must not run on an async runtime's thread: WASI's
    /// synchronous calls `block_on` the runtime's handle (the host makes these calls on its blocking pool, and
    /// `load` on a thread of its own).
    fn call<R>(
        &self,
        store: Option<&wharf_storage::Store>,
        repo: &str,
        f: impl FnOnce(&mut wasmtime::Store<State>, &FormatPlugin) -> wasmtime::Result<R>,
    ) -> Result<R, Problem> {
        let limits = self.host.limits;
        let state = State {
            store: store.cloned(),
            repo: repo.to_string(),
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            limits: MemoryLimit {
                max: limits.memory,
                denied: false,
            },
        };
        let mut wstore = wasmtime::Store::new(&self.host.engine, state);
        wstore.limiter(|s| &mut s.limits);
        let ticks = (limits.timeout.as_millis() / TICK.as_millis()).max(1) as u64;
        wstore.set_epoch_deadline(ticks);
        wstore.epoch_deadline_trap();
        let result = self
            .pre
            .instantiate(&mut wstore)
            .and_then(|plugin| f(&mut wstore, &plugin));
        result.map_err(|e| self.failure(&e, wstore.data().limits.denied))
    }

    /// A trap, a timeout or an out-of-memory, told plainly, counted and logged.
    fn failure(&self, error: &wasmtime::Error, out_of_memory: bool) -> Problem {
        let limits = self.host.limits;
        let (kind, status, message) = if out_of_memory {
            (
                "memory",
                500,
                format!(
                    "the `{}` format plugin ran out of its memory limit ({} MiB)",
                    self.name,
                    limits.memory / (1024 * 1024)
                ),
            )
        } else if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            (
                "timeout",
                503,
                format!(
                    "the `{}` format plugin ran past its time limit ({} ms)",
                    self.name,
                    limits.timeout.as_millis()
                ),
            )
        } else {
            (
                "trap",
                500,
                format!("the `{}` format plugin failed (it trapped)", self.name),
            )
        };
        metrics::counter!("wharf_plugin_failures_total", "format" => self.name.clone(), "kind" => kind)
            .increment(1);
        tracing::warn!(format = %self.name, kind, error = %format!("{error:#}"), "plugin call failed");
        Problem {
            detail: Some(format!("{error:#}")),
            ..Problem::new(status, "PLUGIN_FAILED", message)
        }
    }
}

impl Format for PluginFormat {
    fn name(&self) -> &str {
        &self.name
    }

    fn classify(&self, head: &RequestHead) -> Result<Access, Problem> {
        let req = convert::head(head);
        self.call(None, &head.repository, |s, p| {
            p.wharf_format_handler().call_classify(s, &req)
        })?
        .map(convert::access)
        .map_err(convert::problem_in)
    }

    fn handle(&self, ctx: &Context<'_>, head: &RequestHead) -> Result<Plan, Problem> {
        let req = convert::head(head);
        let planned = self.call(Some(ctx.store), &head.repository, |s, p| {
            p.wharf_format_handler().call_handle(s, &req)
        })?;
        convert::plan(planned.map_err(convert::problem_in)?)
    }

    fn commit_ingested(
        &self,
        ctx: &Context<'_>,
        head: &RequestHead,
        blob: &BlobInfo,
    ) -> Result<Commit, Problem> {
        let (req, blob) = (convert::head(head), convert::blob(blob));
        let committed = self.call(Some(ctx.store), &head.repository, |s, p| {
            p.wharf_format_handler()
                .call_commit_ingested(s, &req, &blob)
        })?;
        convert::commit(committed.map_err(convert::problem_in)?, &head.repository)
    }

    fn commit_buffered(
        &self,
        ctx: &Context<'_>,
        head: &RequestHead,
        body: &[u8],
    ) -> Result<Commit, Problem> {
        let req = convert::head(head);
        let committed = self.call(Some(ctx.store), &head.repository, |s, p| {
            p.wharf_format_handler().call_commit_buffered(s, &req, body)
        })?;
        convert::commit(committed.map_err(convert::problem_in)?, &head.repository)
    }

    fn commit_form(
        &self,
        ctx: &Context<'_>,
        head: &RequestHead,
        form: &Form,
    ) -> Result<Commit, Problem> {
        let (req, form) = (convert::head(head), convert::form(form));
        let committed = self.call(Some(ctx.store), &head.repository, |s, p| {
            p.wharf_format_handler().call_commit_form(s, &req, &form)
        })?;
        convert::commit(committed.map_err(convert::problem_in)?, &head.repository)
    }

    fn expire(
        &self,
        ctx: &Context<'_>,
        repo: &str,
        item: &wharf_formats::retention::Item,
    ) -> Result<Vec<wharf_storage::Write>, Problem> {
        let expired = self.call(Some(ctx.store), repo, |s, p| {
            p.wharf_format_handler()
                .call_expire(s, &item.package, &item.version)
        })?;
        convert::writes(expired.map_err(convert::problem_in)?, repo)
    }

    fn isolated(&self) -> bool {
        true
    }

    /// The plugin's own error body; if the plugin cannot even render (it is the one failing), plain text.
    fn render(&self, problem: &Problem) -> Response {
        if problem.code == "PLUGIN_FAILED" {
            return Response::plain_error(problem);
        }
        let out = convert::problem_out(problem);
        self.call(None, "", |s, p| {
            p.wharf_format_handler().call_render(s, &out)
        })
        .and_then(convert::response)
        .unwrap_or_else(|failed| Response::plain_error(&failed))
    }
}

/// The plugins built into the binary (by `build.rs`, for wasm32-wasip2): configuration name and component bytes.
/// Empty when the wasm32-wasip2 target was missing at build time (the build warns); the built-in formats remain.
pub fn bundled() -> &'static [(&'static str, &'static [u8])] {
    static BUNDLED: OnceLock<Vec<(&'static str, &'static [u8])>> = OnceLock::new();
    BUNDLED.get_or_init(|| {
        include!(concat!(env!("OUT_DIR"), "/bundled.rs"))
            .into_iter()
            .filter(|(_, bytes): &(&str, &[u8])| !bytes.is_empty())
            .collect()
    })
}
