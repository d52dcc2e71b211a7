/**
 * What a JS value becomes once it crosses into Kong, and what Kong makes of it: the MessagePack → Lua → cjson
 * path of K3.9.3 kong/runloop/plugin_servers/rpc/mp_rpc.lua (lua-MessagePack 0.5.4, pinned in Kong's
 * rockspec) and OpenResty's lua-cjson as Kong configures it (kong/globalpatches.lua, kong/tools/cjson.lua).
 *
 * - msgpack nil is Lua nil: a nil map value is no key at all, a nil array element a hole; an unknown
 *   extension (a JS Date is ext -1) unpacks as nil too.
 * - msgpack bin and str are both Lua strings (bytes). A Lua string here is a JS string or, when its bytes came
 *   as bin, a Buffer.
 * - A Lua table is a LuaTable: integer keys from an array, string keys from a map, nothing else.
 * - Back to JS, lua-MessagePack (set_array'without_hole') packs a table whose keys are exactly 1..n as an
 *   array, an empty one as an empty array, and any other (a hole, a string key) as a map.
 * - cjson: a table whose keys are all positive integers is an array with `null` in the holes (Kong's
 *   encode_sparse_array(nil, nil, 2^15): ratio 2, safe 32768, no conversion, so an "excessively sparse array"
 *   error only past index 32768), any other non-empty table an object, an empty table `{}` (no array_mt
 *   survives msgpack); numbers "%.16g" (CJSON_MAX_PRECISION 16), NaN and ±inf an error; `/` escaped as `\/`.
 *   Object keys come out in Lua's hash order, which nothing can predict: the double keeps insertion order.
 */
export type LuaValue = undefined | boolean | number | string | Buffer | LuaTable;

export class LuaTable {
  constructor(
    readonly entries: Map<string | number, LuaValue> = new Map(),
    /** cjson's array_mt is set: cjson encodes the table as an array even when it is empty (`[]`). */
    readonly arrayMt = false,
  ) {}

  get(key: string | number): LuaValue {
    return this.entries.get(key);
  }

  /** Lua's ipairs: t[1], t[2], ... up to the first nil. */
  ipairs(): LuaValue[] {
    const out: LuaValue[] = [];
    for (let i = 1; this.entries.has(i); i++) out.push(this.entries.get(i));
    return out;
  }
}

export function luaType(v: LuaValue): "nil" | "boolean" | "number" | "string" | "table" {
  if (v === undefined) return "nil";
  if (typeof v === "boolean") return "boolean";
  if (typeof v === "number") return "number";
  if (typeof v === "string" || Buffer.isBuffer(v)) return "string";
  return "table";
}

const ARRAY_MT = Symbol("cjson.array_mt");

/**
 * Marks a JS array as a Lua table Kong made with cjson's array_mt (say, `balancer_data.tries`): cjson encodes it
 * as `[]` when empty. Only for tables Kong builds itself: nothing that crossed msgpack keeps a metatable.
 */
export function withArrayMt<T>(array: T[]): T[] {
  return Object.assign(array, { [ARRAY_MT]: true });
}

/** A value as Kong's lua-MessagePack unpacks it from what @msgpack/msgpack decoded on Kong's side. */
export function toLua(v: unknown): LuaValue {
  if (v === null || v === undefined) return undefined;
  if (typeof v === "boolean" || typeof v === "number" || typeof v === "string") return v;
  if (typeof v === "bigint") return Number(v);
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) {
    const t = new LuaTable(new Map(), ARRAY_MT in v);
    v.forEach((e, i) => {
      const lua = toLua(e);
      if (lua !== undefined) t.entries.set(i + 1, lua);
    });
    return t;
  }
  if (typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    const t = new LuaTable();
    for (const [k, e] of Object.entries(v)) {
      const lua = toLua(e);
      if (lua !== undefined) t.entries.set(k, lua);
    }
    return t;
  }
  return undefined; // an extension type (Date, ExtData): lua-MessagePack skips unknown extensions as nil
}

/** A Lua value as JS receives it after lua-MessagePack packed it (strings as str, holes make a map). */
export function fromLua(v: LuaValue): unknown {
  if (v === undefined) return undefined;
  if (Buffer.isBuffer(v)) return v.toString("utf8");
  if (!(v instanceof LuaTable)) return v;
  const n = v.entries.size;
  const isArray = [...v.entries.keys()].every(
    (k) => typeof k === "number" && Number.isInteger(k) && k >= 1 && k <= n,
  );
  if (isArray) return Array.from({ length: n }, (_, i) => fromLua(v.entries.get(i + 1)));
  return Object.fromEntries([...v.entries].map(([k, e]) => [luaKeyString(k), fromLua(e)]));
}

/** A Lua string's text (bin bytes read as UTF-8). */
export function luaText(v: string | Buffer): string {
  return typeof v === "string" ? v : v.toString("utf8");
}

/** A Lua string's bytes. */
export function luaBytes(v: string | Buffer): Buffer {
  return typeof v === "string" ? Buffer.from(v, "utf8") : v;
}

/** C's "%.<precision>g", which both cjson (16) and Lua's tostring (14) use for numbers. */
export function formatG(n: number, precision: number): string {
  if (Number.isNaN(n)) return "nan";
  if (!Number.isFinite(n)) return n > 0 ? "inf" : "-inf";
  if (n === 0) return Object.is(n, -0) ? "-0" : "0";
  const [mantissa, e] = n.toExponential(precision - 1).split("e") as [string, string];
  const exp = Number(e);
  const strip = (s: string) => (s.includes(".") ? s.replace(/\.?0+$/, "") : s);
  if (exp < -4 || exp >= precision) {
    return `${strip(mantissa)}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  return strip(n.toFixed(precision - 1 - exp));
}

/** Lua's tostring of a number or boolean, as kong.log and header values do it. */
export function luaToString(v: LuaValue): string {
  if (typeof v === "number") return formatG(v, 14);
  if (typeof v === "boolean") return String(v);
  if (v === undefined) return "nil";
  if (v instanceof LuaTable) return "table: 0x00000000";
  return luaText(v);
}

function luaKeyString(k: string | number): string {
  return typeof k === "number" ? formatG(k, 14) : k;
}

export class CjsonError extends Error {}

const ESCAPES: Record<number, string> = { 8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r" };

function jsonString(bytes: Buffer): string {
  let out = '"';
  for (const b of bytes) {
    if (b === 0x22) out += '\\"';
    else if (b === 0x5c) out += "\\\\";
    else if (b === 0x2f) out += "\\/";
    else if (b < 0x20) out += ESCAPES[b] ?? `\\u00${b.toString(16).padStart(2, "0")}`;
    else out += String.fromCharCode(b); // a byte, kept as it is (the result is read as latin1)
  }
  return `${out}"`;
}

const SPARSE_RATIO = 2;
const SPARSE_SAFE = 2 ** 15;

function encodeValue(v: LuaValue, depth: number): string {
  if (depth > 1000) throw new CjsonError(`Cannot serialise, excessive nesting (${depth})`);
  switch (luaType(v)) {
    case "nil":
      return "null";
    case "boolean":
      return String(v);
    case "number":
      if (!Number.isFinite(v as number))
        throw new CjsonError("Cannot serialise number: must not be NaN or Infinity");
      return formatG(v as number, 16);
    case "string":
      return jsonString(luaBytes(v as string | Buffer));
  }
  const t = v as LuaTable;
  const keys = [...t.entries.keys()];
  if (keys.length === 0) return t.arrayMt ? "[]" : "{}";
  if (keys.every((k) => typeof k === "number" && Number.isInteger(k) && k >= 1)) {
    const max = Math.max(...(keys as number[]));
    if (max > keys.length * SPARSE_RATIO && max > SPARSE_SAFE) {
      throw new CjsonError("Cannot serialise table: excessively sparse array");
    }
    return `[${Array.from({ length: max }, (_, i) => encodeValue(t.get(i + 1), depth + 1)).join(",")}]`;
  }
  const parts = keys.map(
    (k) => `${jsonString(Buffer.from(luaKeyString(k), "utf8"))}:${encodeValue(t.get(k), depth + 1)}`,
  );
  return `{${parts.join(",")}}`;
}

/** cjson.safe.encode as Kong configures it: the JSON bytes, or the error cjson returns. */
export function cjsonEncode(v: LuaValue): { json: Buffer } | { error: string } {
  try {
    return { json: Buffer.from(encodeValue(v, 1), "latin1") };
  } catch (error) {
    if (error instanceof CjsonError) return { error: error.message };
    throw error;
  }
}
