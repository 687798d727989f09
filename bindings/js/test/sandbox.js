// Starts the real sandbox (`api-entreprise sandbox`, a process of its own)
// on a free port for a test, and reads what it received.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../../", import.meta.url));
export const SANDBOX_TOKEN = "sandbox-token-not-a-secret";

/** The `api-entreprise` command: $API_ENTREPRISE_BIN, else the release build. */
function command() {
  const bin = process.env.API_ENTREPRISE_BIN ?? `${root}target/release/api-entreprise`;
  if (!existsSync(bin)) {
    throw new Error(`no api-entreprise command at ${bin}: run \`cargo build --release\` or set API_ENTREPRISE_BIN`);
  }
  return bin;
}

/**
 * A running sandbox: `{ baseUrl, requests(), stop() }`; `args` are more of
 * the command's flags, such as `["--ban", "3/1m"]`.
 */
export async function startSandbox(args = []) {
  const child = spawn(command(), ["sandbox", "--port", "0", ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const baseUrl = await new Promise((resolve, reject) => {
    let seen = "";
    child.stdout.on("data", (chunk) => {
      seen += chunk;
      const found = seen.match(/sandbox listening on (\S+)/);
      if (found) resolve(found[1]);
    });
    child.on("exit", (code) => reject(new Error(`the sandbox exited (${code}) before listening: ${seen}`)));
  });
  return {
    baseUrl,
    async requests() {
      const response = await fetch(`${baseUrl}/__sandbox/requests`);
      return (await response.json()).filter((r) => !r.path.startsWith("/__sandbox"));
    },
    stop() {
      child.kill();
    },
  };
}
