/**
 * Kong's MetaSubSchema (kong/db/schema/metaschema.lua, 3.9.3): the rules a plugin schema must pass when Kong
 * loads it, or Kong refuses to start ("error loading plugin schemas"). Two passes, as in Kong:
 *
 * 1. Schema validation of every field definition against `field_schema`: each entry of `fields` a one-key
 *    map; `type` one of Kong's types; each attribute and validator with the type Kong gives it
 *    (`description` 10-500 characters, `between` two numbers, `one_of` an array, `default` valid for the
 *    field itself, ...); unknown attributes rejected.
 * 2. The `check` function: a type needs its companions (`array`/`set` → `elements`, `map` → `keys` and
 *    `values`, `record` → `fields`, `json` → `json_schema`), and attributes such as `between`, `one_of`,
 *    `match`, `len_eq`, `uuid` only on the types they apply to.
 *
 * `checkPluginSchema` returns Kong's error table (what `errors:schema_violation` formats) and, because Kong's
 * table loses field names inside `fields` maps, a list of problems with their full path for humans.
 */
import type { FieldDef, SchemaField } from "./model";
import { type FieldErrors, isPlainObject, type RecordSchema, validate, validateField } from "./schema";

/** Schema.valid_types, in the order Kong's error message happens to list them here. */
export const VALID_TYPES = [
  "array",
  "set",
  "string",
  "number",
  "boolean",
  "integer",
  "foreign",
  "map",
  "record",
  "function",
  "json",
];

const any: FieldDef = { type: "any" };
const nilable = (def: FieldDef): FieldDef => ({ ...def, nilable: def.required !== true });
const matchList: FieldDef = {
  type: "array",
  elements: {
    type: "record",
    fields: [{ pattern: { type: "string", required: true } }, { err: { type: "string", nilable: true } }],
  },
};

const VALIDATOR_FIELDS: SchemaField[] = [
  { between: { type: "array", elements: { type: "number" }, len_eq: 2 } },
  { eq: any },
  { ne: any },
  { gt: { type: "number" } },
  { len_eq: { type: "integer" } },
  { len_min: { type: "integer" } },
  { len_max: { type: "integer" } },
  { match: { type: "string" } },
  { not_match: { type: "string" } },
  { match_all: matchList },
  { match_none: matchList },
  {
    match_any: {
      type: "record",
      fields: [
        { patterns: { type: "array", elements: { type: "string" }, required: true } },
        { err: { type: "string", nilable: true } },
      ],
    },
  },
  { starts_with: { type: "string" } },
  { one_of: { type: "array", elements: any } },
  { not_one_of: { type: "array", elements: any } },
  { contains: any },
  { is_regex: { type: "boolean" } },
  { timestamp: { type: "boolean" } },
  { uuid: { type: "boolean" } },
  { custom_validator: { type: "function" } },
  {
    mutually_exclusive_subsets: {
      type: "array",
      elements: { type: "array", elements: { type: "string" } },
    },
  },
];

/** field_schema: every attribute a field definition may carry. Built mutably because it refers to itself. */
const FIELD_SCHEMA: SchemaField[] = [
  { type: { type: "string", one_of: VALID_TYPES, required: true } },
  { required: { type: "boolean" } },
  { reference: { type: "string" } },
  { description: { type: "string", len_min: 10, len_max: 500 } },
  { examples: { type: "array", elements: any } },
  { auto: { type: "boolean" } },
  { unique: { type: "boolean" } },
  { unique_across_ws: { type: "boolean" } },
  { on_delete: { type: "string", one_of: ["restrict", "cascade", "null"] } },
  { default: { type: "self" } },
  { abstract: { type: "boolean" } },
  { generate_admin_api: { type: "boolean" } },
  { immutable: { type: "boolean" } },
  { err: { type: "string" } },
  { encrypted: { type: "boolean" } },
  { referenceable: { type: "boolean" } },
  {
    json_schema: {
      type: "record",
      fields: [
        { namespace: { type: "string", nilable: true } },
        { parent_subschema_key: { type: "string", nilable: true } },
        { optional: { type: "boolean", nilable: true } },
        { inline: { type: "any", nilable: true } },
        { default: { type: "any", nilable: true } },
      ],
    },
  },
  { transient: { type: "boolean" } },
  {
    deprecation: {
      type: "record",
      fields: [
        { message: { type: "string", required: true } },
        { removal_in_version: { type: "string", required: true } },
        { old_default: { type: "any", nilable: true } },
        { replaced_with: { type: "array", elements: any, nilable: true } },
      ],
    },
  },
  ...VALIDATOR_FIELDS,
].map((f) => Object.fromEntries(Object.entries(f).map(([k, d]) => [k, nilable(d)])));

const FIELDS_ARRAY: FieldDef = {
  type: "array",
  elements: {
    type: "map",
    keys: { type: "string" },
    values: { type: "record", fields: FIELD_SCHEMA },
    required: true,
    len_eq: 1,
  },
};
FIELD_SCHEMA.push(
  { elements: { type: "record", fields: FIELD_SCHEMA, nilable: true } },
  { keys: { type: "record", fields: FIELD_SCHEMA, nilable: true } },
  { values: { type: "record", fields: FIELD_SCHEMA, nilable: true } },
  { fields: { ...FIELDS_ARRAY, nilable: true } },
  // the double does not check the inside of entity checks and shorthands (they cannot carry functions in JSON)
  { entity_checks: { type: "array", elements: any, nilable: true } },
  { shorthand_fields: { type: "array", elements: any, nilable: true } },
);

const META_SUB_SCHEMA: RecordSchema = {
  fields: [
    { name: { type: "string", required: true } },
    { fields: FIELDS_ARRAY },
    { entity_checks: { type: "array", elements: any, nilable: true } },
    { shorthand_fields: { type: "array", elements: any, nilable: true } },
    { transformations: { type: "array", elements: any, nilable: true } },
    { check: { type: "function", nilable: true } },
  ],
};

const REQUIRED_ATTRIBUTES: Record<string, string[]> = {
  array: ["elements"],
  set: ["elements"],
  map: ["keys", "values"],
  record: ["fields"],
  json: ["json_schema"],
};

const ATTRIBUTE_TYPES: Record<string, string[]> = {
  between: ["integer", "number"],
  len_eq: ["array", "set", "string", "map"],
  match: ["string"],
  one_of: ["string", "number", "integer"],
  contains: ["array", "set"],
  is_regex: ["string"],
  timestamp: ["number", "integer"],
  uuid: ["string"],
  unique: ["string", "number", "integer", "foreign"],
  unique_across_ws: ["string", "number", "integer", "foreign"],
  abstract: ["string", "number", "integer", "record", "array", "set", "map"],
  json_schema: ["json"],
  transient: ["string", "number", "integer", "array", "set", "boolean"],
};

export interface MetaschemaProblem {
  /** Where, from the plugin's config: `config.production_models.elements.weight.description`. */
  path: string;
  /** Kong's message for the broken rule. */
  rule: string;
}

export interface MetaschemaResult {
  /** Kong's error table: empty when the schema is valid. */
  errors: FieldErrors;
  problems: MetaschemaProblem[];
}

/** Validates a plugin schema (`{name, fields: [{config: {type: "record", fields}}]}`) as Kong's loader does. */
export function checkPluginSchema(schema: unknown): MetaschemaResult {
  if (!isPlainObject(schema))
    return {
      errors: { "@entity": ["expected a record"] },
      problems: [{ path: "", rule: "expected a record" }],
    };
  const errors: FieldErrors = validate(META_SUB_SCHEMA, schema) ?? {};
  if (Array.isArray(schema.fields)) checkFields(schema.fields, errors);
  else if (schema.fields === undefined) errors.fields = "'fields' must be a table";
  const problems: MetaschemaProblem[] = [];
  if (Array.isArray(schema.fields)) collectProblems(schema.fields, "", problems);
  for (const [key, value] of Object.entries(errors)) {
    if (key !== "fields" && typeof value === "string" && !problems.some((p) => p.rule === value)) {
      problems.push({ path: key, rule: value });
    }
  }
  if (problems.length === 0 && typeof errors.fields === "string")
    problems.push({ path: "fields", rule: errors.fields });
  return { errors, problems };
}

/** metaschema.lua check_fields/check_field: errors land flat, keyed by the offending field's name. */
function checkFields(fields: unknown[], errors: FieldErrors): void {
  for (const item of fields) {
    if (!isPlainObject(item)) {
      errors.fields = "each entry in fields must be a sub-table";
      return;
    }
    const [name, def] = Object.entries(item)[0] ?? [];
    if (name === undefined) {
      errors.fields = "field entry table is empty";
      return;
    }
    if (isPlainObject(def)) checkField(name, def as FieldDef, errors);
    else errors[name] = `'${name}' must be a table`;
  }
}

function checkField(name: string, def: FieldDef, errors: FieldErrors): void {
  for (const problem of fieldRuleProblems(def)) errors[name] = problem;
  for (const nested of ["elements", "keys", "values"] as const) {
    const value = def[nested];
    if (value === undefined) continue;
    if (isPlainObject(value)) checkField(name, value as FieldDef, errors);
    else errors[name] = `'${nested}' must be a table`;
  }
  if (Array.isArray(def.fields)) checkFields(def.fields, errors);
}

function fieldRuleProblems(def: FieldDef): string[] {
  if (def.type === undefined) return ["missing type declaration"];
  const problems: string[] = [];
  const required =
    def.abstract === true && def.type === "record" ? [] : (REQUIRED_ATTRIBUTES[def.type] ?? []);
  for (const attr of required) {
    if (def[attr] === undefined) problems.push(`field of type '${def.type}' must declare '${attr}'`);
  }
  for (const attr of Object.keys(def)) {
    const types = ATTRIBUTE_TYPES[attr];
    if (types !== undefined && !types.includes(def.type))
      problems.push(`field of type '${def.type}' cannot have attribute '${attr}'`);
  }
  return problems;
}

/** The same rules, walked field by field so that every problem carries its path. */
function collectProblems(fields: unknown[], prefix: string, problems: MetaschemaProblem[]): void {
  fields.forEach((item, i) => {
    if (!isPlainObject(item) || Object.keys(item).length !== 1) {
      problems.push({
        path: `${prefix}fields[${i + 1}]`,
        rule: "each entry in fields must be a map with exactly one key: the field's name",
      });
      return;
    }
    const [name, def] = Object.entries(item)[0] as [string, unknown];
    collectFieldProblems(def, `${prefix}${name}`, problems);
  });
}

function collectFieldProblems(def: unknown, path: string, problems: MetaschemaProblem[]): void {
  if (!isPlainObject(def)) {
    problems.push({ path, rule: "expected a record" });
    return;
  }
  const own = Object.fromEntries(
    Object.entries(def).filter(([k]) => !["elements", "keys", "values", "fields"].includes(k)),
  );
  const err = validateField({ type: "record", fields: FIELD_SCHEMA }, own);
  if (err !== undefined) flatten(err, path, problems);
  for (const rule of fieldRuleProblems(def as FieldDef)) problems.push({ path, rule });
  for (const nested of ["elements", "keys", "values"] as const) {
    if (def[nested] !== undefined) collectFieldProblems(def[nested], `${path}.${nested}`, problems);
  }
  if (def.fields !== undefined) {
    if (Array.isArray(def.fields)) collectProblems(def.fields, `${path}.`, problems);
    else problems.push({ path: `${path}.fields`, rule: "expected an array" });
  }
}

function flatten(err: unknown, path: string, problems: MetaschemaProblem[]): void {
  if (typeof err === "string") problems.push({ path, rule: err });
  else if (Array.isArray(err)) {
    err.forEach((e, i) => {
      if (e !== null) flatten(e, `${path}[${i + 1}]`, problems);
    });
  } else if (isPlainObject(err))
    for (const [k, v] of Object.entries(err)) flatten(v, k === "@entity" ? path : `${path}.${k}`, problems);
}
