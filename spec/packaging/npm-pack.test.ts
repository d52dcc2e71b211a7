/**
 * The installable artefact for a Kong host without Docker (issue 22): `npm pack` gives a tarball that, installed
 * into an empty folder with its production dependencies only, provides the plugin server's bin, the plugin and
 * the converter. The tarball is packed from the dist/ the global setup built (`--ignore-scripts`: the package's
 * prepack would rebuild dist/ under the other test files' feet).
 *
 * The install reads the packages from npm's cache (`--offline`, filled by `npm ci`); npm also needs each
 * dependency's registry metadata, which `npm ci` does not cache, so when it is missing the install asks the
 * registry once (`--prefer-offline`), after which it is cached.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const NPM = process.platform === "win32" ? "npm.cmd" : "npm";
const NAME = "kong-model-based-round-robin";

describe("npm pack: the package for Kong hosts without Docker", () => {
  let dir: string;
  let files: string[];
  let tarball: string;
  let installed: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "npm-pack-test-"));
    const out = execFileSync(NPM, ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], {
      encoding: "utf8",
    });
    const [packed] = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
    files = (packed?.files ?? []).map((f) => f.path);
    tarball = join(dir, packed?.filename ?? "");
    installed = join(dir, "host");
    mkdirSync(installed);
    const install = (mode: string) =>
      spawnSync(NPM, ["install", "--omit=dev", mode, "--no-audit", "--no-fund", tarball], {
        cwd: installed,
        encoding: "utf8",
      });
    let result = install("--offline");
    if (result.status !== 0 && /ENOTCACHED/.test(result.stderr)) result = install("--prefer-offline");
    if (result.status !== 0) throw new Error(`npm install failed:\n${result.stderr}`);
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("holds the plugin, its plugin server and the converter, and no tests, scripts or Kong double", () => {
    expect(files).toEqual(
      expect.arrayContaining([
        "package.json",
        "README.md",
        "dist/plugins/model-based-round-robin/index.js",
        "dist/pluginserver/main.js",
        "dist/converter/apk-conf-to-kong.js",
        "dist/converter/apk-conf.schema.json",
        "docs/install.md",
      ]),
    );
    expect(
      files.filter((f) => /^(spec|scripts|kong-double|dist\/scripts|dist\/kong-double)\//.test(f)),
    ).toEqual([]);
  });

  it("installs the production dependencies only", () => {
    const modules = join(installed, "node_modules");
    for (const dependency of ["kong-pdk", "ajv", "ioredis", "prom-client", "yaml"])
      expect({ dependency, installed: existsSync(join(modules, dependency)) }).toEqual({
        dependency,
        installed: true,
      });
    // A devDependency of ours may still be there when a production package needs it (kong-pdk 0.6.0 depends on
    // @msgpack/msgpack, and on typescript through ts-node): what is installed must be exactly what our
    // dependencies need.
    const needed = new Set<string>();
    const walk = (name: string) => {
      if (needed.has(name)) return;
      needed.add(name);
      const manifest = join(modules, name, "package.json");
      if (!existsSync(manifest)) return;
      const deps = (JSON.parse(readFileSync(manifest, "utf8")) as { dependencies?: object }).dependencies;
      for (const dep of Object.keys(deps ?? {})) walk(dep);
    };
    walk(NAME);
    const pkg = JSON.parse(readFileSync("package.json", "utf8")) as {
      devDependencies: Record<string, string>;
    };
    const devOnly = Object.keys(pkg.devDependencies).filter((d) => !needed.has(d));
    expect(devOnly.length).toBeGreaterThan(0);
    expect(devOnly.filter((d) => existsSync(join(modules, d)))).toEqual([]);
  });

  it("runs the plugin server's query command from the installed bin: one plugin, with its schema and phases", () => {
    const bin = join(installed, "node_modules/.bin/model-based-round-robin-pluginserver");
    const plugins = join(installed, "node_modules", NAME, "dist/plugins");
    const r = spawnSync(bin, ["--plugins-directory", plugins, "--dump-all-plugins"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    const info = JSON.parse(r.stdout) as {
      Name: string;
      Phases: string[];
      Schema: unknown;
      Priority: number;
    }[];
    expect(info.map((p) => p.Name)).toEqual(["model-based-round-robin"]);
    expect(info[0]?.Phases).toEqual(expect.arrayContaining(["access", "log"]));
    expect(JSON.stringify(info[0]?.Schema)).toContain("production_models");
  });

  it("runs the converter from the installed bin", () => {
    const bin = join(installed, "node_modules/.bin/apk-conf-to-kong");
    const r = spawnSync(bin, [resolve("spec/fixtures/apk-conf/api-level-policy.apk-conf.yaml")], {
      encoding: "utf8",
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('_format_version: "3.0"');
    expect(r.stdout).toContain("name: model-based-round-robin");
  });
});
