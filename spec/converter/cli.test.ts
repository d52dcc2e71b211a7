import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ownFixturePath } from "../support/apk-files";

const CLI = resolve("dist/converter/apk-conf-to-kong.js");

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = execFile(process.execPath, [CLI, ...args], (_e, stdout, stderr) =>
      done({ code: child.exitCode, stdout, stderr }),
    );
  });
}

describe("apk-conf-to-kong, the command", () => {
  it("writes Kong YAML to stdout and warnings, notes and secrets to stderr", async () => {
    const r = await run([ownFixturePath("endpoint-security.apk-conf.yaml")]);
    expect(r.code).toBe(0);
    expect(parse(r.stdout)._format_version).toBe("3.0");
    expect(r.stderr).toMatch(/^warning: aiProvider: not converted/m);
    expect(r.stderr).toMatch(/^secret: set PROVIDER_CREDENTIALS_TOKEN in Kong's environment/m);
    expect(r.stderr).not.toContain("_format_version");
  });

  it("writes to -o FILE and takes the sandbox host from --sandbox-host", async () => {
    const out = join(mkdtempSync(join(tmpdir(), "apk-")), "kong.yml");
    const r = await run([
      ownFixturePath("api-level-policy.apk-conf.yaml"),
      "-o",
      out,
      "--sandbox-host",
      "sbx.example.test",
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    const written = parse(readFileSync(out, "utf8")) as { services: { routes: { hosts?: string[] }[] }[] };
    expect(written.services[1]?.routes[0]?.hosts).toEqual(["sbx.example.test"]);
  });

  it.each([
    [
      "a Kubernetes custom resource",
      ownFixturePath("round-robin.APIPolicy.yaml"),
      /is a Kubernetes custom resource \(kind: APIPolicy/,
    ],
    ["a missing file", "/nonexistent/api.yaml", /\/nonexistent\/api\.yaml: cannot read: ENOENT/],
  ])("exits 1 with one line and no stack trace for %s", async (_, file, message) => {
    const r = await run([file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("exits 1 naming the file, line and field for weight 0", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "apk-")), "bad.yaml");
    writeFileSync(
      file,
      "name: a\nbasePath: /a\nversion: v1\napiPolicies:\n  request:\n    - policyName: ModelBasedRoundRobin\n      parameters:\n        onQuotaExceedSuspendDuration: 1\n        productionModels:\n          - { model: m, endpoint: 'http://x.test', weight: 0 }\n",
    );
    const r = await run([file]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      `apk-conf-to-kong: ${file}:10: apiPolicies.request[0].parameters.productionModels[0].weight: must be >= 1 (got 0)`,
    );
  });

  it("reports every error of every file in one run, one line each in the file's order, and writes nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "apk-errors-"));
    const first = join(dir, "first.yaml");
    const second = join(dir, "second.yaml");
    writeFileSync(
      first,
      "name: a\nbasePath: /a\nversion: 1.0\nendpointConfigurations:\n  production:\n    - endpoint: https://{endpoint}/openai\noperations:\n  - target: /x\n    verb: GETT\n    colour: blue\n",
    );
    writeFileSync(second, "name: b\nbasePath: b\nversion: v1\n");
    const r = await run([first, second, "-o", join(dir, "kong.yml")]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toEqual([
      `apk-conf-to-kong: ${first}:3: version: must be string (got 1); YAML reads 1.0 as a number: write it in quotes, version: "1.0"`,
      `apk-conf-to-kong: ${first}:6: endpointConfigurations.production[0].endpoint: has the placeholder host "{endpoint}" (got "https://{endpoint}/openai"): APK fills such placeholders in when it deploys; write the real host name, e.g. https://my-resource.openai.azure.com/...`,
      `apk-conf-to-kong: ${first}:9: operations[0].verb: must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS (got "GETT")`,
      `apk-conf-to-kong: ${first}:10: operations[0].colour: is not a known apk-conf field (known here: target, verb, secured, scopes, endpointConfigurations, operationPolicies, rateLimit)`,
      `apk-conf-to-kong: ${second}:2: basePath: must match ^/ (got "b")`,
    ]);
    expect(readdirSync(dir).sort()).toEqual(["first.yaml", "second.yaml"]);
  });

  it("exits 2 with the usage for wrong arguments", async () => {
    const r = await run([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/usage: apk-conf-to-kong FILE/);
  });
});
