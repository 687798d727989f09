//! The functions a call enters, found and type-checked once when a version
//! loads. Generated bindings look every export up by name and type-check
//! it again at each instantiation (a few microseconds a call, for functions
//! the call never uses); a call here takes its function by index, unchecked,
//! because the check was made on the same component.

use wasmtime::AsContextMut;
use wasmtime::component::{Component, ComponentExportIndex, Func, Instance, TypedFunc};

use crate::types::{Error, Prepared, Request, Response};

/// `client.call`.
pub(crate) type CallFn<'a> = TypedFunc<(&'a str, &'a Request), (Result<Response, Error>,)>;
/// `codec.prepare`.
pub(crate) type PrepareFn<'a> = TypedFunc<(&'a str, &'a Request, &'a str), (Result<Prepared, Error>,)>;
/// `codec.parse`.
pub(crate) type ParseFn<'a> =
    TypedFunc<(&'a Prepared, u16, &'a [(String, String)], &'a str, &'a str), (Result<Response, Error>,)>;

/// Where a call's functions are among a component's exports.
#[derive(Debug, Clone)]
pub(crate) struct Exports {
    call: ComponentExportIndex,
    prepare: ComponentExportIndex,
    parse: ComponentExportIndex,
}

impl Exports {
    /// Finds the functions in `component` (whose contract was checked:
    /// it exports `client` and `codec` of a compatible version).
    pub(crate) fn find(engine: &wasmtime::Engine, component: &Component) -> wasmtime::Result<Self> {
        let interface = |name: &str| {
            let prefix = format!("{}/{name}@", crate::contract::PACKAGE);
            let ty = component.component_type();
            let full = ty
                .exports(engine)
                .map(|(export, _)| export)
                .find(|export| export.starts_with(&prefix))
                .ok_or_else(|| wasmtime::format_err!("it exports no `{name}` interface"))?;
            component
                .get_export_index(None, full)
                .ok_or_else(|| wasmtime::format_err!("its `{full}` export cannot be found"))
        };
        let function = |interface: &ComponentExportIndex, name: &str| {
            component
                .get_export_index(Some(interface), name)
                .ok_or_else(|| wasmtime::format_err!("it exports no `{name}` function"))
        };
        let (client, codec) = (interface("client")?, interface("codec")?);
        Ok(Self {
            call: function(&client, "call")?,
            prepare: function(&codec, "prepare")?,
            parse: function(&codec, "parse")?,
        })
    }

    /// Type-checks the three functions against the host's types, once, on
    /// an instance of the component they were found in.
    pub(crate) fn check(&self, mut store: impl AsContextMut, instance: &Instance) -> wasmtime::Result<()> {
        let mut get = |index: &ComponentExportIndex| func(&mut store, instance, index);
        let (call, prepare, parse) = (get(&self.call)?, get(&self.prepare)?, get(&self.parse)?);
        call.typed::<(&str, &Request), (Result<Response, Error>,)>(&store)?;
        prepare.typed::<(&str, &Request, &str), (Result<Prepared, Error>,)>(&store)?;
        parse.typed::<(&Prepared, u16, &[(String, String)], &str, &str), (Result<Response, Error>,)>(&store)?;
        Ok(())
    }

    /// `client.call` of `instance`.
    pub(crate) fn call<'a>(&self, store: impl AsContextMut, instance: &Instance) -> wasmtime::Result<CallFn<'a>> {
        // SAFETY: `check` type-checked this export of this component
        // against these very types when the version loaded.
        Ok(unsafe { TypedFunc::new_unchecked(func(store, instance, &self.call)?) })
    }

    /// `codec.prepare` of `instance`.
    pub(crate) fn prepare<'a>(&self, store: impl AsContextMut, instance: &Instance) -> wasmtime::Result<PrepareFn<'a>> {
        // SAFETY: as for `call`.
        Ok(unsafe { TypedFunc::new_unchecked(func(store, instance, &self.prepare)?) })
    }

    /// `codec.parse` of `instance`.
    pub(crate) fn parse<'a>(&self, store: impl AsContextMut, instance: &Instance) -> wasmtime::Result<ParseFn<'a>> {
        // SAFETY: as for `call`.
        Ok(unsafe { TypedFunc::new_unchecked(func(store, instance, &self.parse)?) })
    }
}

/// The function at `index` of `instance` (an index found in its own component).
fn func(store: impl AsContextMut, instance: &Instance, index: &ComponentExportIndex) -> wasmtime::Result<Func> {
    instance
        .get_func(store, index)
        .ok_or_else(|| wasmtime::format_err!("the component's export is not a function of this instance"))
}
