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
 * `match` and friends use Lua patterns (../lua-pattern). `json` fields are not checked against their JSON schema.
 *
 * The parts: ./record-schema (the shapes and helpers), ./messages (Kong's messages), ./validators (the field
 * validators), ./auto-fields (process_auto_fields), ./validate (validate_field and validate),
 * ./entity-checks (the entity checks). This module is the entry the rest of the double imports.
 */
import type { FieldDef, SchemaField } from "../model";
import { type AutoFieldOptions, processAutoFields as processWith } from "./auto-fields";
import {
  type Context,
  type FieldErrors,
  isPlainObject,
  makeRecordsRequired,
  type RecordSchema,
  recordSchemaOf,
} from "./record-schema";
import { validateField } from "./validate";

export { type AutoFieldOptions, ShorthandError } from "./auto-fields";
export {
  type CustomValidator,
  type EntityCheck,
  type FieldError,
  type FieldErrors,
  fieldEntries,
  isPlainObject,
  isReference,
  makeRecordsRequired,
  type RecordSchema,
} from "./record-schema";
export { validate, validateField } from "./validate";

/** Kong's process_auto_fields, with validate_field checking shorthand values (./auto-fields). */
export function processAutoFields(
  schema: RecordSchema,
  data: Record<string, unknown>,
  context: Context,
  opts: AutoFieldOptions = {},
): Record<string, unknown> {
  return processWith(schema, data, context, { ...opts, checkField: validateField });
}

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
