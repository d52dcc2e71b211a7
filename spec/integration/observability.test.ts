import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import {
  type Bed,
  chat,
  DIRECT,
  llmService,
  loadPluginWithFileLog,
  PLUGIN_NAME,
  send,
  useBed,
} from "../support/harness";

const dir = mkdtempSync(join(tmpdir(), "observability-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the choice, told to the client and to Kong's log", () => {
  let bed: Bed;
  let a: Bed["providers"][number];
  useBed({ providers: 1 }, (started) => {
    bed = started;
    a = started.providers[0] as typeof a;
  });

  /** The plugin on the service with a fresh id, and file-log writing every request's log data to a file. */
  const configure = (pluginConfig: Record<string, unknown>, opts: { global?: boolean } = {}) =>
    loadPluginWithFileLog(
      bed.kong,
      dir,
      { ...DIRECT, ...pluginConfig },
      { service: { url: `${a.url}/v1` }, ...opts },
    );

  const gpt4o = (extra: Record<string, unknown> = {}) => ({
    production_models: [{ model: "gpt-4o", endpoint: `${a.url}/v1`, ...extra }],
  });

  it("names the served model and the one the client asked for, when it replaced it", async () => {
    await configure(gpt4o());
    const replaced = await chat(bed.kong, { model: "gpt-4.5", input: "Hello" });
    expect(replaced.headers["x-kong-llm-model"]).toBe("gpt-4o");
    expect(replaced.headers["x-kong-llm-requested-model"]).toBe("gpt-4.5");
    const named = await chat(bed.kong, { model: "gpt-4o", input: "Hello" });
    expect(named.headers["x-kong-llm-model"]).toBe("gpt-4o");
    expect(named.headers["x-kong-llm-requested-model"]).toBeUndefined();
    const unnamed = await chat(bed.kong, { input: "Hello" });
    expect(unnamed.headers["x-kong-llm-model"]).toBe("gpt-4o");
    expect(unnamed.headers["x-kong-llm-requested-model"]).toBeUndefined();
  });

  it("uses the configured header names, and sends none with model_headers off", async () => {
    await configure({ ...gpt4o(), served_model_header: "X-Model", requested_model_header: "X-Asked" });
    const renamed = await chat(bed.kong, { model: "gpt-4.5" });
    expect(renamed.headers["x-model"]).toBe("gpt-4o");
    expect(renamed.headers["x-asked"]).toBe("gpt-4.5");
    expect(renamed.headers["x-kong-llm-model"]).toBeUndefined();

    await configure({ ...gpt4o(), model_headers: false });
    const off = await chat(bed.kong, { model: "gpt-4.5" });
    expect(off.status).toBe(200);
    expect(off.headers["x-kong-llm-model"]).toBeUndefined();
    expect(off.headers["x-kong-llm-requested-model"]).toBeUndefined();
  });

  it("refuses a header name that is not an HTTP token, naming the field", async () => {
    const res = await request(`${bed.kong.adminUrl}/config`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(llmService({ ...gpt4o(), served_model_header: "X Model" })),
    });
    expect(res.statusCode).toBe(400);
    expect(await res.body.text()).toContain("served_model_header");
  });

  it("sends no model header for a request without a body (GET /models names no model)", async () => {
    await configure(gpt4o());
    const reply = await send(bed.kong, { method: "GET", path: "/openai/v1/models" });
    expect(reply.headers["x-kong-llm-model"]).toBeUndefined();
  });

  it("leaves out a requested model that cannot travel in a header, and logs it", async () => {
    const { logged } = await configure(gpt4o());
    const reply = await chat(bed.kong, { model: "gpt\n4.5 ✓" });
    await bed.kong.settled();
    expect(reply.status).toBe(200);
    expect(reply.headers["x-kong-llm-model"]).toBe("gpt-4o");
    expect(reply.headers["x-kong-llm-requested-model"]).toBeUndefined();
    expect(logged()[0].ai[PLUGIN_NAME].meta.requested_model).toBe("gpt\n4.5 ✓");
  });

  it("writes the choice into Kong's log data as Kong's AI plugins do (ai.<plugin>.meta), for logging plugins and Prometheus", async () => {
    const { id, logged } = await configure({
      ...gpt4o({ auth_header_name: "Authorization", auth_header_value: "Bearer sk-never-logged" }),
    });
    await chat(bed.kong, { model: "gpt-4.5", input: "Hello" });
    await bed.kong.settled();
    const [line] = logged();
    const host = new URL(a.url).hostname;
    const port = new URL(a.url).port;
    // Kong's Prometheus plugin (ai_metrics on) counts ai_llm_requests_total{ai_provider=provider_name,
    // ai_model=request_model} for each entry of `ai`.
    expect(line.ai).toEqual({
      [PLUGIN_NAME]: {
        meta: {
          plugin_id: id,
          provider_name: host,
          request_model: "gpt-4o",
          requested_model: "gpt-4.5",
          endpoint: `http://${host}:${port}/v1`,
          environment: "production",
          probe: false,
        },
      },
    });
    expect(JSON.stringify(line)).not.toContain("sk-never-logged");
  });

  it("reads the service once per few seconds when bound to it, every time when global", async () => {
    await configure(gpt4o());
    bed.kong.pdkCalls.reset();
    for (let i = 0; i < 3; i++) await chat(bed.kong, { model: "gpt-4o" });
    expect(bed.kong.pdkCalls.byPhase("access")["kong.router.get_service"]).toBe(1);

    await configure(gpt4o(), { global: true });
    bed.kong.pdkCalls.reset();
    for (let i = 0; i < 3; i++) await chat(bed.kong, { model: "gpt-4o" });
    expect(bed.kong.pdkCalls.byPhase("access")["kong.router.get_service"]).toBe(3);
  });
});
