//! What a component may import, and what one call's store holds.

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::engine::MemoryCap;
use crate::policy::{CallHooks, Refusal, RefusalSlot};

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

/// What one call's store holds on the codec path: nothing is linked (every
/// import of the component traps), so there is no WASI context to build.
#[derive(Default)]
pub(crate) struct CodecState {
    pub(super) memory: MemoryCap,
    /// Where the host's send records a refusal.
    pub(super) refusal: RefusalSlot,
    /// The path of the request the host sent.
    pub(super) sent_path: Option<String>,
    /// The import the component called, which trapped.
    pub(super) called: Option<String>,
}

/// A linker for the codec path: nothing is linked. Each function the
/// component imports is a trap that remembers its name (so that the caller
/// is told which import a component reached for: Rust's panic handler
/// reads the environment, a hostile one may try to send); a resource type
/// it imports is a type with nothing that makes one.
pub(super) fn link_nothing(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> wasmtime::Result<Linker<CodecState>> {
    use wasmtime::component::types::ComponentItem;
    let mut linker = Linker::<CodecState>::new(engine);
    for (name, item) in component.component_type().imports(engine) {
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        let mut root = linker.root();
        let mut linked = root.instance(name)?;
        for (function, item) in instance.exports(engine) {
            if let ComponentItem::ComponentFunc(_) = item.ty {
                let called = format!("{name}#{function}");
                linked.func_new(function, move |mut store, _, _, _| {
                    store.data_mut().called = Some(called.clone());
                    wasmtime::bail!("the component called `{called}`, which is not linked on the codec path")
                })?;
            }
        }
    }
    linker.define_unknown_imports_as_traps(component)?;
    Ok(linker)
}

/// What the runner needs of a call's store, whichever path it takes.
pub(super) trait CallStore: Send + 'static {
    /// The call's memory cap.
    fn memory(&mut self) -> &mut MemoryCap;
    /// Why the policy refused the call's request, if it did; and the path
    /// of the request the host saw leave.
    fn outcome(&mut self) -> (Option<Refusal>, Option<String>);
    /// The unlinked import the component called, if it trapped so.
    fn called(&mut self) -> Option<String> {
        None
    }
}

impl CallStore for CallState {
    fn memory(&mut self) -> &mut MemoryCap {
        &mut self.memory
    }

    fn outcome(&mut self) -> (Option<Refusal>, Option<String>) {
        let refusal = self.hooks.refusal.lock().unwrap_or_else(|p| p.into_inner()).take();
        (refusal, self.hooks.sent_path.take())
    }
}

impl CallStore for CodecState {
    fn memory(&mut self) -> &mut MemoryCap {
        &mut self.memory
    }

    fn called(&mut self) -> Option<String> {
        self.called.take()
    }

    fn outcome(&mut self) -> (Option<Refusal>, Option<String>) {
        let refusal = self.refusal.lock().unwrap_or_else(|p| p.into_inner()).take();
        (refusal, self.sent_path.take())
    }
}
