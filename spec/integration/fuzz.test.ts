/**
 * Fuzzed request bodies through the real plugin server behind the Kong double, with a fixed seed: every answer
 * is the plugin's 400 (or 413) or a proxied 200 whose body names the chosen model, never a 5xx, and the plugin
 * server never dies.
 */
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bed, loadPlugin, PRODUCTION_HOST, startBed } from "../support/harness";

/** mulberry32: a small seeded generator, so a failure replays exactly. */
function generator(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
  return { next, int, pick };
}

const FRAGMENTS = [
  "{",
  "}",
  "[",
  "]",
  '"model"',
  ":",
  ",",
  '"gpt-4o"',
  "null",
  "true",
  "1e309",
  "-0",
  '"\\u0000"',
  '"\\ud800"',
  " ",
  "\n",
  '"stream"',
  '"messages"',
  "\uFEFF",
  "é",
  '"\\""',
];

function fuzzedBody(rng: ReturnType<typeof generator>): Buffer {
  switch (rng.int(7)) {
    case 0: // random bytes
      return Buffer.from(Array.from({ length: rng.int(64) }, () => rng.int(256)));
    case 1: // a stream of JSON-ish fragments
      return Buffer.from(Array.from({ length: rng.int(24) }, () => rng.pick(FRAGMENTS)).join(""));
    case 2: {
      // a valid object, then cut or corrupted at one byte
      const text = Buffer.from(JSON.stringify({ model: "x", messages: [{ role: "user", content: "hi" }] }));
      const at = rng.int(text.length);
      return rng.next() < 0.5
        ? text.subarray(0, at)
        : Buffer.concat([text.subarray(0, at), Buffer.from([rng.int(256)]), text.subarray(at + 1)]);
    }
    case 3: // deep nesting
      return Buffer.from(`{"model":"x","a":${"[".repeat(rng.int(5000))}${"]".repeat(rng.int(5000))}}`);
    case 4: // duplicate and odd model values
      return Buffer.from(
        `{"model":${rng.pick(["1", "null", '"a"', "{}", "[]"])},"model":${rng.pick(['"b"', "2", "false"])}}`,
      );
    case 5: // valid JSON of another kind
      return Buffer.from(rng.pick(["[]", "null", "42", '"s"', "true", "{}", '{"model":"\\u00e9"}']));
    default: // a large valid body
      return Buffer.from(JSON.stringify({ model: "x", input: "y".repeat(rng.int(200_000)) }));
  }
}

describe("fuzzed bodies (seed 20261125)", () => {
  let bed: Bed;

  beforeAll(async () => {
    bed = await startBed({ providers: 2 });
    const [a, b] = bed.providers as [Bed["providers"][number], Bed["providers"][number]];
    await loadPlugin(bed.kong, {
      production_models: [
        { model: "m1", endpoint: `${a.url}/v1` },
        { model: "m2", endpoint: `${b.url}/v1` },
      ],
      max_request_body_size: 150_000,
    });
  });
  afterAll(async () => bed?.stop());

  it("answers 400, 413 or a proxied 200 naming the model, never a 5xx, and the server never dies", async () => {
    const rng = generator(20261125);
    const statuses = new Map<number, number>();
    const concurrency = 16;
    let sent = 0;
    const worker = async () => {
      while (sent < 1000) {
        sent++;
        const body = fuzzedBody(rng);
        const res = await request(`${bed.kong.proxyUrl}/openai/v1/chat/completions`, {
          method: "POST",
          headers: { host: PRODUCTION_HOST, "content-type": "application/json" },
          body,
        });
        const text = await res.body.text();
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        if (res.statusCode === 200) expect(["m1", "m2"]).toContain(JSON.parse(text).model);
        else
          expect(
            [400, 413],
            `${res.statusCode} for ${body.subarray(0, 80).toString("hex")}: ${text}`,
          ).toContain(res.statusCode);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    await bed.kong.settled();
    expect(bed.kong.logs.filter((l) => /terminated/.test(l.message))).toEqual([]);
    expect(statuses.get(200)).toBeGreaterThan(100);
    expect(statuses.get(400)).toBeGreaterThan(100);
  }, 120_000);
});
