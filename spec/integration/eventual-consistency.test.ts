/**
 * With a database, an Admin API change reaches a Kong worker's proxy later (its router and plugins iterator are
 * rebuilt from a timer, K3.9.3 kong/runloop/handler.lua): the double's propagationDelayMs. The plugin's state is
 * keyed by its id, so its rotation carries across the change.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Bed, chat, PLUGIN_NAME, startBed } from "../support/harness";

const DELAY = 800;
const HELLO = { model: "gpt-4o", input: "Hello" };
const later = () => new Promise((r) => setTimeout(r, DELAY + 300));

let bed: Bed;
beforeAll(async () => {
  bed = await startBed({ providers: 2, kongOptions: { database: "postgres", propagationDelayMs: DELAY } });
});
afterAll(async () => bed?.stop());

async function admin(method: string, path: string, body?: object) {
  const res = await fetch(`${bed.kong.adminUrl}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    ...(body && { body: JSON.stringify(body) }),
  });
  expect(res.status, await res.clone().text()).toBeLessThan(300);
  return res.status === 204 ? undefined : ((await res.json()) as { id: string });
}

it("applies Admin API changes after the delay; a request-termination 429 in between suspends no entry", async () => {
  const [a, b] = bed.providers as [Bed["providers"][number], Bed["providers"][number]];
  await admin("POST", "/services", { name: "llm", url: `${a.url}/v1` });
  await admin("POST", "/services/llm/routes", { name: "chat", paths: ["/openai/v1"] });
  await admin("POST", "/services/llm/plugins", {
    name: PLUGIN_NAME,
    config: {
      production_models: [
        { model: "m1", endpoint: a.url },
        { model: "m2", endpoint: b.url },
      ],
    },
  });
  expect((await chat(bed.kong, HELLO)).status).toBe(404); // not routed yet
  await later();
  expect((await chat(bed.kong, HELLO)).json?.model).toBe("m1");

  const termination = await admin("POST", "/routes/chat/plugins", {
    name: "request-termination",
    config: { status_code: 429 },
  });
  expect((await chat(bed.kong, HELLO)).json?.model).toBe("m2"); // the old plugins still answer
  await later();
  const terminated = [await chat(bed.kong, HELLO), await chat(bed.kong, HELLO)]; // routed m1, m2
  expect(terminated.map((r) => r.status)).toEqual([429, 429]);

  await admin("DELETE", `/plugins/${termination?.id}`);
  expect((await chat(bed.kong, HELLO)).status).toBe(429); // a deleted plugin keeps answering for a while (m1)
  await later();
  const replies = [];
  for (let i = 0; i < 4; i++) replies.push((await chat(bed.kong, HELLO)).json?.model);
  await bed.kong.settled();
  expect(replies).toEqual(["m2", "m1", "m2", "m1"]);
  expect(bed.kong.logs.filter((l) => l.message.includes("suspended"))).toEqual([]);
});
