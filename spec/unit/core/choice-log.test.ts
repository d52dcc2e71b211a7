import { describe, expect, it } from "vitest";
import {
  choiceLog,
  modelHeaders,
  routedFrom,
} from "../../../plugins/model-based-round-robin/core/choice-log";
import { normalizeConfig } from "../../../plugins/model-based-round-robin/core/config";
import type { Route } from "../../../plugins/model-based-round-robin/core/routing";

const config = normalizeConfig({
  __plugin_id: "p1",
  production_models: [{ model: "gpt#4o", endpoint: "https://[::1]:8443/v1/" }],
});
const entry = config.production[0] as Route["entry"];
const route = (extra: Partial<Route> = {}): Route => ({
  kind: "route",
  env: "production",
  entry,
  scheme: undefined,
  path: undefined,
  body: undefined,
  requestedModel: undefined,
  modelled: true,
  clearHeaders: [],
  probe: false,
  ...extra,
});

describe("the choice log", () => {
  it("reads back, from Kong's saved log data, the entry the choice names (a # in the model, an IPv6 host)", () => {
    const serialized = {
      ai: { "model-based-round-robin": { meta: choiceLog("p1", route({ probe: true })) } },
    };
    expect(routedFrom(JSON.parse(JSON.stringify(serialized)))).toEqual({
      env: "production",
      entryKey: entry.key,
      probe: true,
      relayed: false,
    });
  });

  it("marks a request Kong sent through the relay (relayed in the log value), which log leaves alone", () => {
    const meta = { ...choiceLog("p1", route({ probe: false })), relayed: true };
    expect(routedFrom({ ai: { "model-based-round-robin": { meta } } })).toMatchObject({ relayed: true });
  });

  it("finds no choice in log data without one, or with a malformed one", () => {
    expect(routedFrom(undefined)).toBeUndefined();
    expect(routedFrom({ ai: { "ai-proxy": { meta: { request_model: "x" } } } })).toBeUndefined();
    expect(
      routedFrom({ ai: { "model-based-round-robin": { meta: { environment: "staging" } } } }),
    ).toBeUndefined();
  });

  it("caps the requested model it logs", () => {
    const long = "m".repeat(1000);
    expect(choiceLog("p1", route({ requestedModel: long })).requested_model).toHaveLength(256);
  });
});

describe("the model headers", () => {
  const names = { served: "X-Kong-LLM-Model", requested: "X-Kong-LLM-Requested-Model" };

  it("name the served model, and the requested one only when it was replaced", () => {
    expect(modelHeaders(names, route())).toEqual({ "X-Kong-LLM-Model": "gpt#4o" });
    expect(modelHeaders(names, route({ requestedModel: "gpt-4.5" }))).toEqual({
      "X-Kong-LLM-Model": "gpt#4o",
      "X-Kong-LLM-Requested-Model": "gpt-4.5",
    });
  });

  it("are not sent when off, for a request without a model, or for a value a header cannot carry", () => {
    expect(modelHeaders(undefined, route())).toBeUndefined();
    expect(modelHeaders(names, route({ modelled: false }))).toBeUndefined();
    for (const bad of ["a\r\nX-Evil: 1", " padded", "ünïcode", "x".repeat(257)]) {
      expect(modelHeaders(names, route({ requestedModel: bad }))).toEqual({ "X-Kong-LLM-Model": "gpt#4o" });
    }
  });
});
