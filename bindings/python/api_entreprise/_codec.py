"""The codec component on wasmtime: the client's validation, request
building and parsing, instantiated with no capability at all (an empty
linker: it can neither send, read a clock nor see a file). Every function
speaks the contract's JSON form and returns ``{"ok": value}`` or
``{"err": error}``, as the conformance vectors write them."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime.component import Component, Linker

CODEC_DIR = Path(__file__).resolve().parent / "codec"
INTERFACE = "api-entreprise:client/json@0.2.0"

# Instructions and memory one call may use: parsing a 30 KB answer takes a
# few million instructions.
FUEL_PER_CALL = 2_000_000_000
MEMORY_BYTES = 64 << 20

_engine: wasmtime.Engine | None = None
_components: dict[Path, Component] = {}
_compile_lock = threading.Lock()


def now() -> str:
    """The current instant as the contract's ``now``."""
    return datetime.now(timezone.utc).isoformat()


def _component(path: Path) -> tuple[wasmtime.Engine, Component]:
    """The component at ``path``, compiled once per process, checked to
    import nothing."""
    global _engine
    with _compile_lock:
        if _engine is None:
            config = wasmtime.Config()
            config.consume_fuel = True
            _engine = wasmtime.Engine(config)
        if path not in _components:
            if not path.is_file():
                raise FileNotFoundError(
                    f"no codec component at {path}: run `python bindings/python/build.py` before using the package"
                )
            component = Component.from_file(_engine, str(path))
            imports = list(component.type.imports(_engine))
            if imports:
                raise ValueError(
                    f"{path} imports {', '.join(imports)}: the codec component must import nothing "
                    "(use the codec build, api_entreprise_codec.wasm)"
                )
            _components[path] = component
        return _engine, _components[path]


class Codec:
    """The codec component, sans IO. Safe to share between threads."""

    def __init__(self, path: Path | str | None = None) -> None:
        self._engine, self._component = _component(Path(path) if path else CODEC_DIR / "api_entreprise_codec.wasm")
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        """A fresh store and instance (after a trap, the old ones are unusable)."""
        store = wasmtime.Store(self._engine)
        store.set_limits(memory_size=MEMORY_BYTES)
        instance = Linker(self._engine).instantiate(store, self._component)
        interface = instance.get_export_index(store, INTERFACE)
        if interface is None:
            raise ValueError(f"the codec component does not export {INTERFACE}")

        def function(name: str) -> Any:
            index = instance.get_export_index(store, name, interface)
            return instance.get_func(store, index)

        self._store = store
        self._functions = {name: function(name) for name in ("endpoints", "prepare", "parse")}

    def _call(self, name: str, *args: Any) -> Any:
        """Calls the ``json`` function ``name``; a trap comes back as the
        exception, after a fresh instance is made."""
        with self._lock:
            func = self._functions[name]
            try:
                self._store.set_fuel(FUEL_PER_CALL)
                result = func(self._store, *args)
                func.post_return(self._store)
                return result
            except (wasmtime.Trap, wasmtime.WasmtimeError) as trap:
                self._start()
                return trap

    def _outcome(self, result: Any) -> dict[str, Any]:
        if isinstance(result, Exception):
            return {"err": {"tag": "other", "val": f"the codec component failed: {result}"}}
        key = "ok" if result.tag == "ok" else "err"
        return {key: json.loads(result.payload)}

    def endpoints(self) -> list[dict[str, Any]]:
        """Every endpoint the component can call (a description)."""
        result = self._call("endpoints")
        return [] if isinstance(result, Exception) else json.loads(result)

    def prepare(self, base_url: str, request: dict[str, Any], now_iso: str | None = None) -> dict[str, Any]:
        """Validates ``request`` and builds the HTTP request against ``base_url``."""
        return self._outcome(self._call("prepare", base_url, json.dumps(request), now_iso or now()))

    def parse(
        self,
        call: dict[str, Any],
        status: int,
        headers: list[tuple[str, str]] | list[list[str]],
        body: str,
        now_iso: str | None = None,
    ) -> dict[str, Any]:
        """Parses the answer to ``call`` (what ``prepare`` gave)."""
        return self._outcome(
            self._call("parse", json.dumps(call), status, json.dumps(headers), body, now_iso or now())
        )
