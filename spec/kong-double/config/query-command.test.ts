import path from "node:path";
import { describe, expect, it } from "vitest";
import { createAdminApi } from "../../../kong-double/config/admin-api";
import { ConfigStore } from "../../../kong-double/config/config-store";
import type { PluginInfo } from "../../../kong-double/config/model";
import { PluginLoadError, parsePluginDump, runQueryCommand } from "../../../kong-double/config/plugin-info";

const repoRoot = path.resolve(__dirname, "../../..");
const serverBin = path.join(repoRoot, "node_modules/kong-pdk/bin/kong-js-pluginserver");

/** The query command Kong runs for one plugin server: the real kong-js-pluginserver on a fixture directory. */
function queryArgv(fixture: string): string[] {
  const dir = path.join(repoRoot, "spec/fixtures/config-side", fixture);
  return [process.execPath, serverBin, "--plugins-directory", dir, "--dump-all-plugins"];
}

async function loadError(fixture: string): Promise<PluginLoadError> {
  const error = await runQueryCommand(queryArgv(fixture), { kongVersion: "3.9", server: fixture }).catch(
    (e) => e,
  );
  expect(error).toBeInstanceOf(PluginLoadError);
  return error as PluginLoadError;
}

describe("runQueryCommand on the real kong-js-pluginserver", () => {
  it("registers a well-formed plugin with its name, version, priority, phases and config fields", async () => {
    const [plugin, ...rest] = await runQueryCommand(queryArgv("good"), {
      kongVersion: "3.9",
      server: "good",
    });
    expect(rest).toEqual([]);
    expect(plugin).toEqual({
      name: "good",
      version: "1.2.3",
      priority: 10,
      phases: ["access"],
      server: "good",
      configFields: [
        { greeting: { type: "string", default: "hello", description: "The greeting to send back." } },
        { weight: { type: "integer", between: [1, 65535], default: 1 } },
        { tags: { type: "set", elements: { type: "string" } } },
        { api_key: { type: "string", referenceable: true } },
      ],
    });
  });

  it("refuses a Version that is not x.y.z with Kong's message", async () => {
    const error = await loadError("bad-version");
    expect(error.message.split("\n  query command:")[0]).toBe(
      `error loading plugin schemas: on plugin 'bad-version': Plugin "bad-version" cannot be loaded because its VERSION field does not follow the "x.y.z" format, got: "1.2.3.4".\n`,
    );
  });

  it("refuses a description shorter than 10 characters and names the field", async () => {
    const error = await loadError("short-description");
    expect(error.problems).toEqual([
      { path: "config.greeting.description", rule: "length must be at least 10" },
    ]);
    expect(error.message).toContain(
      "error loading plugin schemas: on plugin 'short-description': schema violation (fields.1: {",
    );
    expect(error.message).toContain('description = "length must be at least 10"');
    expect(error.message).toContain("\n  config.greeting.description: length must be at least 10");
  });

  it("refuses a field type Kong does not know and names the field", async () => {
    const error = await loadError("unknown-type");
    expect(error.problems).toEqual([
      {
        path: "config.greeting.type",
        rule: "expected one of: array, set, string, number, boolean, integer, foreign, map, record, function, json",
      },
    ]);
    expect(error.message).toMatch(
      /^error loading plugin schemas: on plugin 'unknown-type': schema violation \(fields\.1: /,
    );
  });

  it("fails like Kong when a console.log at module top level breaks the JSON on stdout", async () => {
    const error = await loadError("noisy");
    expect(error.message).toBe(
      "failed loading external plugins: failed decoding plugin info: Expected value but found invalid token at character 1 " +
        "(pluginserver 'noisy': its query command must print nothing but the JSON plugin info on stdout)" +
        `\n  query command: ${queryArgv("noisy").join(" ")}`,
    );
  });

  it("names the command when it cannot run at all", async () => {
    const error = await runQueryCommand(["/nonexistent/kong-js-pluginserver", "--dump-all-plugins"], {
      kongVersion: "3.9",
      server: "ghost",
    }).catch((e) => e);
    expect(error).toBeInstanceOf(PluginLoadError);
    expect(error.message).toMatch(
      /^query command of pluginserver 'ghost' \(\/nonexistent\/kong-js-pluginserver --dump-all-plugins\) could not run: .*ENOENT/,
    );
  });

  it("gives up on a command that does not finish in time", async () => {
    const error = await runQueryCommand([process.execPath, "-e", "setTimeout(() => {}, 10000)"], {
      kongVersion: "3.9",
      server: "sleepy",
      timeoutMs: 300,
    }).catch((e) => e);
    expect(error).toBeInstanceOf(PluginLoadError);
    expect(error.message).toMatch(
      /^query command of pluginserver 'sleepy' \(.*\) did not finish within 300 ms$/,
    );
  });
});

describe("entity checks in the plugin info's Schema (a dump printed by the server itself)", () => {
  // As a server other than kong-pdk's could print it: checks at the Schema's top level and in config's record.
  const dump = JSON.stringify([
    {
      Name: "checked",
      Version: "1.0.0",
      Priority: 5,
      Phases: ["access"],
      Schema: {
        name: "checked",
        fields: [
          {
            config: {
              type: "record",
              fields: [{ a: { type: "string" } }, { b: { type: "string" } }, { c: { type: "integer" } }],
              entity_checks: [{ at_least_one_of: ["a", "b"] }],
            },
          },
        ],
        entity_checks: [{ mutually_required: ["config.b", "config.c"] }],
      },
    },
  ]);

  function post(config: Record<string, unknown>) {
    const [info] = parsePluginDump(dump, { kongVersion: "3.9", server: "checked" }) as [PluginInfo];
    const api = createAdminApi(new ConfigStore(), {
      database: "postgres",
      plugins: new Map([[info.name, info]]),
      version: "3.9.3",
    });
    return api({
      method: "POST",
      path: "/plugins",
      query: new URLSearchParams(),
      body: { name: "checked", config },
    });
  }

  it("keeps both kinds of check", () => {
    const [info] = parsePluginDump(dump, { kongVersion: "3.9", server: "checked" });
    expect(info).toMatchObject({
      entityChecks: [{ mutually_required: ["config.b", "config.c"] }],
      configEntityChecks: [{ at_least_one_of: ["a", "b"] }],
    });
  });

  it("enforces config's checks on the config and the top-level ones on the plugin, with Kong's 400", async () => {
    expect(await post({})).toMatchObject({
      status: 400,
      body: {
        name: "schema violation",
        fields: { config: { "@entity": ["at least one of these fields must be non-empty: 'a', 'b'"] } },
      },
    });
    expect(await post({ b: "x" })).toMatchObject({
      status: 400,
      body: {
        name: "schema violation",
        fields: { "@entity": ["all or none of these fields must be set: 'config.b', 'config.c'"] },
      },
    });
    expect((await post({ a: "x" })).status).toBe(201);
    expect((await post({ b: "x", c: 1 })).status).toBe(201);
  });
});
