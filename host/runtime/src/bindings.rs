//! Host bindings of the `api-entreprise` world; the WASI imports map to the
//! wasmtime-wasi and wasmtime-wasi-http implementations.

#![expect(missing_docs, reason = "generated: the docs are in the WIT files")]

wasmtime::component::bindgen!({
    world: "api-entreprise",
    path: "../../wit",
    exports: { default: async },
    require_store_data_send: true,
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});
