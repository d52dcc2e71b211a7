/**
 * A 429 Kong itself makes says nothing about a model's quota: the plugin suspends an entry only when
 * kong.response.get_source() is "service". request-termination (priority 2) answers after this plugin's access
 * (769) has routed the request, so the plugin's log phase sees status 429 with source "exit".
 */
import { randomUUID } from "node:crypto";
import { expect, it } from "vitest";
import { type Bed, chat, DIRECT, llmService, PLUGIN_NAME, useBed } from "../support/harness";

const HELLO = { model: "gpt-4o", input: "Hello" };

let bed: Bed;
let a: Bed["providers"][number];
let b: Bed["providers"][number];

useBed({ providers: 2 }, (started) => {
  bed = started;
  [a, b] = started.providers as [typeof a, typeof b];
});

/** The plugin under `pluginId` on the service, and `routePlugins` (bundled ones) on the route. */
async function configure(pluginId: string, routePlugins: object[] = []) {
  const config = llmService({
    production_models: [
      { model: "m1", endpoint: a.url },
      { model: "m2", endpoint: b.url },
    ],
    on_quota_exceed_suspend_duration: 60,
    ...DIRECT,
  }) as { services: { url: string; plugins: { id?: string }[]; routes: { plugins?: object[] }[] }[] };
  const [service] = config.services as [(typeof config.services)[number]];
  service.url = `${a.url}/v1`;
  (service.plugins[0] as { id?: string }).id = pluginId;
  (service.routes[0] as { plugins?: object[] }).plugins = routePlugins;
  await bed.kong.loadConfig(config);
}

const suspendedLines = () =>
  bed.kong.logs.filter((l) => l.plugin === PLUGIN_NAME && l.message.includes("suspended"));

it("a 429 from request-termination after the plugin routed suspends no entry", async () => {
  const id = randomUUID();
  const before = suspendedLines().length;
  await configure(id, [{ name: "request-termination", config: { status_code: 429, message: "slow down" } }]);
  const terminated = [];
  for (let i = 0; i < 3; i++) terminated.push(await chat(bed.kong, HELLO));
  await bed.kong.settled();
  expect(terminated.map((r) => [r.status, r.json])).toEqual(
    Array.from({ length: 3 }, () => [429, { message: "slow down" }]),
  );
  // The plugin routed each one (its rotation moved: m1, m2, m1), but Kong answered: no provider saw them.
  expect(a.requests).toHaveLength(0);
  expect(b.requests).toHaveLength(0);

  // The same plugin id without request-termination: its state carries over, and no entry is out of rotation.
  await configure(id);
  const replies = [];
  for (let i = 0; i < 4; i++) replies.push(await chat(bed.kong, HELLO));
  await bed.kong.settled();
  expect(replies.map((r) => [r.status, r.json?.model])).toEqual([
    [200, "m2"],
    [200, "m1"],
    [200, "m2"],
    [200, "m1"],
  ]);
  expect(a.requests).toHaveLength(2);
  expect(b.requests).toHaveLength(2);
  expect(suspendedLines().length).toBe(before);
});

it("the same 429 from the provider does suspend the entry (the control for the test above)", async () => {
  const id = randomUUID();
  const before = suspendedLines().length;
  await configure(id);
  a.failNext({ status: 429 });
  expect((await chat(bed.kong, HELLO)).status).toBe(429);
  await bed.kong.settled();
  const replies = [];
  for (let i = 0; i < 3; i++) replies.push((await chat(bed.kong, HELLO)).json?.model);
  expect(replies).toEqual(["m2", "m2", "m2"]);
  expect(suspendedLines().length).toBe(before + 1);
});
