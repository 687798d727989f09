// Type-checked by `npm test` (tsc --noEmit): the README's example, typed.
import { ApiEntreprise, ApiError, InvalidInputError, type Response } from "../src/index.js";

async function example(): Promise<string | null> {
  const api = new ApiEntreprise({ token: "sandbox-token-not-a-secret", baseUrl: "http://127.0.0.1:8080" });
  try {
    const r: Response = await api.call("insee_unites_legales", ["552049447"], {
      context: "aides publiques",
      recipient: "13002526500013",
      object: "dossier 42",
    });
    if (r.typed?.tag === "unite-legale") return r.typed.val.denomination;
    return r.rate_limit.reset_at;
  } catch (e) {
    if (e instanceof InvalidInputError) return e.codes.join(",");
    if (e instanceof ApiError && e.kind === "not-found") return null;
    throw e;
  }
}
void example;
