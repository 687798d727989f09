"""One per-IP quota for every host of one machine, whatever its language:
real processes of the command, of Node and of Python, at once, on one state
directory and then on one Redis; a pre-forking Python server (the
gunicorn --preload way: the client made before the fork) and a Node cluster.
Each run is judged at the sandbox's arrival log: no window of the quota's
length ever holds more than the quota, and every request that arrived was
one a host counted (nothing refused was sent, nothing was sent twice)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, SANDBOX_TOKEN

BIN = Path(os.environ.get("API_ENTREPRISE_BIN", ROOT / "target/release/api-entreprise"))
JS = ROOT / "bindings/js/src/index.js"
QUOTA, WINDOW_MS = 10, 5000
CALLS = 8
TRACE = ["--context", "aides publiques", "--recipient", "13002526500013", "--object", "machine"]

NODE_WORKER = f"""
import {{ ApiEntreprise }} from {json.dumps(str(JS))};
const api = new ApiEntreprise({{ token: process.env.API_ENTREPRISE_TOKEN, baseUrl: process.env.API_ENTREPRISE_BASE_URL }});
let ok = 0, refused = 0;
for (let i = 0; i < Number(process.env.CALLS); i++) {{
  try {{
    await api.call("insee_unites_legales", ["552049447"], {{ context: "aides publiques", recipient: "13002526500013", object: "node" }});
    ok += 1;
  }} catch (e) {{
    if (e.name !== "QuotaExceededError") {{ console.error(String(e)); process.exit(2); }}
    refused += 1;
  }}
}}
console.log(JSON.stringify({{ ok, refused }}));
process.exit(0);
"""

PYTHON_WORKER = """
import json, os
from api_entreprise import ApiEntreprise, QuotaExceededError
api = ApiEntreprise(token=os.environ["API_ENTREPRISE_TOKEN"], base_url=os.environ["API_ENTREPRISE_BASE_URL"])
ok = refused = 0
for _ in range(int(os.environ["CALLS"])):
    try:
        api.call("insee_unites_legales", ["552049447"], context="aides publiques", recipient="13002526500013", object="python")
        ok += 1
    except QuotaExceededError:
        refused += 1
print(json.dumps({"ok": ok, "refused": refused}))
"""

PREFORK_SERVER = """
import json, multiprocessing, os
from api_entreprise import ApiEntreprise, QuotaExceededError
# Made before the fork, as under gunicorn --preload: every worker inherits it.
api = ApiEntreprise(token=os.environ["API_ENTREPRISE_TOKEN"], base_url=os.environ["API_ENTREPRISE_BASE_URL"])
api.call("insee_unites_legales", ["552049447"], context="aides publiques", recipient="13002526500013", object="preload")

def worker(_):
    ok = refused = 0
    for _ in range(int(os.environ["CALLS"])):
        try:
            api.call("insee_unites_legales", ["552049447"], context="aides publiques", recipient="13002526500013", object="worker")
            ok += 1
        except QuotaExceededError:
            refused += 1
    return {"ok": ok, "refused": refused}

if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(worker, range(4))
    print(json.dumps({"ok": 1 + sum(r["ok"] for r in results), "refused": sum(r["refused"] for r in results)}))
"""

NODE_CLUSTER = f"""
import cluster from "node:cluster";
import {{ ApiEntreprise }} from {json.dumps(str(JS))};
if (cluster.isPrimary) {{
  let ok = 0, refused = 0, done = 0;
  for (let i = 0; i < 4; i++) {{
    cluster.fork().on("message", (m) => {{
      ok += m.ok; refused += m.refused; done += 1;
      if (done === 4) console.log(JSON.stringify({{ ok, refused }}));
    }});
  }}
}} else {{
  const api = new ApiEntreprise({{ token: process.env.API_ENTREPRISE_TOKEN, baseUrl: process.env.API_ENTREPRISE_BASE_URL }});
  let ok = 0, refused = 0;
  for (let i = 0; i < Number(process.env.CALLS); i++) {{
    try {{
      await api.call("insee_unites_legales", ["552049447"], {{ context: "aides publiques", recipient: "13002526500013", object: "cluster" }});
      ok += 1;
    }} catch (e) {{
      if (e.name !== "QuotaExceededError") {{ console.error(String(e)); process.exit(2); }}
      refused += 1;
    }}
  }}
  process.send({{ ok, refused }}, () => process.exit(0));
}}
"""


def worst_window(times: list[int], window_ms: int) -> int:
    """The most arrivals in any window of ``window_ms`` (both ends in)."""
    times = sorted(times)
    worst, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] > window_ms:
            start += 1
        worst = max(worst, end - start + 1)
    return worst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A real redis-server on loopback, without persistence; or, given the
    master's port, a redis-sentinel that watches it as ``mymaster``."""

    def __init__(self, sentinel_of: int | None = None) -> None:
        server = shutil.which("redis-server")
        if not server:
            raise FileNotFoundError("redis-server is missing: run scripts/setup")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="api-entreprise-redis-")
        if sentinel_of is None:
            argv = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir]
        else:
            config = Path(self.dir) / "sentinel.conf"
            config.write_text(
                f"port {self.port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {sentinel_of} 1\n"
                "sentinel down-after-milliseconds mymaster 1000\n"
            )
            argv = [server, str(config), "--sentinel"]
        self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self._process.kill()
        self._process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def machine(sandbox, tmp_path):
    """The environment every host of the run reads: one state directory, one quota."""
    env = dict(os.environ)
    env.update(
        API_ENTREPRISE_STATE_DIR=str(tmp_path / "state"),
        API_ENTREPRISE_IP_QUOTA=f"{QUOTA}/{WINDOW_MS // 1000}s",
        API_ENTREPRISE_TOKEN=SANDBOX_TOKEN,
        API_ENTREPRISE_BASE_URL=sandbox.base_url,
        CALLS=str(CALLS),
        PYTHONPATH=str(ROOT / "bindings/python"),
    )
    env.pop("API_ENTREPRISE_REDIS_URL", None)
    return env


def run_hosts(env: dict[str, str], commands: int, nodes: int, pythons: int) -> tuple[int, int]:
    """Runs every host at once; the calls admitted and refused, in all."""
    results: list[tuple[int, int]] = []
    lock = threading.Lock()

    def command_loop() -> None:
        ok = refused = 0
        for _ in range(CALLS):
            out = subprocess.run(
                [str(BIN), "call", "insee_unites_legales", "552049447", *TRACE], env=env, capture_output=True, text=True
            )
            if out.returncode == 0:
                ok += 1
            else:
                assert "nothing was sent" in out.stderr, out.stderr
                refused += 1
        with lock:
            results.append((ok, refused))

    def process(argv: list[str]) -> None:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        counts = json.loads(out.stdout.strip().splitlines()[-1])
        with lock:
            results.append((counts["ok"], counts["refused"]))

    threads = [threading.Thread(target=command_loop) for _ in range(commands)]
    threads += [threading.Thread(target=process, args=(["node", "--input-type=module", "-e", NODE_WORKER],)) for _ in range(nodes)]
    threads += [threading.Thread(target=process, args=([sys.executable, "-c", PYTHON_WORKER],)) for _ in range(pythons)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == len(threads), "a host failed: see above"
    return sum(r[0] for r in results), sum(r[1] for r in results)


def judge(sandbox, before: int, admitted: int, what: str, quota: int = QUOTA, window_ms: int = WINDOW_MS) -> int:
    arrivals = [r for r in sandbox.requests()[before:] if "/unites_legales/" in r["path"]]
    worst = worst_window([r["at_unix_ms"] for r in arrivals], window_ms)
    print(f"{what}: {admitted} calls admitted, {len(arrivals)} arrived; the worst {window_ms} ms window held {worst} of {quota}")
    assert len(arrivals) == admitted, f"{len(arrivals)} arrivals for {admitted} admitted calls"
    assert worst <= quota, f"a {window_ms} ms window held {worst} arrivals: the hosts counted apart"
    assert admitted > quota, f"only {admitted} calls: no host took a slot past the first window"
    return worst


def test_the_command_node_and_python_share_one_quota_through_the_state_directory(sandbox, machine):
    before = len(sandbox.requests())
    admitted, _ = run_hosts(machine, commands=3, nodes=3, pythons=3)
    judge(sandbox, before, admitted, "3 commands, 3 Node and 3 Python processes, one state directory")
    assert (Path(machine["API_ENTREPRISE_STATE_DIR"]) / "quotas.sqlite3").is_file()


def test_the_command_node_and_python_share_one_quota_through_redis(sandbox, machine):
    redis = Redis()
    try:
        machine["API_ENTREPRISE_REDIS_URL"] = redis.url
        before = len(sandbox.requests())
        admitted, _ = run_hosts(machine, commands=3, nodes=3, pythons=3)
        judge(sandbox, before, admitted, "3 commands, 3 Node and 3 Python processes, one Redis")
        assert not (Path(machine["API_ENTREPRISE_STATE_DIR"]) / "quotas.sqlite3").exists(), "Redis, not the file"
    finally:
        redis.stop()


def test_node_and_python_find_the_master_through_sentinel_and_share_its_quota(sandbox, machine):
    master = Redis()
    sentinel = Redis(sentinel_of=master.port)
    try:
        machine["API_ENTREPRISE_REDIS_URL"] = f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster"
        before = len(sandbox.requests())
        admitted, _ = run_hosts(machine, commands=1, nodes=2, pythons=2)
        judge(sandbox, before, admitted, "1 command, 2 Node and 2 Python processes, Redis behind Sentinel")
        with socket.create_connection(("127.0.0.1", master.port)) as s:
            s.sendall(b"KEYS api-entreprise:quota:ip*\r\n")
            assert b"api-entreprise:quota:ip 10/5s" in s.recv(4096), "the windows are in the master"
    finally:
        sentinel.stop()
        master.stop()


def test_a_preforking_python_server_counts_its_workers_together(sandbox, machine):
    before = len(sandbox.requests())
    # A window shorter than the call's deadline: a full quota is waited out.
    machine.update(CALLS="6", API_ENTREPRISE_IP_QUOTA="5/2s")
    out = subprocess.run([sys.executable, "-c", PREFORK_SERVER], env=machine, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    judge(sandbox, before, counts["ok"], "a pre-forking Python server, 4 workers", 5, 2000)


def test_a_node_cluster_counts_its_workers_together(sandbox, machine, tmp_path):
    before = len(sandbox.requests())
    machine.update(CALLS="6", API_ENTREPRISE_IP_QUOTA="5/2s")
    # cluster.fork runs the primary's own file again: it must be one.
    script = tmp_path / "cluster.mjs"
    script.write_text(NODE_CLUSTER, encoding="utf-8")
    out = subprocess.run(["node", str(script)], env=machine, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    judge(sandbox, before, counts["ok"], "a Node cluster, 4 workers", 5, 2000)
