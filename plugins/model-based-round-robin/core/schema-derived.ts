/**
 * Everything the plugin knows about its configuration's fields comes from the one declaration Kong sees
 * (schema.ts): the TypeScript type of a configuration, its defaults and the JSON Schema ajv checks it with are
 * derived here, so a field, bound or default is written once. What Kong's schema language cannot say (min <=
 * max, duplicate entries, endpoints that parse) is checked by hand in config.ts.
 */
import type { ElementDef, FieldDef, SchemaField } from "./schema";

type AnyDef = FieldDef | ElementDef;

/** The value of one field as Kong hands it to the plugin. */
export type ValueOf<D> = D extends { type: "string" }
  ? string
  : D extends { type: "integer" | "number" }
    ? number
    : D extends { type: "boolean" }
      ? boolean
      : D extends { type: "array" | "set"; elements: infer E }
        ? ValueOf<E>[]
        : D extends { type: "record"; fields: infer F extends readonly SchemaField[] }
          ? RecordOf<F>
          : unknown;

type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void
  ? I
  : never;
type FieldMap<F extends readonly SchemaField[]> = UnionToIntersection<F[number]>;
/** A field Kong always fills: required, or with a default. */
type Filled = { required: true } | { default: unknown };

/** A record of fields as Kong hands it over: defaulted and required fields present, the others optional. */
export type RecordOf<F extends readonly SchemaField[]> = {
  -readonly [K in keyof FieldMap<F> as FieldMap<F>[K] extends Filled ? K : never]: ValueOf<FieldMap<F>[K]>;
} & {
  -readonly [K in keyof FieldMap<F> as FieldMap<F>[K] extends Filled ? never : K]?: ValueOf<FieldMap<F>[K]>;
};

function entriesOf(fields: readonly SchemaField[]): [string, AnyDef][] {
  return fields.flatMap((field) => Object.entries(field));
}

/**
 * Fills the defaults of absent fields, recursively through records and arrays of records, as Kong does before
 * it hands a configuration over (values present, even wrong ones, are left for validation to judge).
 */
export function withDefaults(fields: readonly SchemaField[], value: unknown): unknown {
  if (!isObject(value)) return value;
  const out: Record<string, unknown> = { ...value };
  for (const [name, def] of entriesOf(fields)) {
    if (out[name] === undefined && def.default !== undefined) out[name] = structuredClone(def.default);
    out[name] = defaultsWithin(def, out[name]);
  }
  return out;
}

function defaultsWithin(def: AnyDef, value: unknown): unknown {
  // Kong makes records reached through records required, so an absent one arrives with its defaults filled.
  if (def.type === "record" && def.fields !== undefined) return withDefaults(def.fields, value ?? {});
  const elements = def.elements;
  if ((def.type === "array" || def.type === "set") && elements !== undefined && Array.isArray(value)) {
    return value.map((item) => defaultsWithin(elements, item));
  }
  return value;
}

/** The JSON Schema of a record of Kong fields, for ajv. Unknown keys pass: Kong adds its own (__plugin_id...). */
export function toJsonSchema(fields: readonly SchemaField[]): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  for (const [name, def] of entriesOf(fields)) {
    properties[name] = fieldSchema(def);
    if (def.required === true) required.push(name);
  }
  return { type: "object", required, properties };
}

const JSON_TYPES: Record<AnyDef["type"], string> = {
  string: "string",
  number: "number",
  integer: "integer",
  boolean: "boolean",
  array: "array",
  set: "array",
  map: "object",
  record: "object",
};

function fieldSchema(def: AnyDef): Record<string, unknown> {
  const out: Record<string, unknown> = { type: JSON_TYPES[def.type] };
  if (def.type === "record" && def.fields !== undefined) Object.assign(out, toJsonSchema(def.fields));
  if (def.elements !== undefined) out.items = fieldSchema(def.elements);
  if (def.between !== undefined) [out.minimum, out.maximum] = def.between;
  if (def.one_of !== undefined) out.enum = [...def.one_of];
  // Kong gives every string an implicit len_min of 1; a vault reference that did not resolve arrives as "".
  if (def.type === "string") out.minLength = def.referenceable === true ? 0 : (def.len_min ?? 1);
  else if (def.len_min !== undefined) out.minItems = def.len_min;
  // `match` is a Lua pattern, not a regular expression: config.ts parses the value itself instead.
  return out;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
