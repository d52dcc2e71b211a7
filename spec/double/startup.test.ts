/** Kong's load checks on the real kong-js-pluginserver's query output, with fixture plugins good and bad. */
import { mkdtempSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { queryArgv } from "../../scripts/lib/pluginserver-settings";
import { metaschemaProblems, runQueryCommand } from "../support/kong-double/plugin-info";

const FIXTURES = resolve(process.cwd(), "spec/fixtures/plugins");
const SERVER = resolve(process.cwd(), "node_modules/kong-pdk/bin/kong-js-pluginserver");

function query(pluginsDirectory: string, kongVersion: "3.9" | "3.8" = "3.9") {
  const argv = queryArgv({
    name: "t",
    kongPrefix: "/tmp",
    sockName: "t.sock",
    pluginsDirectory,
    serverBin: SERVER,
  });
  return runQueryCommand([process.execPath, ...argv], { kongVersion, server: "t" });
}

describe("Kong's checks on the query command's output", () => {
  it("accepts a plugin whose dump is pure JSON with Name, x.y.z Version, integer Priority, Phases and a valid schema", async () => {
    const [info] = await query(`${FIXTURES}/probe`);
    expect(info).toMatchObject({ name: "probe", version: "1.0.0", priority: 1000 });
    expect(info?.phases.sort()).toEqual(["access", "log"]);
    expect(info?.configFields).toEqual([
      { message: expect.objectContaining({ type: "string", default: "hello" }) },
    ]);
  });

  it("refuses a Version that is not x.y.z", async () => {
    await expect(query(`${FIXTURES}/bad-version`)).rejects.toThrow(
      /VERSION field does not follow the "x.y.z" format/,
    );
  });

  it("refuses a description shorter than 10 characters", async () => {
    await expect(query(`${FIXTURES}/short-description`)).rejects.toThrow(
      /config.size.description: length must be between 10 and 500/,
    );
  });

  it("refuses a field type Kong does not know", async () => {
    await expect(query(`${FIXTURES}/unknown-type`)).rejects.toThrow(/config.when.type: expected one of/);
  });

  it("refuses output that is not pure JSON (a console.log at module load breaks Kong's start)", async () => {
    await expect(query(`${FIXTURES}/noisy-stdout`)).rejects.toThrow(
      /failed decoding plugin info.*loading noisy-stdout/,
    );
  });

  it("takes only the first plugin of a server on 3.9, all of them on 3.8", async () => {
    const dir = mkdtempSync(join(tmpdir(), "two-plugins-"));
    symlinkSync(`${FIXTURES}/probe/probe.js`, join(dir, "probe.js"));
    symlinkSync(`${FIXTURES}/bad-version/bad-version.js`, join(dir, "zz-other.js"));
    expect((await query(dir, "3.9")).map((p) => p.name)).toEqual(["probe"]);
    await expect(query(dir, "3.8")).rejects.toThrow(/bad-version/);
  });

  it("applies the metaschema's companions: arrays need elements, maps keys and values, records fields", () => {
    expect(
      metaschemaProblems([{ xs: { type: "array", description: "a list of things" } }], "config"),
    ).toEqual(["config.xs: field of type 'array' must declare 'elements'"]);
    expect(
      metaschemaProblems(
        [{ m: { type: "map", keys: { type: "string" }, description: "a map of things" } }],
        "config",
      ),
    ).toEqual(["config.m: field of type 'map' must declare 'keys' and 'values'"]);
    expect(
      metaschemaProblems(
        [{ n: { type: "integer", between: "1-2", match: "x", description: "a number here" } }],
        "config",
      ),
    ).toEqual(["config.n.match: not valid for type integer"]);
  });
});
