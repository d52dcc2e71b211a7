import { describe, expect, it } from "vitest";
import { checkPluginSchema } from "../../../kong-double/config/metaschema";
import { PluginLoadError, parsePluginDump } from "../../../kong-double/config/plugin-info";

/** The dump kong-pdk prints for one plugin whose `Schema` export is `fields`. */
const dumpOf = (fields: unknown[], extra: Record<string, unknown> = {}) =>
  JSON.stringify([
    {
      Name: "p",
      Version: "1.0.0",
      Priority: 1,
      Phases: ["access"],
      Schema: { name: "p", fields: [{ config: { type: "record", fields } }] },
      ...extra,
    },
  ]);
const problemsOf = (fields: unknown[]) =>
  checkPluginSchema({ name: "p", fields: [{ config: { type: "record", fields } }] }).problems;

describe("Kong's metaschema on a plugin's config fields", () => {
  it("accepts Kong's types with their companions and validators", () => {
    expect(
      problemsOf([
        { a: { type: "array", elements: { type: "string", one_of: ["x"] }, default: [] } },
        { m: { type: "map", keys: { type: "string" }, values: { type: "integer", between: [1, 2] } } },
        { r: { type: "record", fields: [{ s: { type: "string", match: "^%w+$", referenceable: true } }] } },
        { j: { type: "json", json_schema: { inline: { type: "object" } } } },
        { n: { type: "number", gt: 0, description: "A ratio above zero." } },
      ]),
    ).toEqual([]);
  });

  it.each([
    [{ a: { type: "array" } }, "config.a", "field of type 'array' must declare 'elements'"],
    [{ s: { type: "set" } }, "config.s", "field of type 'set' must declare 'elements'"],
    [
      { m: { type: "map", keys: { type: "string" } } },
      "config.m",
      "field of type 'map' must declare 'values'",
    ],
    [{ r: { type: "record" } }, "config.r", "field of type 'record' must declare 'fields'"],
    [{ j: { type: "json" } }, "config.j", "field of type 'json' must declare 'json_schema'"],
    [
      { s: { type: "string", between: [1, 2] } },
      "config.s",
      "field of type 'string' cannot have attribute 'between'",
    ],
    [
      { i: { type: "integer", match: "%d" } },
      "config.i",
      "field of type 'integer' cannot have attribute 'match'",
    ],
    [
      { b: { type: "boolean", one_of: [true] } },
      "config.b",
      "field of type 'boolean' cannot have attribute 'one_of'",
    ],
    [{ s: { type: "string", default: 5 } }, "config.s.default", "expected a string"],
    [
      { s: { type: "string", description: "Too short" } },
      "config.s.description",
      "length must be at least 10",
    ],
    [
      { s: { type: "string", description: "x".repeat(501) } },
      "config.s.description",
      "length must be at most 500",
    ],
    [{ s: { type: "string", colour: "red" } }, "config.s.colour", "unknown field"],
    [{ s: { type: "string", required: "yes" } }, "config.s.required", "expected a boolean"],
    [{ i: { type: "integer", between: [1] } }, "config.i.between", "length must be 2"],
    [
      { s: { type: "text" } },
      "config.s.type",
      "expected one of: array, set, string, number, boolean, integer, foreign, map, record, function, json",
    ],
  ])("refuses %j: %s %s", (field, path, rule) => {
    expect(problemsOf([field])).toContainEqual({ path, rule });
  });

  it("wants each entry of fields to be a map with exactly one key", () => {
    expect(problemsOf([{ a: { type: "string" }, b: { type: "string" } }])).toEqual([
      {
        path: "config.fields[1]",
        rule: "each entry in fields must be a map with exactly one key: the field's name",
      },
    ]);
  });

  it("reports metaschema failures as Kong's load error, with the paths below it", () => {
    let error: unknown;
    try {
      parsePluginDump(dumpOf([{ a: { type: "array" } }]), { kongVersion: "3.9", server: "p" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PluginLoadError);
    expect((error as Error).message).toBe(
      "error loading plugin schemas: on plugin 'p': schema violation (a: field of type 'array' must declare 'elements')" +
        "\n  config.a: field of type 'array' must declare 'elements'",
    );
  });
});

describe("parsePluginDump: Kong's load checks on the query command's output", () => {
  const parse = (stdout: string, kongVersion: "3.9" | "3.8" = "3.9") =>
    parsePluginDump(stdout, { kongVersion, server: "srv" });
  const failure = (stdout: string, kongVersion: "3.9" | "3.8" = "3.9") => {
    try {
      parse(stdout, kongVersion);
    } catch (e) {
      expect(e).toBeInstanceOf(PluginLoadError);
      return (e as Error).message;
    }
    throw new Error("accepted");
  };
  const two = JSON.stringify([JSON.parse(dumpOf([]))[0], { ...JSON.parse(dumpOf([]))[0], Name: "q" }]);

  it("takes only the first plugin of a server on 3.9 and all of them on 3.8", () => {
    expect(parse(two).map((p) => p.name)).toEqual(["p"]);
    expect(parse(two, "3.8").map((p) => p.name)).toEqual(["p", "q"]);
  });

  it("accepts {Protocol, Plugins}", () => {
    expect(
      parse(JSON.stringify({ Protocol: "MsgPack:1", Plugins: JSON.parse(two) })).map((p) => p.name),
    ).toEqual(["p"]);
  });

  it("refuses an empty list on 3.9, where Kong indexes the missing first entry", () => {
    expect(failure("[]")).toMatch(
      /^failed loading external plugins: attempt to index local 'info' \(a nil value\)/,
    );
    expect(parse("[]", "3.8")).toEqual([]);
  });

  it("refuses a JSON value that is not a table", () => {
    expect(failure('"hello"')).toBe(
      `failed loading external plugins: not a plugin info table: \npluginserver 'srv'\n"hello"`,
    );
    expect(failure('"hello"', "3.8")).toMatch(/^failed loading external plugins: Not a plugin info table/);
  });

  it("refuses empty output as cjson does", () => {
    expect(failure("")).toMatch(
      /^failed loading external plugins: failed decoding plugin info: Expected value but found T_END at character 1 /,
    );
  });

  it("checks Priority and Version as kong/db/dao/plugins.lua does", () => {
    expect(failure(dumpOf([], { Priority: 1.5 }))).toBe(
      `error loading plugin schemas: on plugin 'p': Plugin "p" cannot be loaded because its PRIORITY field is not a valid integer number, got: "1.5".\n`,
    );
    expect(failure(dumpOf([], { Priority: undefined }))).toBe(
      "error loading plugin schemas: on plugin 'p': p plugin is enabled but not installed;\nno plugin found",
    );
    expect(failure(dumpOf([], { Version: undefined }))).toBe(
      `error loading plugin schemas: on plugin 'p': Plugin "p" cannot be loaded because its VERSION field does not follow the "x.y.z" format, got: "nil".\n`,
    );
    expect(parse(dumpOf([], { Version: "v2.0" }))[0]?.version).toBe("2.0");
  });
});
