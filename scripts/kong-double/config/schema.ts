/**
 * Kong's schema engine (kong/db/schema/init.lua, 3.9.3) as the double needs it for plugin configs and entities:
 *
 * - `processAutoFields(schema, data, context)`: Kong's process_auto_fields. On "insert" it fills defaults
 *   (recursively through records and through the records inside arrays), expands shorthand fields, generates
 *   auto ids and timestamps and turns absent optional fields into `null`; on "select" it drops `null`s (unless
 *   `nulls`), empty strings and unknown keys, as the data plane sees a row.
 * - `validate(schema, input)`: Kong's Schema:validate: type checks with Kong's messages, the validators in
 *   Kong's order (eq, ne, not_one_of, one_of, gt, timestamp, uuid, is_regex, between, len_*, starts_with,
 *   not_match, match_none, match, match_all, match_any, contains, custom_validator,
 *   mutually_exclusive_subsets), strings len_min 1 implicitly, `referenceable` strings holding a vault
 *   reference skip the validators, unknown fields, required fields, and the entity checks.
 * - `validateRecord(fields, input)`: both, for a plugin's config: the value the data plane would see, or
 *   Kong's nested errors.
 *
 * Values follow cjson: `null` is ngx.null; a field definition's `eq: null` means "must be null". Errors nest
 * like the input; array elements are JS arrays with `null` holes, because Kong keys them by integer and its
 * cjson (encode_sparse_array with a huge safe limit) writes those tables as JSON arrays:
 * `{ production_models: [null, { weight: "value should be between 1 and 65535" }] }`.
 * `match` and friends use Lua patterns (./lua-pattern). `json` fields are not checked against their JSON schema.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { luaPatternMatches } from "./lua-pattern";
import type { FieldDef, SchemaField } from "./model";

export type FieldError = string | FieldErrors | (FieldError | null)[];
export interface FieldErrors {
  [name: string]: FieldError;
}

/** A record's fields plus what Kong's record and entity schemas may add. */
export interface RecordSchema {
  fields: readonly SchemaField[];
  entity_checks?: readonly EntityCheck[];
  shorthand_fields?: readonly ShorthandField[];
}
export type EntityCheck = Record<string, unknown>;
export type ShorthandField = Record<
  string,
  FieldDef & { func: (value: unknown) => Record<string, unknown> | undefined }
>;

export type Context = "insert" | "update" | "select";

/** A schema's `custom_validator` (only in schemas written in TypeScript): `true`, or the error message. */
export type CustomValidator = (value: unknown) => true | string;

/** Kong's validation_errors (the ones a record of plain fields can produce). */
export const MESSAGES = {
  ARRAY: "expected an array",
  SET: "expected a set",
  MAP: "expected a map",
  RECORD: "expected a record",
  STRING: "expected a string",
  NUMBER: "expected a number",
  BOOLEAN: "expected a boolean",
  INTEGER: "expected an integer",
  FUNCTION: "expected a function",
  REQUIRED: "required field missing",
  UNKNOWN: "unknown field",
  TIMESTAMP: "expected a valid timestamp",
  UUID: "expected a valid UUID",
  REQUIRED_FOR_ENTITY_CHECK: "field required for entity check",
} as const;

/** `{vault://...}`: what kong.pdk.vault.is_reference accepts (a `{vault://` prefix and a closing `}`). */
export const VAULT_REFERENCE = /^\{vault:\/\/.+\}$/s;
export const isReference = (value: unknown): value is string =>
  typeof value === "string" && VAULT_REFERENCE.test(value);

export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** The fields of a record as `[name, definition]` pairs, in declaration order. */
export function fieldEntries(fields: readonly SchemaField[]): [string, FieldDef][] {
  return fields.flatMap((f) => Object.entries(f));
}

function recordSchemaOf(def: FieldDef): RecordSchema {
  return {
    fields: def.fields ?? [],
    entity_checks: def.entity_checks as EntityCheck[] | undefined,
    shorthand_fields: def.shorthand_fields as ShorthandField[] | undefined,
  };
}

/**
 * Kong's Entity.new_subschema/make_records_required: records reached through other records (not through
 * arrays) are required unless they say otherwise, so an absent `config.limits` record still gets its defaults.
 */
export function makeRecordsRequired(fields: readonly SchemaField[]): SchemaField[] {
  return fields.map((field) =>
    Object.fromEntries(
      Object.entries(field).map(([name, def]) => {
        if (def.type !== "record") return [name, def];
        return [
          name,
          { ...def, required: def.required ?? true, fields: makeRecordsRequired(def.fields ?? []) },
        ];
      }),
    ),
  );
}

// ---------------------------------------------------------------------------------------------------------
// process_auto_fields

export interface AutoFieldOptions {
  /** Select context: keep `null` for unset fields (what the Admin API shows). */
  nulls?: boolean;
  now?: () => number;
  uuid?: () => string;
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
  opts: AutoFieldOptions = {},
): Record<string, unknown> {
  const out: Record<string, unknown> = context === "select" ? { ...data } : structuredClone(data);
  applyShorthands(schema, out);
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

function applyShorthands(schema: RecordSchema, data: Record<string, unknown>): void {
  if (schema.shorthand_fields === undefined) return;
  const errors: FieldErrors = {};
  for (const shorthand of schema.shorthand_fields) {
    for (const [name, def] of Object.entries(shorthand)) {
      const value = data[name];
      if (value === undefined) continue;
      const err = validateField(def, value);
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

function adjustForContext(def: FieldDef, value: unknown, context: Context, opts: AutoFieldOptions): unknown {
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

function handleMissing(def: FieldDef, opts: AutoFieldOptions): unknown {
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

// ---------------------------------------------------------------------------------------------------------
// validate_field

const lenMinOf = (def: FieldDef): number => (typeof def.len_min === "number" ? def.len_min : 1);

const luaString = (v: unknown): string => {
  if (v === null) return "null";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : luaNumber(v);
  return String(v);
};
/** Lua's tostring for a float: 14 significant digits (%.14g). */
const luaNumber = (v: number): string => String(Number.parseFloat(v.toPrecision(14)));

const length = (value: unknown): number => {
  if (typeof value === "string") return Buffer.byteLength(value);
  if (Array.isArray(value)) return value.length;
  if (isPlainObject(value)) return Object.keys(value).length;
  return 0;
};

type Validator = (value: never, arg: never, def: FieldDef) => true | string | undefined;

const VALIDATORS: Record<string, Validator> = {
  eq: (value: unknown, wanted: unknown) => (value === wanted ? true : `value must be ${luaString(wanted)}`),
  ne: (value: unknown, wanted: unknown) =>
    value !== wanted ? true : `value must not be ${luaString(value)}`,
  not_one_of: (value: unknown, options: unknown[]) =>
    options.includes(value) ? `must not be one of: ${options.map(luaString).join(", ")}` : true,
  one_of: (value: unknown, options: unknown[]) =>
    options.includes(value) ? true : `expected one of: ${options.map(luaString).join(", ")}`,
  gt: (value: number, limit: number) =>
    value > limit ? true : `value must be greater than ${luaString(limit)}`,
  timestamp: (value: number) => (value > 0 ? true : undefined),
  uuid: (value: string) =>
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value) ? true : undefined,
  is_regex: (value: string) => {
    try {
      new RegExp(value);
      return true;
    } catch {
      return undefined;
    }
  },
  between: (value: number, [lo, hi]: [number, number]) =>
    value < lo || value > hi ? `value should be between ${Math.trunc(lo)} and ${Math.trunc(hi)}` : true,
  len_eq: (value: unknown, n: number) => (length(value) === n ? true : `length must be ${n}`),
  len_min: (value: unknown, n: number) => (length(value) >= n ? true : `length must be at least ${n}`),
  len_max: (value: unknown, n: number) => (length(value) <= n ? true : `length must be at most ${n}`),
  starts_with: (value: string, expected: string) =>
    value.startsWith(expected) ? true : `should start with: ${expected}`,
  not_match: (value: string, pattern: string) =>
    luaPatternMatches(value, pattern) ? `invalid value: ${value}` : true,
  match_none: (value: string, list: { pattern: string; err?: string }[]) => {
    for (const item of list)
      if (luaPatternMatches(value, item.pattern)) return item.err ?? `invalid value: ${value}`;
    return true;
  },
  match: (value: string, pattern: string) =>
    luaPatternMatches(value, pattern) ? true : `invalid value: ${value}`,
  match_all: (value: string, list: { pattern: string; err?: string }[]) => {
    for (const item of list)
      if (!luaPatternMatches(value, item.pattern)) return item.err ?? `invalid value: ${value}`;
    return true;
  },
  match_any: (value: string, arg: { patterns: string[]; err?: string }) =>
    arg.patterns.some((p) => luaPatternMatches(value, p)) ? true : (arg.err ?? `invalid value: ${value}`),
  contains: (value: unknown[], wanted: unknown) =>
    value.includes(wanted) ? true : `expected to contain: ${luaString(wanted)}`,
  custom_validator: (value: unknown, fn: CustomValidator) => fn(value),
  mutually_exclusive_subsets: (value: unknown[], subsets: string[][]) => {
    const memberOf: string[][] = [];
    for (const v of value) {
      const subset = subsets.find((s) => s.includes(v as string));
      if (subset !== undefined && !memberOf.includes(subset)) memberOf.push(subset);
    }
    if (memberOf.length <= 1) return true;
    return `these sets are mutually exclusive: ${memberOf.map((s) => `(${s.map((w) => `'${w}'`).join(", ")})`).join(", ")}`;
  },
};

const VALIDATOR_ORDER = [
  "eq",
  "ne",
  "not_one_of",
  "one_of",
  "gt",
  "timestamp",
  "uuid",
  "is_regex",
  "between",
  "len_eq",
  "len_min",
  "len_max",
  "starts_with",
  "not_match",
  "match_none",
  "match",
  "match_all",
  "match_any",
  "contains",
  "custom_validator",
  "mutually_exclusive_subsets",
] as const;

const FALLBACK_MESSAGES: Record<string, string> = {
  timestamp: MESSAGES.TIMESTAMP,
  uuid: MESSAGES.UUID,
  is_regex: "not a valid regex: %s",
};

/** Kong's Schema:validate_field: undefined when valid, otherwise the error (a string or a nested table). */
export function validateField(def: FieldDef, value: unknown): FieldError | undefined {
  if (value === null) {
    if (def.ne === null) return (def.err as string | undefined) ?? "value must not be null";
    if (def.eq !== undefined && def.eq !== null) return `value must be ${luaString(def.eq)}`;
    if (def.required === true) return MESSAGES.REQUIRED;
    return undefined;
  }
  if (def.eq === null) return (def.err as string | undefined) ?? "value must be null";
  let lenMin = def.len_min;
  switch (def.type) {
    case "array":
    case "set": {
      const list = isPlainObject(value) && Object.keys(value).length === 0 ? [] : value;
      if (!Array.isArray(list)) return def.type === "set" ? MESSAGES.SET : MESSAGES.ARRAY;
      const elements = def.elements ?? { type: "any" };
      const errors = list.map((v) => validateField({ ...elements, required: true }, v) ?? null);
      if (errors.some((e) => e !== null)) return trimTrailingNulls(errors);
      value = list;
      break;
    }
    case "map": {
      const entries: [string | number, unknown][] = Array.isArray(value)
        ? value.map((v, i) => [i + 1, v])
        : isPlainObject(value)
          ? Object.entries(value)
          : [];
      if (!Array.isArray(value) && !isPlainObject(value)) return MESSAGES.MAP;
      for (const [k, v] of entries) {
        const keyErr = validateField({ ...(def.keys ?? { type: "any" }), required: true }, k);
        if (keyErr !== undefined) return keyErr;
        const valueErr = validateField({ ...(def.values ?? { type: "any" }), required: true }, v);
        if (valueErr !== undefined) return valueErr;
      }
      break;
    }
    case "record": {
      if (!isPlainObject(value) && !(Array.isArray(value) && value.length === 0)) return MESSAGES.RECORD;
      const schema = recordSchemaOf(def);
      let copy: Record<string, unknown>;
      try {
        copy = processAutoFields(schema, isPlainObject(value) ? value : {}, "insert");
      } catch (e) {
        if (e instanceof ShorthandError) return e.errors;
        throw e;
      }
      const errors = validate(schema, copy);
      if (errors !== undefined) return errors;
      break;
    }
    case "integer":
      if (typeof value !== "number" || !Number.isInteger(value)) return MESSAGES.INTEGER;
      break;
    case "number":
      if (typeof value !== "number") return MESSAGES.NUMBER;
      break;
    case "boolean":
      if (typeof value !== "boolean") return MESSAGES.BOOLEAN;
      break;
    case "string":
      if (typeof value !== "string") return MESSAGES.STRING;
      if (lenMin === undefined) lenMin = 1;
      if (def.referenceable === true && isReference(value)) return undefined;
      break;
    case "foreign": {
      // validate_primary_key: a table with a valid `id` (a string has no `id`: "missing primary key")
      const id = isPlainObject(value) ? value.id : undefined;
      if (id === undefined || id === null) return { id: "missing primary key" };
      const idErr = validateField({ type: "string", uuid: true }, id);
      if (idErr !== undefined) return { id: idErr };
      break;
    }
    case "json":
    case "any":
      break;
    case "function":
      return MESSAGES.FUNCTION;
    default:
      return `invalid type: ${def.type}`;
  }
  const withLenMin: Record<string, unknown> = lenMin === undefined ? def : { ...def, len_min: lenMin };
  for (const name of VALIDATOR_ORDER) {
    const arg = withLenMin[name];
    if (arg === undefined) continue;
    const res = (VALIDATORS[name] as (v: unknown, a: unknown, d: FieldDef) => true | string | undefined)(
      value,
      arg,
      def,
    );
    if (res === true) continue;
    const fallback = (FALLBACK_MESSAGES[name] ?? "failed validating: %s").replace("%s", luaString(value));
    return (def.err as string | undefined) ?? res ?? fallback;
  }
  return undefined;
}

function trimTrailingNulls(list: (FieldError | null)[]): (FieldError | null)[] {
  let end = list.length;
  while (end > 0 && list[end - 1] === null) end--;
  return list.slice(0, end);
}

// ---------------------------------------------------------------------------------------------------------
// validate (validate_fields + required + entity checks)

/** Kong's Schema:validate: undefined when valid, otherwise the errors keyed by field (and "@entity"). */
export function validate(
  schema: RecordSchema,
  input: Record<string, unknown>,
  fullCheck = true,
): FieldErrors | undefined {
  const known = new Map(fieldEntries(schema.fields));
  const errors: FieldErrors = {};
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue;
    const def = known.get(key);
    if (def === undefined) {
      errors[key] = MESSAGES.UNKNOWN;
      continue;
    }
    if (key === "updated_at") continue;
    // "self" (metaschema only): a field definition's `default` is validated by that very definition
    const err =
      def.type === "self" ? validateField(input as unknown as FieldDef, value) : validateField(def, value);
    if (err !== undefined) errors[key] = err;
  }
  for (const [name, def] of known) {
    if (def.required === true && (input[name] === null || (fullCheck && input[name] === undefined))) {
      errors[name] = MESSAGES.REQUIRED;
    }
  }
  for (const check of schema.entity_checks ?? [])
    runEntityCheck(schema, known, check, input, fullCheck, errors);
  return Object.keys(errors).length > 0 ? errors : undefined;
}

const isNonEmpty = (v: unknown): boolean =>
  !(
    v === undefined ||
    v === null ||
    v === "" ||
    (Array.isArray(v) && v.length === 0) ||
    (isPlainObject(v) && Object.keys(v).length === 0)
  );

const quotedList = (words: string[]): string => words.map((w) => `'${w}'`).join(", ");

function getPath(input: unknown, name: string): unknown {
  let cur = input;
  for (const part of name.split(".")) {
    if (!isPlainObject(cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}

function setPath(errors: FieldErrors, name: string, value: FieldError): void {
  const parts = name.split(".");
  let cur = errors;
  for (const part of parts.slice(0, -1)) {
    const next = cur[part];
    if (!isPlainObject(next)) cur[part] = {};
    cur = cur[part] as FieldErrors;
  }
  cur[parts[parts.length - 1] as string] = value;
}

function fieldDefAt(known: Map<string, FieldDef>, name: string): FieldDef | undefined {
  const [head, ...rest] = name.split(".");
  const def = known.get(head as string);
  if (rest.length === 0 || def === undefined) return def;
  return fieldDefAt(new Map(fieldEntries(def.fields ?? [])), rest.join("."));
}

interface Checker {
  runWithMissing: boolean;
  runWithInvalid: boolean;
  sources?: string[];
  required?: string[];
  message?: string;
  fn: (
    input: Record<string, unknown>,
    arg: Record<string, unknown> & string[],
    known: Map<string, FieldDef>,
    errors: FieldErrors,
  ) => true | [string, string?];
}

const CHECKERS: Record<string, Checker> = {
  at_least_one_of: {
    runWithMissing: true,
    runWithInvalid: true,
    message: "at least one of these fields must be non-empty: %s",
    fn: (input, names) => (names.some((n) => isNonEmpty(getPath(input, n))) ? true : [quotedList(names)]),
  },
  conditional_at_least_one_of: {
    runWithMissing: true,
    runWithInvalid: true,
    sources: ["if_field", "then_at_least_one_of", "else_then_at_least_one_of"],
    required: ["if_field"],
    message: "at least one of these fields must be non-empty: %s",
    fn: (input, arg, known) => {
      const ifField = arg.if_field as unknown as string;
      const ifValue = getPath(input, ifField);
      if (ifValue === undefined) return true;
      const base = fieldDefAt(known, ifField) ?? { type: "any" };
      const pick = (list: string[], err: unknown): true | [string, string?] => {
        if (list.some((n) => isNonEmpty(getPath(input, n)))) return true;
        const quoted = quotedList(list);
        return [quoted, typeof err === "string" ? err.replace("%s", quoted) : undefined];
      };
      if (validateField({ ...base, ...(arg.if_match as object) }, ifValue) === undefined) {
        return pick(arg.then_at_least_one_of as unknown as string[], arg.then_err);
      }
      if (arg.else_match === undefined) return true;
      if (validateField({ ...base, ...(arg.else_match as object) }, ifValue) !== undefined) return true;
      return pick(arg.else_then_at_least_one_of as unknown as string[], arg.else_then_err);
    },
  },
  only_one_of: {
    runWithMissing: false,
    runWithInvalid: true,
    message: "exactly one of these fields must be non-empty: %s",
    fn: (input, names) =>
      names.filter((n) => isNonEmpty(getPath(input, n))).length === 1 ? true : [quotedList(names)],
  },
  distinct: {
    runWithMissing: false,
    runWithInvalid: true,
    message: "values of these fields must be distinct: %s",
    fn: (input, names) => {
      const values = names.map((n) => getPath(input, n)).filter(isNonEmpty);
      return new Set(values).size === values.length ? true : [quotedList(names)];
    },
  },
  conditional: {
    runWithMissing: false,
    runWithInvalid: true,
    sources: ["if_field", "then_field"],
    required: ["if_field"],
    message: "failed conditional validation given value of field '%s'",
    fn: (input, arg, known, errors) => {
      const ifField = arg.if_field as unknown as string;
      const thenField = arg.then_field as unknown as string;
      const ifValue = getPath(input, ifField);
      const thenValue = getPath(input, thenField) ?? null;
      const ifDef = { ...(fieldDefAt(known, ifField) ?? { type: "any" }), ...(arg.if_match as object) };
      if (validateField(ifDef, ifValue) !== undefined) return true;
      const thenMatch = arg.then_match as FieldDef;
      const thenErr = typeof arg.then_err === "string" ? arg.then_err.replace("%s", ifField) : undefined;
      if (thenMatch.required === true && thenValue === null) {
        setPath(errors, thenField, MESSAGES.REQUIRED);
        return [ifField, thenErr];
      }
      const err = validateField(
        { ...(fieldDefAt(known, thenField) ?? { type: "any" }), ...thenMatch },
        thenValue,
      );
      if (err === undefined) return true;
      setPath(errors, thenField, err);
      return [ifField, thenErr];
    },
  },
  custom_entity_check: {
    runWithMissing: false,
    runWithInvalid: false,
    sources: ["field_sources"],
    required: ["field_sources"],
    fn: (input, arg) => {
      const res = (arg.fn as unknown as (entity: Record<string, unknown>) => true | string)(input);
      return res === true ? true : [res];
    },
  },
  mutually_required: {
    runWithMissing: true,
    runWithInvalid: false,
    message: "all or none of these fields must be set: %s",
    fn: (input, names) => {
      const set = names.filter((n) => isNonEmpty(getPath(input, n))).length;
      return set === 0 || set === names.length ? true : [quotedList(names)];
    },
  },
  mutually_exclusive: {
    runWithMissing: true,
    runWithInvalid: false,
    message: "only one or none of these fields must be set: %s",
    fn: (input, names) =>
      names.filter((n) => isNonEmpty(getPath(input, n))).length <= 1 ? true : [quotedList(names)],
  },
  mutually_exclusive_sets: {
    runWithMissing: true,
    runWithInvalid: false,
    sources: ["set1", "set2"],
    required: ["set1", "set2"],
    message: "these sets are mutually exclusive: %s",
    fn: (input, arg) => {
      const set1 = (arg.set1 as unknown as string[]).filter((n) => isNonEmpty(getPath(input, n)));
      const set2 = (arg.set2 as unknown as string[]).filter((n) => isNonEmpty(getPath(input, n)));
      return set1.length > 0 && set2.length > 0 ? [`(${quotedList(set1)}), (${quotedList(set2)})`] : true;
    },
  },
};

function runEntityCheck(
  _schema: RecordSchema,
  known: Map<string, FieldDef>,
  check: EntityCheck,
  input: Record<string, unknown>,
  fullCheck: boolean,
  errors: FieldErrors,
): void {
  const [name, rawArg] = Object.entries(check)[0] ?? [];
  if (name === undefined || rawArg === undefined || rawArg === null) return;
  const checker = CHECKERS[name];
  if (checker === undefined) throw new Error(`entity check '${name}' is not implemented by the Kong double`);
  const arg = rawArg as Record<string, unknown> & string[];
  const fieldsToCheck: string[] = [];
  const required = new Set<string>();
  if (checker.sources !== undefined) {
    for (const source of checker.sources) {
      const v = arg[source];
      const names = typeof v === "string" ? [v] : Array.isArray(v) ? (v as string[]) : [];
      fieldsToCheck.push(...names);
      if (checker.required?.includes(source)) for (const n of names) required.add(n);
    }
  } else {
    fieldsToCheck.push(...(arg as string[]));
    for (const n of arg as string[]) required.add(n);
  }
  const missing: string[] = [];
  let allNil = true;
  let allOk = true;
  for (const fname of fieldsToCheck) {
    const value = getPath(input, fname);
    if (value === undefined) {
      if (!checker.runWithMissing && arg.run_with_missing_fields !== true && required.has(fname))
        missing.push(fname);
    } else {
      allNil = false;
      const def = fieldDefAt(known, fname);
      if (def?.type === "string" && def.referenceable === true && isReference(value)) return;
    }
    if (errors[fname] !== undefined) allOk = false;
  }
  if (!allOk && !checker.runWithInvalid && arg.run_with_invalid_fields !== true) return;
  if (allNil && !(checker.runWithMissing && fullCheck)) return;
  if (missing.length > 0) {
    for (const m of missing) setPath(errors, m, MESSAGES.REQUIRED_FOR_ENTITY_CHECK);
    return;
  }
  const res = checker.fn(input, arg, known, errors);
  if (res === true) return;
  const [detail, custom] = res;
  const message = custom ?? (checker.message ? checker.message.replace("%s", detail) : detail);
  const entityErrors = (errors["@entity"] as string[] | undefined) ?? [];
  entityErrors.push(message);
  errors["@entity"] = entityErrors;
}

// ---------------------------------------------------------------------------------------------------------
// Convenience for a plugin's config

export type Validation = { ok: true; value: Record<string, unknown> } | { ok: false; errors: FieldErrors };

/**
 * A plugin config as Kong stores and then reads it: insert-processed (defaults), validated, then
 * select-processed (unset optionals and empty strings gone). `fields` are the plugin's config fields.
 */
export function validateRecord(fields: readonly SchemaField[], input: unknown): Validation {
  const def: FieldDef = { type: "record", required: true, fields: makeRecordsRequired(fields) };
  const err = validateField(def, input ?? {});
  if (err !== undefined)
    return { ok: false, errors: typeof err === "string" ? { "@entity": [err] } : (err as FieldErrors) };
  const schema = recordSchemaOf(def);
  const inserted = processAutoFields(schema, isPlainObject(input) ? input : {}, "insert");
  return { ok: true, value: processAutoFields(schema, inserted, "select") };
}
