/**
 * Operator actions on the status listener (issue 22), through the real plugin server behind the Kong double:
 * with MODEL_BASED_ROUND_ROBIN_OPERATOR_TOKEN set, POST /actions/lift puts a 429-suspended entry back into
 * rotation, POST /actions/drain keeps an entry out (no traffic, `drained` in /status); a missing or wrong token
 * gets 401, bad input 400 naming the field, an unknown plugin 404, another method 405. The token never appears
 * in the log. And an entry whose auth_header_value is a vault reference to an unset variable is never sent to.
 */
import { request } from "undici";
import { beforeAll, describe, expect, it } from "vitest";
import type { KongDouble } from "../../kong-double";
import { statusListenerUrl } from "../../scripts/lib/status-url";
import type { MockProvider } from "../../scripts/mock-provider";
import { type Bed, chat, DIRECT, loadPlugin, PLUGIN_DIR, PLUGIN_NAME, useBed } from "../support/harness";

const TOKEN = "operator-token-for-tests-0123456789";
const HELLO = { model: "client-choice", messages: [{ role: "user", content: "hi" }] };

const statusUrl = (kong: KongDouble) => statusListenerUrl(kong, 5000);

describe("operator actions on the status listener", () => {
  let bed: Bed;
  let a: MockProvider;
  let b: MockProvider;
  let base: string;

  useBed(
    {
      providers: 2,
      kongOptions: {
        pluginServers: [
          {
            name: PLUGIN_NAME,
            pluginsDirectory: PLUGIN_DIR,
            // As a Kong-managed start command sets them (such a server sees no environment): flags.
            args: ["--status-listen", "127.0.0.1:0", "--operator-token", TOKEN],
          },
        ],
      },
    },
    (started) => {
      bed = started;
      [a, b] = started.providers as [MockProvider, MockProvider];
    },
  );

  /**
   * Two entries, m-a on provider a and m-b on provider b, and one request (to m-a): Kong starts a plugin
   * instance on a configuration's first request, and the actions know the configurations instances run with.
   * Returns the plugin id.
   */
  const configure = async () => {
    const id = await loadPlugin(bed.kong, {
      ...DIRECT,
      production_models: [
        { model: "m-a", endpoint: `${a.url}/v1` },
        { model: "m-b", endpoint: `${b.url}/v1` },
      ],
    });
    expect((await chat(bed.kong, HELLO)).json.model).toBe("m-a");
    await bed.kong.settled();
    a.clearRequests();
    return id;
  };

  beforeAll(async () => {
    // The listener starts with the first plugin instance.
    await configure();
    base = await statusUrl(bed.kong);
  });

  async function act(path: string, body: unknown, opts: { token?: string | null; method?: string } = {}) {
    const token = opts.token === undefined ? TOKEN : opts.token;
    const res = await request(`${base}${path}`, {
      method: (opts.method ?? "POST") as "POST",
      headers: {
        "content-type": "application/json",
        ...(token !== null && { authorization: `Bearer ${token}` }),
      },
      ...(opts.method === undefined || opts.method === "POST"
        ? { body: typeof body === "string" ? body : JSON.stringify(body) }
        : {}),
    });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, json: text === "" ? undefined : JSON.parse(text) };
  }

  async function statusOf(id: string) {
    const res = await request(`${base}/status`);
    // biome-ignore lint/suspicious/noExplicitAny: the test reads the report's fields by name
    return ((await res.body.json()) as any).plugins[id];
  }

  const models = async (n: number) => {
    const out: (string | number)[] = [];
    for (let i = 0; i < n; i++) {
      const reply = await chat(bed.kong, HELLO);
      await bed.kong.settled();
      out.push(reply.status === 200 ? (reply.json.model as string) : reply.status);
    }
    return out;
  };

  it("lifts a 429 suspension: the entry serves again at once", async () => {
    const id = await configure();
    a.failNext({ status: 429, headers: { "retry-after": "3600" } });
    expect(await models(2)).toEqual(["m-b", 429]);
    expect(await models(3)).toEqual(["m-b", "m-b", "m-b"]);

    const lifted = await act("/actions/lift", { plugin_id: id, model: "m-a" });
    expect(lifted.status).toBe(200);
    expect(lifted.json).toEqual({
      action: "lift",
      entries: [
        {
          plugin_id: id,
          environment: "production",
          model: "m-a",
          endpoint: `${a.url}/v1`,
          changed: true,
          suspended: false,
        },
      ],
    });
    expect((await models(4)).sort()).toEqual(["m-a", "m-a", "m-b", "m-b"]);
    expect((await statusOf(id)).production.entries[0]).toMatchObject({ model: "m-a", suspended: false });
  });

  it("drains an entry: no traffic for it, `drained` in /status, until it is lifted", async () => {
    const id = await configure();
    const drained = await act("/actions/drain", {
      plugin_id: id,
      environment: "production",
      endpoint: `${b.url}/v1`,
      seconds: 86_400,
    });
    expect(drained.status).toBe(200);
    expect(drained.json.entries).toHaveLength(1);
    expect(drained.json.entries[0]).toMatchObject({
      model: "m-b",
      changed: true,
      suspended: true,
      reason: "drained by an operator for 86400 s",
      cause: "drained",
      signal: "operator",
    });
    expect(await models(4)).toEqual(["m-a", "m-a", "m-a", "m-a"]);
    expect(b.requests).toHaveLength(0);
    const entry = (await statusOf(id)).production.entries[1];
    expect(entry).toMatchObject({ model: "m-b", suspended: true, cause: "drained", signal: "operator" });
    expect(entry.ms_left).toBeGreaterThan(86_000_000);

    // Everything drained: the all-suspended answer.
    expect((await act("/actions/drain", { plugin_id: id, seconds: 60 })).status).toBe(200);
    expect(await models(1)).toEqual([503]);
    expect((await act("/actions/lift", { plugin_id: id })).json.entries).toHaveLength(2);
    expect((await models(2)).sort()).toEqual(["m-a", "m-b"]);
  });

  it("answers 401 without the token or with a wrong one, and never logs it", async () => {
    const id = await configure();
    for (const token of [null, "wrong", `${TOKEN}x`, TOKEN.slice(0, -1)]) {
      const res = await act("/actions/drain", { plugin_id: id, seconds: 60 }, { token });
      expect(res.status).toBe(401);
      expect(res.json.message).toMatch(/Authorization: Bearer/);
      expect(res.headers["www-authenticate"]).toMatch(/^Bearer/);
    }
    // Nothing was drained by the refused requests.
    expect((await statusOf(id)).production.entries.every((e: { suspended: boolean }) => !e.suspended)).toBe(
      true,
    );
    expect(bed.kong.logs.some((l) => l.message.includes(TOKEN))).toBe(false);
  });

  it("answers bad input with 400 naming the field, an unknown plugin with 404, another method with 405", async () => {
    const id = await configure();
    const cases: [unknown, string, number, RegExp][] = [
      ["{", "/actions/lift", 400, /^body: not valid JSON/],
      [{}, "/actions/lift", 400, /^plugin_id: required/],
      [{ plugin_id: id, environment: "staging" }, "/actions/lift", 400, /^environment:/],
      [{ plugin_id: id }, "/actions/drain", 400, /^seconds: required/],
      [{ plugin_id: id, seconds: -5 }, "/actions/drain", 400, /^seconds: expected a positive number/],
      [{ plugin_id: id, seconds: 31 * 86_400 }, "/actions/drain", 400, /^seconds: at most/],
      [{ plugin_id: "00000000-0000-4000-8000-000000000000" }, "/actions/lift", 404, /^plugin_id: no plugin/],
      [{ plugin_id: id, model: "nope" }, "/actions/lift", 404, /no entry/],
      [{ plugin_id: id }, "/actions/undo", 404, /^not found/],
    ];
    for (const [body, path, status, message] of cases) {
      const res = await act(path, body);
      expect([path, body, res.status]).toEqual([path, body, status]);
      expect(res.json.message).toMatch(message);
    }
    const get = await act("/actions/lift", undefined, { method: "GET" });
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe("POST");
  });

  it("never sends to an entry whose key is an unset vault secret, shows no_key and logs the reference once", async () => {
    const id = await loadPlugin(bed.kong, {
      ...DIRECT,
      production_models: [
        {
          model: "m-a",
          endpoint: `${a.url}/v1`,
          auth_header_name: "Authorization",
          auth_header_value: "{vault://env/UNSET_VAR}",
        },
        { model: "m-b", endpoint: `${b.url}/v1` },
      ],
    });
    expect(await models(4)).toEqual(["m-b", "m-b", "m-b", "m-b"]);
    expect(a.requests).toHaveLength(0);
    const status = await statusOf(id);
    expect(status.production.entries[0]).toMatchObject({
      model: "m-a",
      suspended: true,
      reason: "no_key",
      cause: "no_key",
      key_reference: "{vault://env/UNSET_VAR}",
    });
    const lines = bed.kong.logs.filter((l) => l.message.includes(`plugin ${id}: no_key`));
    expect(lines).toHaveLength(1);
    expect(lines[0]?.message).toContain(`production m-a at ${a.url}/v1 (from {vault://env/UNSET_VAR})`);

    // Nothing else left: the all-suspended answer, never a keyless request.
    b.failNext({ status: 429, headers: { "retry-after": "60" } });
    expect(await models(2)).toEqual([429, 503]);
    expect(a.requests).toHaveLength(0);
  });
});
