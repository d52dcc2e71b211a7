/**
 * Rewrites the request body's top-level `model` in place, byte for byte: every other byte (key order,
 * whitespace, number spellings such as 1.0 or 1e0, unicode escapes, large integers) reaches the provider as
 * the client wrote it, which a JSON.parse/JSON.stringify round trip would not guarantee.
 */

/** A body checked to be one JSON object, ready to take any model: checked once, before a model is chosen. */
export type PreparedBody =
  | {
      ok: true;
      /** `"stream": true`: the answer is an SSE stream, which must never be proxied buffered. */
      streaming: boolean;
      /** The `model` the client named, when it is a string. */
      requestedModel: string | undefined;
      /** The body naming `model`; the very Buffer it was prepared from when it already names exactly that. */
      withModel(model: string): Buffer;
    }
  | { ok: false; problem: string };

const utf8 = new TextDecoder("utf-8", { fatal: true });

export function prepareBody(raw: Buffer): PreparedBody {
  if (raw.length === 0) return { ok: false, problem: "request body is empty; expected a JSON object" };
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return { ok: false, problem: "request body is not valid UTF-8" };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return { ok: false, problem: `request body is not valid JSON: ${(error as Error).message}` };
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return { ok: false, problem: `request body must be a JSON object, got ${kindOf(parsed)}` };
  }
  const { open, spans } = topLevelModelValues(text);
  const empty = Object.keys(parsed).length === 0;
  // The decoder drops a UTF-8 byte order mark, and providers refuse one: the body sent is always without it.
  const hasBom = raw.length >= 3 && raw[0] === 0xef && raw[1] === 0xbb && raw[2] === 0xbf;
  return {
    ok: true,
    streaming: (parsed as { stream?: unknown }).stream === true,
    requestedModel:
      typeof (parsed as { model?: unknown }).model === "string"
        ? (parsed as { model: string }).model
        : undefined,
    withModel(model) {
      const replacement = JSON.stringify(model);
      const named = spans.length > 0 && spans.every(([start, end]) => text.slice(start, end) === replacement);
      if (named) return hasBom ? Buffer.from(text, "utf8") : raw;
      if (spans.length === 0) {
        const insert = `"model":${replacement}${empty ? "" : ","}`;
        return Buffer.from(text.slice(0, open + 1) + insert + text.slice(open + 1), "utf8");
      }
      let out = "";
      let from = 0;
      for (const [start, end] of spans) {
        out += text.slice(from, start) + replacement;
        from = end;
      }
      return Buffer.from(out + text.slice(from), "utf8");
    },
  };
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

/**
 * Positions of the values of every top-level "model" key (JSON.parse keeps the last of duplicate keys, so a
 * rewrite must replace them all), in a text already known to be one valid JSON object.
 */
function topLevelModelValues(text: string): { open: number; spans: [number, number][] } {
  const open = text.indexOf("{");
  const spans: [number, number][] = [];
  let i = skipSpace(text, open + 1);
  while (text[i] !== "}") {
    const keyEnd = endOfString(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipSpace(text, skipSpace(text, keyEnd) + 1); // past ':'
    const valueEnd = endOfValue(text, i);
    if (key === "model") spans.push([i, valueEnd]);
    i = skipSpace(text, valueEnd);
    if (text[i] === ",") i = skipSpace(text, i + 1);
  }
  return { open, spans };
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r"))
    i++;
  return i;
}

/** text[i] is the opening quote; returns the index just past the closing one. */
function endOfString(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === "\\") j++;
    else if (text[j] === '"') return j + 1;
  }
  return text.length;
}

function endOfValue(text: string, i: number): number {
  const c = text[i];
  if (c === '"') return endOfString(text, i);
  if (c === "{" || c === "[") {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const d = text[j];
      if (d === '"') j = endOfString(text, j) - 1;
      else if (d === "{" || d === "[") depth++;
      else if (d === "}" || d === "]") {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return text.length;
  }
  let j = i;
  while (j < text.length && !",}] \t\n\r".includes(text[j] as string)) j++;
  return j;
}
