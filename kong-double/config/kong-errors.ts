/**
 * Kong's error bodies (kong/db/errors.lua, 3.9.3): the `{code, name, message, fields}` tables the Admin API
 * sends, with their messages built as Kong builds them, including the Lua table dump (Penlight's
 * pretty.write) that `schema_violation` and `declarative_config` embed in `message`.
 */
import type { FieldError, FieldErrors } from "./schema";

export const ERROR_CODES = {
  SCHEMA_VIOLATION: 2,
  PRIMARY_KEY_VIOLATION: 3,
  FOREIGN_KEY_VIOLATION: 4,
  UNIQUE_VIOLATION: 5,
  NOT_FOUND: 6,
  DECLARATIVE_CONFIG: 14,
} as const;

const LUA_KEYWORDS = new Set(
  "and break do else elseif end false for function if in local nil not or repeat return then true until while".split(
    " ",
  ),
);

function luaKey(key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) && !LUA_KEYWORDS.has(key) ? key : `[${luaQuote(key)}]`;
}

function luaQuote(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/**
 * Penlight's pretty.write for the error tables Kong formats: `space` "" gives the one-line form
 * (`{services={{host="required field missing"}}}`), the default "  " the indented multi-line form. The
 * array part comes first, then `[n]=` entries for holes, then string keys in sorted order. JS arrays with
 * `null` holes stand for Lua tables with integer keys.
 */
export function luaPretty(value: unknown, space = "  ", level = 0): string {
  if (value === null || value === undefined) return "nil";
  if (typeof value === "string") return luaQuote(value);
  if (typeof value !== "object") return String(value);
  const entries: [string | null, unknown][] = [];
  if (Array.isArray(value)) {
    let i = 0;
    while (i < value.length && value[i] !== null && value[i] !== undefined) entries.push([null, value[i++]]);
    for (; i < value.length; i++)
      if (value[i] !== null && value[i] !== undefined) entries.push([`[${i + 1}]`, value[i]]);
  } else {
    const obj = value as Record<string, unknown>;
    for (const key of Object.keys(obj).sort())
      if (obj[key] !== undefined) entries.push([luaKey(key), obj[key]]);
  }
  if (entries.length === 0) return "{}";
  const eq = space === "" ? "=" : " = ";
  const nl = space === "" ? "" : "\n";
  const inner = space.repeat(level + 1);
  const items = entries.map(
    ([k, v]) => `${inner}${k === null ? "" : k + eq}${luaPretty(v, space, level + 1)}`,
  );
  return `{${nl}${items.join(`,${nl}`)}${nl}${space.repeat(level)}}`;
}

/** errors:schema_violation: HTTP 400 on the Admin API. */
export function schemaViolation(errors: FieldErrors): Record<string, unknown> {
  const buf: string[] = [];
  const entity = errors["@entity"];
  if (Array.isArray(entity)) for (const e of entity) if (typeof e === "string") buf.push(e);
  for (const field of Object.keys(errors).sort()) {
    if (field === "@entity") continue;
    const fieldErrors = errors[field] as FieldError;
    if (typeof fieldErrors === "object" && fieldErrors !== null) {
      for (const [sub, value] of sortedEntries(fieldErrors)) {
        buf.push(`${field}.${sub}: ${typeof value === "string" ? value : luaPretty(value)}`);
      }
    } else buf.push(`${field}: ${fieldErrors}`);
  }
  const message =
    buf.length === 1 ? `schema violation (${buf[0]})` : `${buf.length} schema violations (${buf.join("; ")})`;
  return { code: ERROR_CODES.SCHEMA_VIOLATION, name: "schema violation", message, fields: errors };
}

/** Lua's sorted_keys over a table: integer keys (array elements, 1-based) sort before string keys. */
function sortedEntries(t: FieldErrors | (FieldError | null)[]): [string, FieldError][] {
  if (Array.isArray(t)) {
    return t.flatMap((v, i): [string, FieldError][] => (v === null ? [] : [[String(i + 1), v]]));
  }
  return Object.keys(t)
    .sort()
    .map((k) => [k, t[k] as FieldError]);
}

/** errors:declarative_config: the 400 of `POST /config`. */
export function declarativeConfigError(errT: Record<string, unknown>): Record<string, unknown> {
  return {
    code: ERROR_CODES.DECLARATIVE_CONFIG,
    name: "invalid declarative configuration",
    message: `declarative config is invalid: ${luaPretty(errT, "")}`,
    fields: errT,
  };
}

export function uniqueViolation(key: Record<string, unknown>): Record<string, unknown> {
  return {
    code: ERROR_CODES.UNIQUE_VIOLATION,
    name: "unique constraint violation",
    message: `UNIQUE violation detected on '${luaPretty(key, "")}'`,
    fields: key,
  };
}

export function primaryKeyViolation(key: Record<string, unknown>): Record<string, unknown> {
  return {
    code: ERROR_CODES.PRIMARY_KEY_VIOLATION,
    name: "primary key violation",
    message: `primary key violation on key '${luaPretty(key, "")}'`,
    fields: key,
  };
}

export function foreignKeyViolation(
  key: Record<string, unknown>,
  field: string,
  parent: string,
): Record<string, unknown> {
  return {
    code: ERROR_CODES.FOREIGN_KEY_VIOLATION,
    name: "foreign key violation",
    message: `the foreign key '${luaPretty(key, "")}' does not reference an existing '${parent}' entity.`,
    fields: { [field]: key },
  };
}
