import { describe, expect, it } from "vitest";
import { prepareBody } from "../../../plugins/model-based-round-robin/core/request-body";

const rewrite = (text: string, model = "gpt-4o") => {
  const r = prepareBody(Buffer.from(text, "utf8"));
  return r.ok ? r.withModel(model).toString("utf8") : r;
};

describe("rewriting the body's model byte for byte", () => {
  it("replaces only the top-level model's value", () => {
    expect(rewrite('{"model":"gpt-4.5","input":"Hello"}')).toBe('{"model":"gpt-4o","input":"Hello"}');
  });

  it("leaves whitespace, number spellings, escapes and big integers as the client wrote them", () => {
    const body =
      '{ "temperature" : 1.0,\n "n": 1e0, "seed": 12345678901234567890, "x": "\\u00e9",\n "model" : "a" }';
    expect(rewrite(body)).toBe(body.replace('"model" : "a"', '"model" : "gpt-4o"'));
  });

  it("leaves nested model keys alone", () => {
    expect(rewrite('{"tools":[{"model":"x"}],"meta":{"model":"y"},"model":"z"}')).toBe(
      '{"tools":[{"model":"x"}],"meta":{"model":"y"},"model":"gpt-4o"}',
    );
  });

  it("replaces a model that is not a string, and an escaped key that means model", () => {
    expect(rewrite('{"model":{"a":[1,2]},"b":1}')).toBe('{"model":"gpt-4o","b":1}');
    expect(rewrite('{"mod\\u0065l":null}')).toBe('{"mod\\u0065l":"gpt-4o"}');
  });

  it("replaces every duplicate top-level model (JSON.parse would keep the last)", () => {
    expect(rewrite('{"model":"a","model":"b"}')).toBe('{"model":"gpt-4o","model":"gpt-4o"}');
  });

  it("inserts the model when the body has none", () => {
    expect(rewrite('{"input":"hi"}')).toBe('{"model":"gpt-4o","input":"hi"}');
    expect(rewrite("{}")).toBe('{"model":"gpt-4o"}');
    expect(rewrite(" { } ")).toBe(' {"model":"gpt-4o" } ');
  });

  it("escapes the model name as JSON", () => {
    expect(rewrite('{"model":"x"}', 'we"ird')).toBe('{"model":"we\\"ird"}');
  });

  it.each([
    ["", /empty/],
    ["not json", /not valid JSON/],
    ["[1]", /must be a JSON object, got an array/],
    ['"s"', /got a string/],
    ["null", /got null/],
    ["42", /got a number/],
  ])("refuses %j with a message naming the problem", (text, message) => {
    const r = prepareBody(Buffer.from(text));
    expect(r.ok).toBe(false);
    expect(r.ok ? "" : r.problem).toMatch(message);
  });

  it("says a body asks for a stream only when its top-level stream is true", () => {
    const streaming = (text: string) => {
      const r = prepareBody(Buffer.from(text, "utf8"));
      return r.ok ? r.streaming : r.problem;
    };
    expect(streaming('{"model":"m","stream":true}')).toBe(true);
    expect(streaming('{"model":"m","stream":false}')).toBe(false);
    expect(streaming('{"model":"m","stream":"true"}')).toBe(false);
    expect(streaming('{"model":"m","options":{"stream":true}}')).toBe(false);
    expect(streaming('{"model":"m"}')).toBe(false);
  });

  it("hands back the very same bytes when the body already names the model", () => {
    const raw = Buffer.from('{ "model" : "gpt-4o", "model":"gpt-4o", "n": 1.0 }', "utf8");
    const prepared = prepareBody(raw);
    if (!prepared.ok) throw new Error(prepared.problem);
    expect(prepared.withModel("gpt-4o")).toBe(raw);
    expect(prepared.withModel("gpt-4")).not.toBe(raw);
    const mixed = prepareBody(Buffer.from('{"model":"gpt-4o","model":"x"}', "utf8"));
    expect(mixed.ok && mixed.withModel("gpt-4o").toString("utf8")).toBe(
      '{"model":"gpt-4o","model":"gpt-4o"}',
    );
  });

  it("refuses bytes that are not UTF-8", () => {
    const r = prepareBody(Buffer.from([0x7b, 0xff, 0x7d]));
    expect(r).toEqual({ ok: false, problem: "request body is not valid UTF-8" });
  });

  it("drops a UTF-8 byte order mark whether or not the model had to change", () => {
    const withBom = (text: string) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]);
    const r = prepareBody(withBom('{"model":"a"}'));
    expect(r.ok && r.withModel("a").toString("utf8")).toBe('{"model":"a"}');
    expect(r.ok && r.withModel("b").toString("utf8")).toBe('{"model":"b"}');
  });

  it("finds the top-level model past strings with escaped quotes, backslashes and multi-byte characters", () => {
    // The scan works on bytes: a quote preceded by an odd run of backslashes is inside its string, an even run
    // ends it; no byte of é, ✓ or 😀 is taken for JSON's structure.
    const tricky = [
      "ends with a backslash \\",
      'a quote " inside',
      'three \\" then more',
      'é ✓ 😀 {not [structure] "model": 1}',
      "x".repeat(70_000),
    ];
    const messages = tricky.map((content) => ({ role: "user", content, model: "nested" }));
    // The second key means "model" too, written with an escape: JSON.parse keeps the last of the two.
    const body = `{"messages":${JSON.stringify(messages)},"mod\\u0065l":"escaped","model":"plain","stream":true}`;
    const prepared = prepareBody(Buffer.from(body, "utf8"));
    if (!prepared.ok) throw new Error(prepared.problem);
    expect(prepared.streaming).toBe(true);
    const out = prepared.withModel("m-b").toString("utf8");
    expect(out).toBe(
      `{"messages":${JSON.stringify(messages)},"mod\\u0065l":"m-b","model":"m-b","stream":true}`,
    );
    expect(JSON.parse(out)).toEqual({ messages, model: "m-b", stream: true });
  });
});
