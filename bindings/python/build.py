"""Puts the codec component (built by cargo from guest/, importing nothing),
the host catalogue's policy table (catalogue/routes.json) and the quota
scripts (catalogue/quota/) into the package, under api_entreprise/codec/.

API_ENTREPRISE_CODEC names another codec component file; by default the
workspace's own build is used, and cargo builds it when needed.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BUILT = ROOT / "target/wasm-guests/wasm32-unknown-unknown/release/api_entreprise_codec.wasm"


def main() -> int:
    codec = Path(os.environ.get("API_ENTREPRISE_CODEC", BUILT))
    if "API_ENTREPRISE_CODEC" not in os.environ:
        print("building the codec component with cargo (guest/ for wasm32-unknown-unknown)", file=sys.stderr)
        subprocess.run(
            ["cargo", "build", "--release", "--locked", "-p", "api-entreprise-component"],
            cwd=ROOT,
            check=True,
        )
    if not codec.is_file():
        print(f"no codec component at {codec}: build it with `cargo build --release -p api-entreprise-component`",
              file=sys.stderr)
        return 1
    out = HERE / "api_entreprise" / "codec"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copyfile(codec, out / "api_entreprise_codec.wasm")
    shutil.copyfile(ROOT / "catalogue" / "routes.json", out / "routes.json")
    # The quota scripts every host runs (SQLite statements, Redis Lua), one copy.
    shutil.copytree(ROOT / "catalogue" / "quota", out / "quota")
    print(f"codec copied into {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
