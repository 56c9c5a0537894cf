//! The WebAssembly format-plugin host. For now it only names the contract version; the plugin issue brings the
//! wasmtime host, the WIT world and the bundled plugins here.

/// Version of the format contract (`plugins/wit/format.wit`) a plugin must be built against.
pub const API_VERSION: u32 = 1;
