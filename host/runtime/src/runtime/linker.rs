//! What a component may import, and what one call's store holds.

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::engine::MemoryCap;
use crate::policy::CallHooks;

/// Links what the world may import: `wasi:http` and the harmless parts of
/// WASI that Rust's std uses (clocks, random, stdio, environment, exit). No
/// filesystem, no sockets: a component that imports them is refused at load.
pub(super) fn add_wasi_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::p2::bindings::cli;
    use wasmtime_wasi::random::WasiRandom;

    wasmtime_wasi::p2::add_to_linker_proxy_interfaces_async(linker)?;
    let l = linker;
    cli::environment::add_to_linker::<CallState, WasiCli>(l, WasiCliView::cli)?;
    cli::exit::add_to_linker::<CallState, WasiCli>(l, WasiCliView::cli)?;
    cli::terminal_input::add_to_linker::<CallState, WasiCli>(l, WasiCliView::cli)?;
    cli::terminal_output::add_to_linker::<CallState, WasiCli>(l, WasiCliView::cli)?;
    cli::terminal_stdin::add_to_linker::<CallState, WasiCli>(l, WasiCliView::cli)?;
    cli::terminal_stdout::add_to_linker::<CallState, WasiCli>(l, WasiCliView::cli)?;
    cli::terminal_stderr::add_to_linker::<CallState, WasiCli>(l, WasiCliView::cli)?;
    wasmtime_wasi::p2::bindings::random::insecure::add_to_linker::<CallState, WasiRandom>(l, |t| t.wasi.random())?;
    wasmtime_wasi::p2::bindings::random::insecure_seed::add_to_linker::<CallState, WasiRandom>(l, |t| t.wasi.random())?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(l)
}

/// What one call's store holds.
pub(crate) struct CallState {
    pub(super) wasi: WasiCtx,
    pub(super) http: WasiHttpCtx,
    pub(super) table: ResourceTable,
    pub(super) hooks: CallHooks,
    pub(super) memory: MemoryCap,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
