/**
 * Integration tests load the compiled plugin (dist/plugins) into the real plugin server, so the build must be
 * current before any test runs; building here keeps `npx vitest run <file>` honest too. It starts from an empty
 * dist/: a module that moved (scripts/mock-provider.ts to scripts/mock-provider/) must not leave its old output
 * behind, where Node would find dist/scripts/mock-provider.js before dist/scripts/mock-provider/index.js.
 * The build is also `npm test`'s type check of the sources (tsconfig.build.json takes all of them): a type error
 * fails it, and with it the run; `npm test` checks the tests' own types before (tsconfig.spec.json).
 */
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

export default function build(): void {
  const root = fileURLToPath(new URL("../..", import.meta.url));
  rmSync(resolve(root, "dist"), { recursive: true, force: true });
  execFileSync(
    process.execPath,
    [resolve(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"],
    {
      cwd: root,
      stdio: "inherit",
    },
  );
}
