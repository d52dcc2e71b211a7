/** Kong's validation messages, and Lua's way of writing the values they quote. */

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

export const luaString = (v: unknown): string => {
  if (v === null) return "null";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : luaNumber(v);
  return String(v);
};
/** Lua's tostring for a float: 14 significant digits (%.14g). */
const luaNumber = (v: number): string => String(Number.parseFloat(v.toPrecision(14)));
