/**
 * Kong's Schema:validate_field and Schema:validate (kong/db/schema/init.lua, 3.9.3): type checks with Kong's
 * messages, the validators (./validators), strings len_min 1 implicitly, `referenceable` strings holding a
 * vault reference skip the validators, unknown fields, required fields, and the entity checks
 * (./entity-checks). A record value is insert-processed (./auto-fields) before its fields are checked.
 */
import type { FieldDef } from "../model";
import { processAutoFields, ShorthandError } from "./auto-fields";
import { runEntityCheck } from "./entity-checks";
import { luaString, MESSAGES } from "./messages";
import {
  type FieldError,
  type FieldErrors,
  fieldEntries,
  isPlainObject,
  isReference,
  type RecordSchema,
  recordSchemaOf,
} from "./record-schema";
import { runValidators } from "./validators";

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
        copy = processAutoFields(schema, isPlainObject(value) ? value : {}, "insert", {
          checkField: validateField,
        });
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
  return runValidators(def, value, lenMin);
}

function trimTrailingNulls(list: (FieldError | null)[]): (FieldError | null)[] {
  let end = list.length;
  while (end > 0 && list[end - 1] === null) end--;
  return list.slice(0, end);
}

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
    runEntityCheck(known, check, input, fullCheck, errors, validateField);
  return Object.keys(errors).length > 0 ? errors : undefined;
}
