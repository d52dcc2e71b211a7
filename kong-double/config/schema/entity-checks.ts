/**
 * Kong's entity checks (kong/db/schema/init.lua, 3.9.3): at_least_one_of, conditional_at_least_one_of,
 * only_one_of, distinct, conditional, custom_entity_check, mutually_required, mutually_exclusive,
 * mutually_exclusive_sets, each with Kong's rules for missing and invalid fields and its "@entity" messages.
 * The conditional checks validate fields again: validate_field is passed in, as it uses this module in turn.
 */
import type { FieldDef } from "../model";
import { MESSAGES } from "./messages";
import {
  type EntityCheck,
  type FieldCheck,
  type FieldError,
  type FieldErrors,
  fieldEntries,
  isPlainObject,
  isReference,
} from "./record-schema";

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
    validateField: FieldCheck,
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
    fn: (input, arg, known, _errors, validateField) => {
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
    fn: (input, arg, known, errors, validateField) => {
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

export function runEntityCheck(
  known: Map<string, FieldDef>,
  check: EntityCheck,
  input: Record<string, unknown>,
  fullCheck: boolean,
  errors: FieldErrors,
  validateField: FieldCheck,
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
  const res = checker.fn(input, arg, known, errors, validateField);
  if (res === true) return;
  const [detail, custom] = res;
  const message = custom ?? (checker.message ? checker.message.replace("%s", detail) : detail);
  const entityErrors = (errors["@entity"] as string[] | undefined) ?? [];
  entityErrors.push(message);
  errors["@entity"] = entityErrors;
}
