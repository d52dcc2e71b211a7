/**
 * The shapes the schema engine works on: a record's fields plus what Kong's record and entity schemas add
 * (entity checks, shorthand fields), the error tables it produces, and the small helpers every part uses.
 */
import type { FieldDef, SchemaField } from "../model";

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

/** Kong's validate_field as a value, for the parts it uses in turn (auto fields, entity checks). */
export type FieldCheck = (def: FieldDef, value: unknown) => FieldError | undefined;

/** A schema's `custom_validator` (only in schemas written in TypeScript): `true`, or the error message. */
export type CustomValidator = (value: unknown) => true | string;

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

export function recordSchemaOf(def: FieldDef): RecordSchema {
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
