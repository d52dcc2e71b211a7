/**
 * The part of Kong's schema engine (kong/db/schema/init.lua, 3.9.3) a plugin's config and the double's
 * entities need: types, required, defaults (filled recursively), unknown fields, and the validators between,
 * one_of, len_min/len_max, match (Lua patterns, translated), starts_with, gt, and referenceable strings.
 * Errors come back as Kong nests them: `{ production_models: { "1": { weight: "value should be between ..." } } }`
 * (array elements keyed by their 1-based index).
 */
import type { FieldDef, SchemaField } from "./model";

export type FieldErrors = { [name: string]: string | FieldErrors };

export const VAULT_REFERENCE = /^\{vault:\/\/[^}]+\}$/;

const MESSAGES = {
  STRING: "expected a string",
  NUMBER: "expected a number",
  INTEGER: "expected an integer",
  BOOLEAN: "expected a boolean",
  ARRAY: "expected an array",
  SET: "expected a set",
  MAP: "expected a map",
  RECORD: "expected a record",
  REQUIRED: "required field missing",
  UNKNOWN: "unknown field",
} as const;

export type Validation = { ok: true; value: Record<string, unknown> } | { ok: false; errors: FieldErrors };

/** Validates a record against its fields, filling defaults; absent optional fields stay absent. */
export function validateRecord(fields: readonly SchemaField[], input: unknown): Validation {
  const result = checkRecord(fields, input);
  return typeof result.error === "undefined"
    ? { ok: true, value: result.value as Record<string, unknown> }
    : { ok: false, errors: typeof result.error === "string" ? { "@entity": result.error } : result.error };
}

interface Checked {
  value?: unknown;
  error?: string | FieldErrors;
}

function checkRecord(fields: readonly SchemaField[], input: unknown): Checked {
  if (input === null || typeof input !== "object" || Array.isArray(input)) return { error: MESSAGES.RECORD };
  const source = input as Record<string, unknown>;
  const known = new Map<string, FieldDef>();
  for (const field of fields) for (const [name, def] of Object.entries(field)) known.set(name, def);
  const errors: FieldErrors = {};
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(source)) if (!known.has(name)) errors[name] = MESSAGES.UNKNOWN;
  for (const [name, def] of known) {
    let value = source[name];
    if (value === null) value = undefined; // Kong turns JSON null into "unset" for optional fields
    if (value === undefined && def.default !== undefined) value = structuredClone(def.default);
    if (value === undefined) {
      if (def.required === true) errors[name] = MESSAGES.REQUIRED;
      else if (def.type === "record" && def.fields !== undefined && hasDefaults(def.fields)) {
        // Kong fills a nested record's defaults even when the record itself was not given.
        const nested = checkRecord(def.fields, {});
        if (nested.error === undefined) out[name] = nested.value;
      }
      continue;
    }
    const checked = checkField(def, value);
    if (checked.error !== undefined) errors[name] = checked.error;
    else out[name] = checked.value;
  }
  return Object.keys(errors).length > 0 ? { error: errors } : { value: out };
}

function hasDefaults(fields: readonly SchemaField[]): boolean {
  return fields.some((f) => Object.values(f).some((d) => d.default !== undefined || d.type === "record"));
}

function checkField(def: FieldDef, value: unknown): Checked {
  switch (def.type) {
    case "string": {
      if (typeof value !== "string") return { error: MESSAGES.STRING };
      if (def.referenceable === true && VAULT_REFERENCE.test(value)) return { value };
      const minLength = typeof def.len_min === "number" ? def.len_min : 1; // strings are len_min 1 implicitly
      if ([...value].length < minLength) return { error: `length must be at least ${minLength}` };
      if (typeof def.len_max === "number" && [...value].length > def.len_max)
        return { error: `length must be at most ${def.len_max}` };
      if (typeof def.match === "string" && !luaPatternToRegExp(def.match).test(value))
        return { error: `invalid value: ${value}` };
      if (typeof def.starts_with === "string" && !value.startsWith(def.starts_with))
        return { error: `should start with: ${def.starts_with}` };
      if (Array.isArray(def.one_of) && !def.one_of.includes(value))
        return { error: `expected one of: ${def.one_of.join(", ")}` };
      return { value };
    }
    case "integer":
    case "number": {
      if (typeof value !== "number" || !Number.isFinite(value))
        return { error: def.type === "integer" ? MESSAGES.INTEGER : MESSAGES.NUMBER };
      if (def.type === "integer" && !Number.isInteger(value)) return { error: MESSAGES.INTEGER };
      if (
        Array.isArray(def.between) &&
        (value < (def.between[0] as number) || value > (def.between[1] as number))
      ) {
        return { error: `value should be between ${def.between[0]} and ${def.between[1]}` };
      }
      if (typeof def.gt === "number" && !(value > def.gt))
        return { error: `value must be greater than ${def.gt}` };
      if (Array.isArray(def.one_of) && !def.one_of.includes(value))
        return { error: `expected one of: ${def.one_of.join(", ")}` };
      return { value };
    }
    case "boolean":
      return typeof value === "boolean" ? { value } : { error: MESSAGES.BOOLEAN };
    case "array":
    case "set": {
      // An empty JSON object is how an empty Lua table often arrives; Kong accepts it as an empty array.
      const list = isEmptyObject(value) ? [] : value;
      if (!Array.isArray(list)) return { error: def.type === "set" ? MESSAGES.SET : MESSAGES.ARRAY };
      if (typeof def.len_min === "number" && list.length < def.len_min)
        return { error: `length must be at least ${def.len_min}` };
      if (typeof def.len_max === "number" && list.length > def.len_max)
        return { error: `length must be at most ${def.len_max}` };
      const errors: FieldErrors = {};
      const out: unknown[] = [];
      list.forEach((item, i) => {
        const checked: Checked =
          def.elements === undefined ? { value: item } : checkField(def.elements, item);
        if (checked.error !== undefined) errors[String(i + 1)] = checked.error;
        else if (def.type !== "set" || !out.some((o) => JSON.stringify(o) === JSON.stringify(checked.value)))
          out.push(checked.value);
      });
      return Object.keys(errors).length > 0 ? { error: errors } : { value: out };
    }
    case "map": {
      if (value === null || typeof value !== "object" || Array.isArray(value))
        return isEmptyArray(value) ? { value: {} } : { error: MESSAGES.MAP };
      const errors: FieldErrors = {};
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        const key: Checked = def.keys === undefined ? { value: k } : checkField(def.keys, k);
        const val: Checked = def.values === undefined ? { value: v } : checkField(def.values, v);
        if (key.error !== undefined) errors[k] = key.error;
        else if (val.error !== undefined) errors[k] = val.error;
        else out[k] = val.value;
      }
      return Object.keys(errors).length > 0 ? { error: errors } : { value: out };
    }
    case "record":
      return checkRecord(def.fields ?? [], value);
    case "json":
      return { value };
    default:
      return { error: `invalid type: ${def.type}` };
  }
}

function isEmptyObject(v: unknown): boolean {
  return v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0;
}

function isEmptyArray(v: unknown): boolean {
  return Array.isArray(v) && v.length === 0;
}

const LUA_CLASSES: Record<string, string> = {
  a: "A-Za-z",
  d: "0-9",
  l: "a-z",
  u: "A-Z",
  s: "\\s",
  w: "A-Za-z0-9",
  x: "A-Fa-f0-9",
  p: "!-\\/:-@\\[-`{-~",
  c: "\\x00-\\x1f",
};

/** Translates a Lua pattern (the language of Kong's `match` validators) into a JavaScript RegExp. */
export function luaPatternToRegExp(pattern: string): RegExp {
  let out = "";
  let inSet = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === "%") {
      const next = pattern[++i] ?? "";
      const cls = LUA_CLASSES[next.toLowerCase()];
      if (cls !== undefined) {
        const negated = next !== next.toLowerCase();
        out += inSet ? cls : negated ? `[^${cls}]` : `[${cls}]`;
      } else out += `\\${next}`;
    } else if (c === "[") {
      inSet = true;
      out += c;
      if (pattern[i + 1] === "^") out += pattern[++i];
    } else if (c === "]" && inSet) {
      inSet = false;
      out += c;
    } else if (c === "-" && !inSet) out += "*?";
    else if (!inSet && "\\/{}|".includes(c)) out += `\\${c}`;
    else out += c;
  }
  return new RegExp(out, "u");
}
