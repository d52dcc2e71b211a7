import { describe, expect, it } from "vitest";
import { luaPatternMatches } from "../../../kong-double/config/lua-pattern";
import type { SchemaField } from "../../../kong-double/config/model";
import { validateRecord } from "../../../kong-double/config/schema";

const errorsOf = (fields: SchemaField[], input: unknown) => {
  const result = validateRecord(fields, input);
  if (result.ok) throw new Error(`accepted: ${JSON.stringify(result.value)}`);
  return result.errors;
};
const acceptedValue = (fields: SchemaField[], input: unknown) => {
  const result = validateRecord(fields, input);
  if (!result.ok) throw new Error(`rejected: ${JSON.stringify(result.errors)}`);
  return result.value;
};

describe("Kong's schema engine on a plugin config", () => {
  it("fills defaults recursively, through nested records and the records inside arrays", () => {
    const fields: SchemaField[] = [
      { limits: { type: "record", fields: [{ per_minute: { type: "integer", default: 60 } }] } },
      {
        models: {
          type: "array",
          default: [],
          elements: {
            type: "record",
            fields: [{ name: { type: "string" } }, { weight: { type: "integer", default: 1 } }],
          },
        },
      },
    ];
    expect(acceptedValue(fields, { models: [{ name: "a" }, { name: "b", weight: 4 }] })).toEqual({
      limits: { per_minute: 60 },
      models: [
        { name: "a", weight: 1 },
        { name: "b", weight: 4 },
      ],
    });
  });

  it("leaves unset optional fields absent and drops nulls, as the data plane reads them", () => {
    const fields: SchemaField[] = [{ note: { type: "string" } }, { other: { type: "string", len_min: 0 } }];
    expect(acceptedValue(fields, {})).toEqual({});
    // an empty string survives only where len_min allows it (Kong drops "" from fields with len_min > 0)
    expect(acceptedValue(fields, { note: null, other: "" })).toEqual({ other: "" });
  });

  it("rejects unknown fields, wrong types and missing required fields with Kong's messages", () => {
    const fields: SchemaField[] = [
      { name: { type: "string", required: true } },
      { count: { type: "integer" } },
      { ratio: { type: "number" } },
      { on: { type: "boolean" } },
      { list: { type: "array", elements: { type: "string" } } },
      { bag: { type: "set", elements: { type: "string" } } },
      { dict: { type: "map", keys: { type: "string" }, values: { type: "integer" } } },
      { rec: { type: "record", fields: [] } },
    ];
    expect(
      errorsOf(fields, { extra: 1, count: 1.5, ratio: "1", on: "yes", list: "a", bag: 3, dict: "x", rec: 5 }),
    ).toEqual({
      extra: "unknown field",
      name: "required field missing",
      count: "expected an integer",
      ratio: "expected a number",
      on: "expected a boolean",
      list: "expected an array",
      bag: "expected a set",
      dict: "expected a map",
      rec: "expected a record",
    });
    expect(errorsOf(fields, { name: 5 })).toEqual({ name: "expected a string" });
  });

  it("applies between, gt, one_of, len_min/len_max, starts_with and the implicit len_min 1 of strings", () => {
    const fields: SchemaField[] = [
      { port: { type: "integer", between: [1, 65535] } },
      { ratio: { type: "number", gt: 0 } },
      { mode: { type: "string", one_of: ["fast", "slow"] } },
      { code: { type: "string", len_min: 2, len_max: 3 } },
      { longcode: { type: "string", len_max: 3 } },
      { path: { type: "string", starts_with: "/" } },
      { name: { type: "string" } },
      { items: { type: "array", elements: { type: "string" }, len_min: 1 } },
    ];
    expect(
      errorsOf(fields, {
        port: 70000,
        ratio: 0,
        mode: "medium",
        code: "a",
        longcode: "abcd",
        path: "v1",
        name: "",
        items: [],
      }),
    ).toEqual({
      port: "value should be between 1 and 65535",
      ratio: "value must be greater than 0",
      mode: "expected one of: fast, slow",
      code: "length must be at least 2",
      longcode: "length must be at most 3",
      path: "should start with: /",
      name: "length must be at least 1",
      items: "length must be at least 1",
    });
  });

  it("matches Lua patterns as string.match does", () => {
    const fields: SchemaField[] = [
      { method: { type: "string", match: "^%u+$" } },
      { id: { type: "string", not_match: "%s" } },
    ];
    expect(errorsOf(fields, { method: "get", id: "a b" })).toEqual({
      method: "invalid value: get",
      id: "invalid value: a b",
    });
    expect(acceptedValue(fields, { method: "GET", id: "ab" })).toEqual({ method: "GET", id: "ab" });
  });

  it("keys array element errors by position, as JSON arrays with null holes", () => {
    const fields: SchemaField[] = [
      {
        production_models: {
          type: "array",
          elements: { type: "record", fields: [{ weight: { type: "integer", between: [1, 65535] } }] },
        },
      },
    ];
    expect(errorsOf(fields, { production_models: [{ weight: 1 }, { weight: 0 }] })).toEqual({
      production_models: [null, { weight: "value should be between 1 and 65535" }],
    });
  });

  it("lets a vault reference in a referenceable string skip the other validators", () => {
    const fields: SchemaField[] = [{ key: { type: "string", referenceable: true, starts_with: "sk-" } }];
    expect(acceptedValue(fields, { key: "{vault://env/openai-key}" })).toEqual({
      key: "{vault://env/openai-key}",
    });
    expect(errorsOf(fields, { key: "pk-1" })).toEqual({ key: "should start with: sk-" });
    expect(errorsOf([{ key: { type: "string", starts_with: "sk-" } }], { key: "{vault://env/x}" })).toEqual({
      key: "should start with: sk-",
    });
  });

  it("removes duplicates from sets and checks map keys and values", () => {
    const fields: SchemaField[] = [
      { tags: { type: "set", elements: { type: "string" } } },
      { headers: { type: "map", keys: { type: "string" }, values: { type: "string", len_max: 3 } } },
    ];
    expect(acceptedValue(fields, { tags: ["a", "b", "a"], headers: { x: "1" } })).toEqual({
      tags: ["a", "b"],
      headers: { x: "1" },
    });
    expect(errorsOf(fields, { headers: { x: "long value" } })).toEqual({
      headers: "length must be at most 3",
    });
  });

  it("runs entity checks of nested records", () => {
    const fields: SchemaField[] = [
      {
        auth: {
          type: "record",
          fields: [{ user: { type: "string" } }, { token: { type: "string" } }],
          entity_checks: [{ mutually_required: ["user", "token"] }],
        },
      },
    ];
    expect(errorsOf(fields, { auth: { user: "ann" } })).toEqual({
      auth: { "@entity": ["all or none of these fields must be set: 'user', 'token'"] },
    });
  });
});

describe("Lua patterns", () => {
  it.each([
    ["^%u+$", "POST", true],
    ["^%u+$", "Post", false],
    ["^[^:]+:.*$", "x-a:1", true],
    ["^[^:]+:.*$", ":1", false],
    ["^%*%.", "*.example.com", true],
    ["%.%*$", "example.*", true],
    ["^[^*]*%*?[^*]*$", "a*b*c", false],
    ["^%d+[%.%d]*$", "1.2.3", true],
    ["a-b", "ab", true],
    ["^a-$", "aaa", true],
    ["%bxy", "axbyc", true],
    ["%f[%w]%w+", "  word", true],
    ["^(a)%1$", "aa", true],
    ["//", "/a//b", true],
    ["[%w_-]+", "!!!", false],
  ])("%s against %s is %s", (pattern, subject, expected) => {
    expect(luaPatternMatches(subject, pattern)).toBe(expected);
  });
});
