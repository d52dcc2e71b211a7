/**
 * Kong's field validators (kong/db/schema/init.lua, 3.9.3), run in Kong's order: eq, ne, not_one_of, one_of,
 * gt, timestamp, uuid, is_regex, between, len_*, starts_with, not_match, match_none, match, match_all,
 * match_any, contains, custom_validator, mutually_exclusive_subsets. `match` and friends use Lua patterns
 * (../lua-pattern).
 */

import { luaPatternMatches } from "../lua-pattern";
import type { FieldDef } from "../model";
import { luaString, MESSAGES } from "./messages";
import { type CustomValidator, isPlainObject } from "./record-schema";

/** A string field's implicit len_min: 1 unless the definition says otherwise. */
export const lenMinOf = (def: FieldDef): number => (typeof def.len_min === "number" ? def.len_min : 1);

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

/**
 * Runs a field's validators in Kong's order (with `lenMin` standing for the definition's len_min when given):
 * the first failure's message, the definition's own `err` first, or undefined when all pass.
 */
export function runValidators(def: FieldDef, value: unknown, lenMin: unknown): string | undefined {
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
