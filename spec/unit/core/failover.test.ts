import { describe, expect, it } from "vitest";
import { balancerFor } from "../../../plugins/model-based-round-robin/core/balancer";
import { normalizeConfig } from "../../../plugins/model-based-round-robin/core/config";
import {
  type Attempt,
  type AttemptResult,
  attemptHeaders,
  failover,
  passedHeaders,
} from "../../../plugins/model-based-round-robin/core/failover";
import { pluginCounts } from "../../../plugins/model-based-round-robin/core/metrics";
import {
  checkBody,
  decide,
  type ModelReadyBody,
  type Route,
  selfProxies,
} from "../../../plugins/model-based-round-robin/core/routing";

let ids = 0;
function setup(extra: Record<string, unknown> = {}) {
  const config = normalizeConfig({
    __plugin_id: `failover-${++ids}`,
    production_models: [
      { model: "a", endpoint: "http://one.test/v1", weight: 2 },
      { model: "b", endpoint: "https://two.test/v1", auth_header_name: "api-key", auth_header_value: "sk-b" },
      { model: "c", endpoint: "http://[::1]:8080/v1" },
    ],
    failover_attempts: 2,
    ...extra,
  });
  return { config, balancer: balancerFor(config) };
}

function body(text: string): ModelReadyBody {
  const checked = checkBody(Buffer.from(text, "utf8"));
  if (checked.kind !== "body") throw new Error("not a good body");
  return checked;
}

const head = { contentLength: "30", credentials: ["authorization"] };
const upstream = { uri: "/v1/chat/completions", serviceProtocol: "http", servicePath: "/v1" };
const HELLO = body('{"model":"x","input":"hi"}');

function firstRoute(
  config: ReturnType<typeof setup>["config"],
  balancer: ReturnType<typeof setup>["balancer"],
) {
  const route = decide(config, balancer, { head, body: HELLO, upstream });
  if (route.kind !== "route") throw new Error("not routed");
  return route;
}

const request = {
  head,
  body: HELLO,
  upstream,
  headers: { authorization: ["Bearer client"], "x-trace": ["1"], connection: ["x-trace"] },
  method: "POST",
  query: "q=1",
  timeouts: {},
};

const ok = (model: string): AttemptResult => ({
  kind: "answer",
  status: 200,
  headers: {
    "content-type": "application/json",
    "x-upstream": "dropped",
    "x-ratelimit-remaining-requests": "9",
  },
  body: Buffer.from(JSON.stringify({ model })),
});

describe("which requests the plugin sends itself", () => {
  it("only non-streaming bodies, with failover on, and no WebSocket upgrade", () => {
    const { config } = setup();
    expect(selfProxies(config, head, HELLO)).toBe(true);
    expect(selfProxies(config, head, body('{"stream":true}'))).toBe(false);
    expect(selfProxies(config, { ...head, upgrade: "websocket" }, HELLO)).toBe(false);
    expect(selfProxies(config, head, { kind: "bodiless" })).toBe(false);
    expect(selfProxies(setup({ failover_attempts: 0 }).config, head, HELLO)).toBe(false);
  });
});

describe("what an attempt sends and what the client gets back", () => {
  it("sends the client's headers minus hop-by-hop ones and the client's key when the entry has its own", () => {
    const { config, balancer } = setup();
    const route = firstRoute(config, balancer);
    const keyed: Route = {
      ...route,
      entry: config.production[1] as Route["entry"],
      clearHeaders: ["authorization"],
    };
    expect(
      attemptHeaders(keyed, { ...request.headers, "api-key": ["client"], te: ["trailers"] }, 12),
    ).toEqual({
      host: "two.test",
      "api-key": "sk-b",
      "content-length": "12",
    });
    const ipv6: Route = { ...route, entry: config.production[2] as Route["entry"], clearHeaders: [] };
    expect(attemptHeaders(ipv6, { authorization: ["Bearer client"], accept: ["a", "b"] }, 3)).toEqual({
      authorization: "Bearer client",
      accept: ["a", "b"],
      host: "[::1]",
      "content-length": "3",
    });
  });

  it("passes the headers a client acts on, and not the others", () => {
    expect(
      passedHeaders({
        "Content-Type": "application/json",
        "retry-after": "3",
        "x-ratelimit-reset-requests": "1s",
        "openai-processing-ms": "12",
        "anthropic-ratelimit-requests-remaining": "0",
        "x-request-id": "r",
        "set-cookie": "s",
        server: "x",
        "content-length": "9",
      }),
    ).toEqual({
      "content-type": "application/json",
      "retry-after": "3",
      "x-ratelimit-reset-requests": "1s",
      "openai-processing-ms": "12",
      "anthropic-ratelimit-requests-remaining": "0",
      "x-request-id": "r",
    });
  });
});

describe("failing over", () => {
  it("goes on to the next untried entries with the body's model rewritten, the query kept", async () => {
    const { config, balancer } = setup({ failover_on_statuses: [429, 500] });
    const sent: Attempt[] = [];
    const outcome = await failover(
      config,
      balancer,
      firstRoute(config, balancer),
      request,
      async (attempt) => {
        sent.push(attempt);
        return sent.length < 3
          ? { kind: "answer", status: 500, headers: {}, body: Buffer.from("{}") }
          : ok("c");
      },
    );
    expect(sent.map((s) => `${s.scheme}://${s.host}:${s.port}${s.target} ${s.body.toString()}`)).toEqual([
      'http://one.test:80/v1/chat/completions?q=1 {"model":"a","input":"hi"}',
      'https://two.test:443/v1/chat/completions?q=1 {"model":"b","input":"hi"}',
      'http://::1:8080/v1/chat/completions?q=1 {"model":"c","input":"hi"}',
    ]);
    expect(outcome.answer.status).toBe(200);
    expect(outcome.answer.headers).toMatchObject({
      "content-type": "application/json",
      "x-ratelimit-remaining-requests": "9",
      "X-Kong-LLM-Model": "c",
      "X-Kong-LLM-Attempts": "3",
    });
    expect(outcome.answer.headers["x-upstream"]).toBeUndefined();
    expect(outcome.log).toMatchObject({ request_model: "c", attempts: 3 });
    expect(pluginCounts(config.pluginId).production).toMatchObject({ selfProxied: 1, failovers: 2 });
  });

  it("answers 502 when no provider could be reached, and benches each", async () => {
    const { config, balancer } = setup();
    const outcome = await failover(config, balancer, firstRoute(config, balancer), request, async () => ({
      kind: "failed",
      why: "connect",
      message: "ECONNREFUSED",
    }));
    expect(outcome.answer.status).toBe(502);
    expect(outcome.refusal?.body.error.code).toBe("upstream_unreachable");
    expect(outcome.warnings).toHaveLength(3);
    expect(outcome.warnings[0]).toMatch(/benched http:\/\/one\.test:80\/v1#a \(production\) for 5000 ms/);
  });

  it("stops when the budget is spent, whatever attempts are left", async () => {
    const { config, balancer } = setup({ failover_timeout: 1 });
    let clock = 0;
    const sent: Attempt[] = [];
    const outcome = await failover(
      config,
      balancer,
      firstRoute(config, balancer),
      request,
      async (attempt) => {
        sent.push(attempt);
        clock = attempt.deadlineMs;
        return { kind: "failed", why: "budget", message: "no answer" };
      },
      () => clock,
    );
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ deadlineMs: 1000, connectTimeoutMs: 1000, readTimeoutMs: 1000 });
    expect(outcome.answer.status).toBe(504);
  });

  it("benches no entry for the budget's end: neither when it ran out nor when it cut a timeout short", async () => {
    const { config, balancer } = setup({ failover_timeout: 1 });
    let clock = 0;
    const outcomes: AttemptResult[] = [
      { kind: "failed", why: "timeout", message: "timed out reading the answer", during: "read" },
      { kind: "failed", why: "budget", message: "no answer" },
    ];
    const outcome = await failover(
      config,
      balancer,
      firstRoute(config, balancer),
      request,
      async (attempt) => {
        clock = attempt.deadlineMs - 500;
        return outcomes.shift() ?? { kind: "failed", why: "budget", message: "no answer" };
      },
      () => clock,
    );
    expect(outcome.answer.status).toBe(504);
    expect(outcome.warnings).toEqual([]);
    // None was benched before: each one's first bench is the shortest.
    for (const entry of config.production)
      expect(balancer.benchUnreachable("production", entry.key)).toBe(5000);
  });

  it("benches no entry for a request Node will not send or an answer too large to hold", async () => {
    const { config, balancer } = setup();
    const outcome = await failover(config, balancer, firstRoute(config, balancer), request, async () => ({
      kind: "failed",
      why: "refused",
      message: "request not sent",
    }));
    expect(outcome.answer.status).toBe(502);
    expect(outcome.warnings).toEqual([]);
  });

  it("sends a header value as the bytes Kong read (UTF-8), which Node's client would refuse as characters", () => {
    const { config, balancer } = setup();
    const route = firstRoute(config, balancer);
    const headers = attemptHeaders(route, { "x-user": ["Zoë 🚀"], "x-plain": ["ascii"] }, 2);
    expect(Buffer.from(headers["x-user"] as string, "latin1").toString("utf8")).toBe("Zoë 🚀");
    expect(headers["x-plain"]).toBe("ascii");
  });

  it("gives each attempt the service's timeouts, within what is left of the budget", async () => {
    const { config, balancer } = setup();
    const sent: Attempt[] = [];
    await failover(
      config,
      balancer,
      firstRoute(config, balancer),
      { ...request, timeouts: { connectMs: 2000, readMs: 90_000 } },
      async (attempt) => {
        sent.push(attempt);
        return ok("a");
      },
      () => 0,
    );
    expect(sent[0]).toMatchObject({ connectTimeoutMs: 2000, readTimeoutMs: 50_000, deadlineMs: 50_000 });
  });

  it("takes a failover turn without disturbing the tried entry's place in the rotation", () => {
    const { config, balancer } = setup({
      production_models: [
        { model: "a", endpoint: "http://one.test/v1" },
        { model: "b", endpoint: "http://two.test/v1" },
      ],
    });
    const first = balancer.pick("production");
    expect(first).toMatchObject({ entry: { model: "a" } });
    const key = (first as { entry: { key: string } }).entry.key;
    expect(balancer.pickExcept("production", new Set([key]))).toMatchObject({ entry: { model: "b" } });
    const keys = new Set(config.production.map((e) => e.key));
    expect(balancer.pickExcept("production", keys)).toEqual({ kind: "exhausted" });
    // a's failed turn was a turn (it stays in debt), and b's failover turn took nothing from a: b, then a.
    const next = [balancer.pick("production"), balancer.pick("production")];
    expect(next.map((s) => (s as { entry: { model: string } }).entry.model)).toEqual(["b", "a"]);
  });
});
