"""Fixtures: the real sandbox (``api-entreprise sandbox``, a process of its
own) on a free port, and the conformance vectors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# Nothing reaches the user's state directory.
os.environ["API_ENTREPRISE_STATE_DIR"] = tempfile.mkdtemp(prefix="api-entreprise-py-test-")
SANDBOX_TOKEN = "sandbox-token-not-a-secret"


class Sandbox:
    """``api-entreprise sandbox`` on a free port; ``args`` are more of its
    flags, such as ``["--ban", "3/1m"]``."""

    def __init__(self, args: list[str] | None = None) -> None:
        binary = Path(os.environ.get("API_ENTREPRISE_BIN", ROOT / "target/release/api-entreprise"))
        if not binary.is_file():
            raise FileNotFoundError(f"no api-entreprise command at {binary}: run `cargo build --release`")
        self._process = subprocess.Popen(
            [str(binary), "sandbox", "--port", "0", *(args or [])], stdout=subprocess.PIPE, text=True
        )
        seen = ""
        while True:
            line = self._process.stdout.readline()
            if not line:
                raise RuntimeError(f"the sandbox exited before listening: {seen}")
            seen += line
            found = re.search(r"sandbox listening on (\S+)", line)
            if found:
                self.base_url = found.group(1)
                break

    def requests(self) -> list[dict]:
        import urllib.request

        with urllib.request.urlopen(f"{self.base_url}/__sandbox/requests") as r:
            return [q for q in json.load(r) if not q["path"].startswith("/__sandbox")]

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait()


@pytest.fixture(scope="session")
def sandbox():
    s = Sandbox()
    yield s
    s.stop()


def vectors(name: str) -> dict:
    return json.loads((ROOT / "tests" / "conformance" / name).read_text(encoding="utf-8"))
