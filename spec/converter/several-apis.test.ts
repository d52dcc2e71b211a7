/**
 * Several APIs: the command takes several apk-conf files and directories and writes one configuration; with
 * --admin-url on a DB-less Kong (where POST /config replaces everything) it merges into what Kong holds, or
 * replaces it only when told (--replace). Through the command as a child process and the Kong double's Admin API.
 */
import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { KongDouble } from "../../kong-double";
import { type MockProvider, startMockProvider } from "../../scripts/mock-provider";
import { ownFixturePath } from "../support/apk-files";

const CLI = resolve("dist/converter/apk-conf-to-kong.js");

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = execFile(process.execPath, [CLI, ...args], (_e, stdout, stderr) =>
      done({ code: child.exitCode, stdout, stderr }),
    );
  });
}

/** Exit 1 and the error in one line, the last on stderr (after any warning or note); no stack trace, no JSON. */
function expectOneLineFailure(r: { code: number | null; stderr: string }, message: string | RegExp) {
  expect(r.code).toBe(1);
  const lines = r.stderr.trim().split("\n");
  expect(lines.filter((l) => l.startsWith("apk-conf-to-kong: "))).toEqual([lines.at(-1)]);
  expect(lines.every((l) => /^(apk-conf-to-kong|warning|note|secret): /.test(l))).toBe(true);
  expect(lines.at(-1)).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at |[{[]"/);
}

const DEV = ownFixturePath("environment-dev.apk-conf.yaml");
const QA = ownFixturePath("environment-qa.apk-conf.yaml");
type Config = { services: { name: string; routes: { hosts?: string[] }[] }[] };

describe("several apk-conf files in one run", () => {
  it("writes one configuration holding every API, each named in the header", async () => {
    const r = await run([DEV, QA]);
    expect(r.code).toBe(0);
    const config = parse(r.stdout) as Config;
    expect(config.services.map((s) => [s.name, s.routes[0]?.hosts])).toEqual([
      ["employees-dev", ["default-dev.gw.wso2.com"]],
      ["employees-qa", ["default-qa.gw.wso2.com"]],
    ]);
    expect(r.stdout).toMatch(
      /^# Converted from the apk-conf of API "EmployeesDev" \(\/employees\/3\.14 on default-dev\.gw\.wso2\.com\)/m,
    );
    expect(r.stdout).toMatch(/^# Converted from the apk-conf of API "EmployeesQA"/m);
    // Each line on stderr says which file it is about.
    expect(r.stderr).toContain(`note: ${QA}: environment qa: routed on host default-qa.gw.wso2.com`);
  });

  it("reads a directory's apk-confs, and says what it skipped and why", async () => {
    const dir = mkdtempSync(join(tmpdir(), "apk-dir-"));
    copyFileSync(DEV, join(dir, "dev.apk-conf"));
    copyFileSync(QA, join(dir, "qa.yaml"));
    copyFileSync(ownFixturePath("round-robin.APIPolicy.yaml"), join(dir, "policy.yaml"));
    writeFileSync(join(dir, "README.md"), "notes\n");
    const r = await run([dir]);
    expect(r.code).toBe(0);
    expect((parse(r.stdout) as Config).services.map((s) => s.name)).toEqual([
      "employees-dev",
      "employees-qa",
    ]);
    expect(r.stderr).toContain(
      `warning: skipped ${join(dir, "policy.yaml")}: is a Kubernetes custom resource`,
    );
    expect(r.stderr).toContain(`warning: ${dir}: not read (not *.apk-conf, *.yaml, *.yml): README.md`);
  });

  it("takes an environment's hosts from --env-host and --env-sandbox-host, and warns about an environment no API has", async () => {
    const r = await run([
      DEV,
      "--env-host",
      "dev=dev.api.example.test",
      "--env-host",
      "prod=api.example.test",
    ]);
    expect(r.code).toBe(0);
    expect((parse(r.stdout) as Config).services[0]?.routes[0]?.hosts).toEqual(["dev.api.example.test"]);
    expect(r.stderr).toContain("warning: --env-host/--env-sandbox-host prod: no API of environment prod");
  });

  it.each([
    [
      "the same API twice",
      [DEV, DEV],
      `${DEV}: service "employees-dev" of API "EmployeesDev" is also made by API "EmployeesDev" of ${DEV}`,
    ],
    [
      "a file that does not exist",
      [DEV, "/nonexistent/api.yaml"],
      "apk-conf-to-kong: /nonexistent/api.yaml: cannot read: ENOENT",
    ],
  ])("refuses %s in one line", async (_, args, message) => {
    expectOneLineFailure(await run(args), message);
  });

  it("converts the dev and qa variants of one API (same id, name, basePath and version) together: the environment names their services", async () => {
    const dir = mkdtempSync(join(tmpdir(), "apk-variants-"));
    const variant = (env: string) =>
      `name: Employees\nid: employees\nbasePath: /employees\nversion: "3.14"\nenvironment: ${env}\nendpointConfigurations:\n  production:\n    - endpoint: http://employees-${env}:80\noperations:\n  - target: /employee\n    verb: GET\n    secured: false\n`;
    writeFileSync(join(dir, "dev.yaml"), variant("dev"));
    writeFileSync(join(dir, "qa.yaml"), variant("qa"));
    const r = await run([dir]);
    expect(r.code).toBe(0);
    expect((parse(r.stdout) as Config).services.map((s) => [s.name, s.routes[0]?.hosts])).toEqual([
      ["employees-dev", ["default-dev.gw.wso2.com"]],
      ["employees-qa", ["default-qa.gw.wso2.com"]],
    ]);
    // Converted alone, each gets the same name: applying one with --admin-url never replaces the other.
    expect((parse((await run([join(dir, "qa.yaml")])).stdout) as Config).services[0]?.name).toBe(
      "employees-qa",
    );
  });

  it("refuses two APIs whose routes Kong could not tell apart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "apk-clash-"));
    const api = (id: string) =>
      `name: ${id}\nid: ${id}\nbasePath: /same\nversion: v1\nendpointConfigurations:\n  production:\n    - endpoint: http://b.test\noperations:\n  - target: /items\n    verb: GET\n`;
    writeFileSync(join(dir, "a.yaml"), api("first"));
    writeFileSync(join(dir, "b.yaml"), api("second"));
    expectOneLineFailure(
      await run([dir]),
      `${join(dir, "b.yaml")}: API "second" routes GET ~/same/v1/items/?$ on any host, as API "first" of ${join(dir, "a.yaml")} does: Kong could not tell their requests apart`,
    );
  });

  it("refuses a directory without apk-confs, and a file -o cannot write, in one line", async () => {
    const empty = mkdtempSync(join(tmpdir(), "apk-empty-"));
    expectOneLineFailure(
      await run([empty]),
      `${empty}: a directory without *.apk-conf, *.yaml or *.yml files`,
    );
    const dir = mkdtempSync(join(tmpdir(), "apk-only-cr-"));
    copyFileSync(ownFixturePath("round-robin.APIPolicy.yaml"), join(dir, "policy.yaml"));
    const onlyCr = await run([dir]);
    expect(onlyCr.code).toBe(1);
    expect(onlyCr.stderr).toContain(`apk-conf-to-kong: ${dir}: no apk-conf among the files given`);
    expectOneLineFailure(
      await run([DEV, "-o", "/nonexistent/dir/kong.yml"]),
      "/nonexistent/dir/kong.yml: cannot write: ENOENT",
    );
  });

  it("asks for --admin-url when given --replace alone", async () => {
    const r = await run([DEV, "--replace"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^apk-conf-to-kong: --replace needs --admin-url\nusage:/);
  });
});

describe("--admin-url on a DB-less Kong holding other APIs", () => {
  let kong: KongDouble;
  let dev: MockProvider;
  let qa: MockProvider;
  let other: MockProvider;
  const names = async () =>
    ((await (await fetch(`${kong.adminUrl}/services`)).json()) as { data: { name: string }[] }).data
      .map((s) => s.name)
      .sort();
  const send = async (host: string, path: string) => {
    const res = await request(`${kong.proxyUrl}${path}`, { headers: { host } });
    return { status: res.statusCode, text: await res.body.text() };
  };

  beforeAll(async () => {
    dev = await startMockProvider({ name: "dev" });
    qa = await startMockProvider({ name: "qa" });
    other = await startMockProvider({ name: "other" });
    kong = await KongDouble.start({
      pluginServers: [{ name: "model-based-round-robin", pluginsDirectory: resolve("dist/plugins") }],
    });
    // What someone else configured: a service with a route and a plugin, and a consumer.
    await kong.loadConfig(
      [
        '_format_version: "3.0"',
        "services:",
        `  - name: hand-made\n    url: ${other.url}\n    routes:\n      - name: hand-made-route\n        paths: [/hand-made]`,
        "    plugins:\n      - name: request-transformer\n        config: { add: { headers: ['x-hand:made'] } }",
        "consumers:\n  - username: someone",
      ].join("\n"),
    );
  });
  afterAll(async () => {
    await kong?.stop();
    for (const m of [dev, qa, other]) await m?.close();
  });

  /** The fixture with its endpoint on a mock, in a temporary file. */
  const pointed = (fixture: string, from: string, mock: MockProvider) => {
    const file = join(mkdtempSync(join(tmpdir(), "apk-")), "api.apk-conf.yaml");
    writeFileSync(file, readFileSync(fixture, "utf8").replace(from, `${mock.url}/staff`));
    return file;
  };

  it("adds an API to what Kong holds, a second API to both, and says what it kept", async () => {
    const first = await run([
      pointed(DEV, "http://employees-dev-backend:80/staff", dev),
      "--admin-url",
      kong.adminUrl,
    ]);
    expect(first.code).toBe(0);
    expect(first.stderr).toContain(
      `loaded into DB-less Kong at ${kong.adminUrl} (POST /config), merged with what it held: kept services hand-made and every other entity`,
    );
    const second = await run([
      pointed(QA, "http://employees-qa-backend:80/staff", qa),
      "--admin-url",
      kong.adminUrl,
    ]);
    expect(second.code).toBe(0);
    expect(await names()).toEqual(["employees-dev", "employees-qa", "hand-made"]);
    // Everything answers: both APIs, and what was there before with its plugin.
    await send("default-dev.gw.wso2.com", "/employees/3.14/employee/");
    await send("default-qa.gw.wso2.com", "/employees/3.14/employee");
    await send("any.test", "/hand-made/models");
    expect(dev.requests.map((r) => r.path)).toEqual(["/staff/employee"]);
    expect(qa.requests.map((r) => r.path)).toEqual(["/staff/employee"]);
    expect(other.requests[0]?.headers["x-hand"]).toBe("made");
    const consumers = (await (await fetch(`${kong.adminUrl}/consumers`)).json()) as { data: unknown[] };
    expect(consumers.data).toHaveLength(1);
  });

  it("replaces an API it loaded before instead of adding it twice", async () => {
    const again = await run([
      pointed(DEV, "http://employees-dev-backend:80/staff", dev),
      "--admin-url",
      kong.adminUrl,
    ]);
    expect(again.stderr).toContain(
      "merged with what it held: replaced services employees-dev; kept services hand-made, employees-qa and every other entity",
    );
    expect(await names()).toEqual(["employees-dev", "employees-qa", "hand-made"]);
    const routes = (await (await fetch(`${kong.adminUrl}/routes`)).json()) as { data: unknown[] };
    expect(routes.data).toHaveLength(3 + 3 + 1);
  });

  it("replaces everything Kong holds only with --replace, and says so", async () => {
    const r = await run([
      pointed(QA, "http://employees-qa-backend:80/staff", qa),
      "--admin-url",
      kong.adminUrl,
      "--replace",
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      `replaced the whole configuration of DB-less Kong at ${kong.adminUrl} with this run's (POST /config, --replace)`,
    );
    expect(await names()).toEqual(["employees-qa"]);
  });

  it("names what Kong refused in one line, not its JSON", async () => {
    const bare = await KongDouble.start({ pluginServers: [] });
    try {
      const r = await run([ownFixturePath("api-level-policy.apk-conf.yaml"), "--admin-url", bare.adminUrl]);
      expectOneLineFailure(
        r,
        /Kong's Admin API refused POST \/config\?flatten_errors=1 \(400\): invalid declarative configuration: plugin "model-based-round-robin": name: plugin 'model-based-round-robin' not enabled; add it to the 'plugins' configuration property \(and 1 more\)$/,
      );
    } finally {
      await bare.stop();
    }
  });
});

describe("--admin-url on a DB-less Kong whose configuration cannot be read", () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    // Stands in for a Kong whose GET /config is refused (an RBAC rule, a proxy in front): /status says DB-less.
    server = createServer((req, res) => {
      res.setHeader("content-type", "application/json");
      if (req.url === "/status") return res.end(JSON.stringify({ server: {} }));
      res.statusCode = 403;
      res.end(JSON.stringify({ message: "forbidden by the admin proxy" }));
    });
    await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((done) => server.close(() => done())));

  it("refuses rather than replace what it cannot see, pointing at --replace", async () => {
    expectOneLineFailure(
      await run([DEV, "--admin-url", url]),
      `apk-conf-to-kong: cannot merge into DB-less Kong at ${url}: reading what it holds failed (Kong's Admin API refused GET /config (403): forbidden by the admin proxy); POST /config would replace all it holds: pass --replace to load this run's configuration alone`,
    );
  });
});
