// Builds the package's codec: the codec component (built by cargo from
// guest/, importing nothing) transpiled by jco into codec/, and the host
// catalogue's policy table and quota scripts copied beside it. Run by `npm run build`.
//
// API_ENTREPRISE_CODEC names another codec component file; by default the
// workspace's own build is used, and cargo builds it when it is missing.

import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, "..");
const root = resolve(pkg, "../..");
const built = join(root, "target/wasm-guests/wasm32-unknown-unknown/release/api_entreprise_codec.wasm");
const codec = process.env.API_ENTREPRISE_CODEC ?? built;

if (!process.env.API_ENTREPRISE_CODEC) {
  // Cargo decides whether anything changed; it is quick when nothing did.
  console.error("building the codec component with cargo (guest/ for wasm32-unknown-unknown)");
  execFileSync("cargo", ["build", "--release", "--locked", "-p", "api-entreprise-component"], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
  });
}
if (!existsSync(codec)) {
  console.error(`no codec component at ${codec}: build it with \`cargo build --release -p api-entreprise-component\``);
  process.exit(1);
}

const out = join(pkg, "codec");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const jco = join(pkg, "node_modules/.bin/jco");
if (!existsSync(jco)) {
  console.error("jco is missing: run `npm install` in bindings/js first");
  process.exit(1);
}
// Sync instantiation: the client makes a fresh instance after a trap.
execFileSync(jco, ["transpile", codec, "-o", out, "--name", "codec", "--instantiation", "sync", "--quiet"], {
  stdio: "inherit",
});
writeFileSync(join(out, "package.json"), '{ "type": "module" }\n');
copyFileSync(join(root, "catalogue/routes.json"), join(out, "routes.json"));
// The quota scripts every host runs (SQLite statements, Redis Lua), one copy.
mkdirSync(join(out, "quota"));
for (const name of readdirSync(join(root, "catalogue/quota"))) {
  copyFileSync(join(root, "catalogue/quota", name), join(out, "quota", name));
}
console.error(`codec transpiled into ${out}`);
