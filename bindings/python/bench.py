"""The Python side of ``scripts/speed``: prepare + parse of the 1.7 KB Sirene
answer through this package's codec (the answer decoded), and the whole call
against the sandbox at $SANDBOX_URL, printed as ``RESULT {json}``."""

import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CASE = "v4/insee_unites_legales/personne_morale"

started = time.perf_counter()
from api_entreprise import ApiEntreprise, Codec  # noqa: E402
from api_entreprise._codec import CODEC_DIR  # noqa: E402

codec = Codec()
load_ms = (time.perf_counter() - started) * 1e3


def find(file):
    v = json.loads((HERE.parent.parent / "tests" / "conformance" / file).read_text(encoding="utf-8"))
    return v, next(c for c in v["cases"] if c["name"] == CASE)


def per_call(calls, f):
    """The median and the fastest of 10 batches, per call, in µs."""
    for _ in range(calls // 10):
        f()
    batches = []
    for _ in range(10):
        t = time.perf_counter()
        for _ in range(calls // 10):
            f()
        batches.append((time.perf_counter() - t) * 1e6 / (calls // 10))
    batches.sort()
    return {"median_us": round(batches[5], 1), "min_us": round(batches[0], 1)}


pv, prepare = find("prepare.json")
_, parse = find("parse.json")


def once():
    call = codec.prepare(pv["base_url"], prepare["request"], pv["now"])["ok"]
    codec.parse(call, 200, parse["headers"], parse["body"], pv["now"])


prepare_parse = per_call(5000, once)

call_us = None
if os.environ.get("SANDBOX_URL"):
    api = ApiEntreprise(token="sandbox-token-not-a-secret", base_url=os.environ["SANDBOX_URL"])
    trace = {"context": "aides publiques", "recipient": "13002526500013", "object": "dossier 42"}
    for _ in range(20):
        api.call("insee_unites_legales", ["552049447"], **trace)
    calls = 200
    t = time.perf_counter()
    for _ in range(calls):
        api.call("insee_unites_legales", ["552049447"], **trace)
    call_us = round((time.perf_counter() - t) * 1e6 / calls)

print("RESULT " + json.dumps({
    "language": f"Python {platform.python_version()} (wasmtime-py 50)",
    "load_ms": round(load_ms, 1),
    "prepare_parse": prepare_parse,
    "call_us": call_us,
    "artifact": {"codec.wasm": (CODEC_DIR / "api_entreprise_codec.wasm").stat().st_size},
}))
