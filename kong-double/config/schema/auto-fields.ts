/**
 * Kong's process_auto_fields (kong/db/schema/init.lua, 3.9.3): on "insert" it fills defaults (recursively
 * through records and through the records inside arrays), expands shorthand fields, generates auto ids and
 * timestamps and turns absent optional fields into `null`; on "select" it drops `null`s (unless `nulls`), empty
 * strings and unknown keys, as the data plane sees a row.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { FieldDef } from "../model";
import {
  type Context,
  type FieldCheck,
  type FieldErrors,
  fieldEntries,
  isPlainObject,
  type RecordSchema,
  recordSchemaOf,
} from "./record-schema";
import { lenMinOf } from "./validators";

export interface AutoFieldOptions {
  /** Select context: keep `null` for unset fields (what the Admin API shows). */
  nulls?: boolean;
  now?: () => number;
  uuid?: () => string;
}

/** With Kong's validate_field to check shorthand values: passed in, as validate_field uses this module in turn. */
export interface AutoFieldRun extends AutoFieldOptions {
  checkField: FieldCheck;
}

export class ShorthandError extends Error {
  constructor(readonly errors: FieldErrors) {
    super("shorthand field error");
  }
}

export function processAutoFields(
  schema: RecordSchema,
  data: Record<string, unknown>,
  context: Context,
  opts: AutoFieldRun,
): Record<string, unknown> {
  const out: Record<string, unknown> = context === "select" ? { ...data } : structuredClone(data);
  applyShorthands(schema, out, opts.checkField);
  for (const [key, def] of fieldEntries(schema.fields)) {
    let value = out[key];
    if (context !== "select" && def.auto === true && (context === "insert" || key === "updated_at")) {
      if (def.uuid === true && value === undefined) value = (opts.uuid ?? randomUUID)();
      else if (def.type === "string" && def.uuid !== true && value === undefined) value = randomString();
      else if ((key === "created_at" && (value === undefined || value === null)) || key === "updated_at") {
        const now = (opts.now ?? Date.now)() / 1000;
        value = def.type === "integer" ? Math.floor(now) : now;
      }
    }
    value = adjustForContext(def, value, context, opts);
    if (context === "select") {
      if (value === null && !opts.nulls) value = undefined;
      else if (def.type === "integer" && typeof value === "number") value = Math.floor(value);
    }
    if (value === undefined) delete out[key];
    else out[key] = value;
  }
  if (context !== "select") return out;
  const known = new Map(fieldEntries(schema.fields));
  for (const key of Object.keys(out)) {
    const def = known.get(key);
    if (def === undefined) delete out[key];
    else if (def.type === "string" && out[key] === "" && lenMinOf(def) > 0) {
      if (opts.nulls) out[key] = null;
      else delete out[key];
    }
  }
  return out;
}

/** kong.tools.rand.random_string: 32 alphanumerics. */
export function randomString(): string {
  return randomBytes(24)
    .toString("base64")
    .replace(/[+/]/g, () => String.fromCharCode(65 + Math.floor(Math.random() * 26)));
}

function applyShorthands(schema: RecordSchema, data: Record<string, unknown>, checkField: FieldCheck): void {
  if (schema.shorthand_fields === undefined) return;
  const errors: FieldErrors = {};
  for (const shorthand of schema.shorthand_fields) {
    for (const [name, def] of Object.entries(shorthand)) {
      const value = data[name];
      if (value === undefined) continue;
      const err = checkField(def, value);
      if (err !== undefined) {
        errors[name] = err;
        continue;
      }
      delete data[name];
      const expanded = def.func(value);
      if (expanded === undefined) continue;
      for (const [k, v] of Object.entries(expanded)) {
        if (isPlainObject(v)) data[k] = { ...(isPlainObject(data[k]) ? data[k] : {}), ...v };
        else data[k] = v;
      }
    }
  }
  if (Object.keys(errors).length > 0) throw new ShorthandError(errors);
}

function adjustForContext(def: FieldDef, value: unknown, context: Context, opts: AutoFieldRun): unknown {
  if (context === "select" && value === null && def.required === true) return handleMissing(def, opts);
  if (def.abstract === true) return value;
  if (def.type === "record") {
    const recurse =
      context === "update"
        ? value !== null && value !== undefined
        : value !== null && (value !== undefined || def.required === true);
    if (recurse) {
      const v = value ?? handleMissing(def, opts);
      if (isPlainObject(v)) return processAutoFields(recordSchemaOf(def), v, context, opts);
      if (Array.isArray(v) && v.length === 0)
        return processAutoFields(recordSchemaOf(def), {}, context, opts);
      return v;
    }
  } else if (def.type === "array" || def.type === "set") {
    // cjson decodes `{}` and `[]` to the same empty table, which is a sequence
    let list = isPlainObject(value) && Object.keys(value).length === 0 ? [] : value;
    if (Array.isArray(list)) {
      if (def.type === "set") list = dedupe(list);
      const elements = def.elements;
      if (elements !== undefined)
        list = (list as unknown[]).map((v) => adjustForContext(elements, v, context, opts));
      value = list;
    }
  } else if (def.type === "map") {
    const values = def.values;
    if (Array.isArray(value) && value.length === 0) value = {};
    if (isPlainObject(value) && values !== undefined) {
      value = Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, adjustForContext(values, v, context, opts)]),
      );
    }
  }
  if (value === undefined && context !== "update") return handleMissing(def, opts);
  return value;
}

function handleMissing(def: FieldDef, opts: AutoFieldRun): unknown {
  if (def.default !== undefined) {
    const copy = structuredClone(def.default);
    if ((def.type === "array" || def.type === "set") && isPlainObject(copy) && Object.keys(copy).length === 0)
      return [];
    return copy;
  }
  // `nilable` (metaschema only): absent stays absent
  if (def.nilable === true) return undefined;
  if (def.required !== true) return null;
  if (def.type === "record") return processAutoFields(recordSchemaOf(def), {}, "insert", opts);
  return undefined;
}

function dedupe(list: unknown[]): unknown[] {
  const seen = new Set<string>();
  return list.filter((v) => {
    const key = typeof v === "object" ? `o:${JSON.stringify(v)}` : `${typeof v}:${String(v)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
