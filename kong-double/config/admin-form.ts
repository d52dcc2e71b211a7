/**
 * Form bodies on Kong's Admin API (`application/x-www-form-urlencoded`, `multipart/form-data`), decoded the two
 * ways Kong 3.9.3 decodes them:
 *
 * - entity endpoints (kong/api/api_helpers.lua attach_new_db_routes → kong/api/arguments.lua load): each
 *   argument through kong/api/arguments_decoder.lua decode_arg (dotted keys `config.a.b`, bracket indexes
 *   `x[1]`, `x[]`, maps `x[k]`), combined (arguments.lua combine) and typed by the entity's schema
 *   (arguments.lua infer / infer_value: numbers, booleans, "" as null, a lone value as a one-element array);
 * - the other routes (`POST /config`, `POST /schemas/plugins/validate`; attach_routes → self.params): Lapis
 *   1.16 (lapis/request.lua add_params: only `name[...]` brackets nest, a trailing `.key` after a bracket is
 *   dropped), api_helpers.lua parse_params → kong/tools/http.lua decode_args (urlencoded only: "" as null,
 *   "true"/"false", numbered tables as arrays) and api_helpers.lua normalize_nested_params (dots in the
 *   remaining keys nest). No types from a schema: numbers stay strings.
 *
 * Lua tables are modelled as plain objects with string keys ("1", "2" for array slots), turned into JSON
 * arrays at the end when their keys are exactly 1..n, as cjson encodes them.
 */

/** A form's fields in the order they came, every value as text (a file part's content). */
export interface FormBody {
  kind: "urlencoded" | "multipart";
  entries: [string, string][];
}

type Table = Record<string, unknown>;
const NULL = null;

const isTable = (v: unknown): v is Table => typeof v === "object" && v !== null && !Array.isArray(v);

/** Lua's `#t` for the tables built here (no holes). */
function len(t: Table): number {
  let n = 0;
  while (t[String(n + 1)] !== undefined) n++;
  return n;
}

/** table.insert(t, pos, v) */
function insert(t: Table, pos: number, value: unknown): void {
  const n = len(t);
  for (let i = n; i >= pos; i--) t[String(i + 1)] = t[String(i)];
  t[String(pos)] = value;
}

/** Lua's tonumber for the decimal and hex strings a form carries. */
function toNumber(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v !== "string" || v.trim() === "") return undefined;
  const n = Number(v.trim());
  return Number.isNaN(n) ? undefined : n;
}

/** cjson's view of a table: keys exactly 1..n make an array. */
export function toJson(v: unknown): unknown {
  if (!isTable(v)) return v;
  const keys = Object.keys(v);
  const n = len(v);
  if (n > 0 && n === keys.length) return Array.from({ length: n }, (_, i) => toJson(v[String(i + 1)]));
  return Object.fromEntries(keys.map((k) => [k, toJson(v[k])]));
}

/** ngx.req.get_post_args: a repeated name gives a table of its values. */
function postArgs(form: FormBody): Map<string, unknown> {
  const args = new Map<string, unknown>();
  for (const [name, value] of form.entries) {
    const seen = args.get(name);
    if (seen === undefined) args.set(name, value);
    else if (isTable(seen)) insert(seen, len(seen) + 1, value);
    else args.set(name, { "1": seen, "2": value });
  }
  return args;
}

/** Lapis's params_post: multipart keeps the last part of a name; urlencoded (flatten_params) the last value. */
function lapisPostArgs(form: FormBody): Map<string, string> {
  return new Map(form.entries);
}

// --- entity endpoints: kong/api/arguments_decoder.lua + arguments.lua ------------------------------------------

/** arguments_decoder.lua extract_param_keys */
function extractParamKeys(keysString: string): { keys: string[]; isMap: boolean } {
  let isMap = false;
  const keys: string[] = [];
  for (const m of keysString.matchAll(/\.([^[.]+)|\[([^\]]*)\]/g)) {
    if (m[1] !== undefined) keys.push(m[1]);
    else {
      const key = m[2] as string;
      if (key !== "" && toNumber(key) === undefined) isMap = true;
      keys.push(key);
    }
  }
  return { keys, isMap };
}

/** arguments_decoder.lua nest_path: note that an existing container is not descended into. */
function nestPath(start: Table, path: string[], value: unknown): unknown {
  let container = start;
  for (const [i, segment] of path.entries()) {
    const last = i === path.length - 1;
    const arrIndex = toNumber(segment);
    if (segment === "" || arrIndex !== undefined) {
      if (last) {
        if (arrIndex !== undefined) {
          insert(container, arrIndex, value);
          return container[String(arrIndex)];
        }
        if (isTable(value)) {
          for (let j = 1; j <= len(value); j++) insert(container, j, value[String(j)]);
          return container;
        }
        container[String(len(container) + 1)] = value;
        return container;
      }
      const position = String(arrIndex ?? 1);
      if (container[position] === undefined) {
        container[position] = {};
        container = container[position] as Table;
      }
    } else {
      if (last) {
        container[segment] = value;
        return container[segment];
      }
      if (container[segment] === undefined) {
        container[segment] = {};
        container = container[segment] as Table;
      }
    }
  }
  return undefined;
}

/** arguments_decoder.lua decode_map_array_arg (get_param_name_and_keys inlined) */
function decodeMapArrayArg(name: string, value: unknown, container: Table, method: string): unknown {
  const delimiter = name.slice(1).search(/[[.]/);
  if (delimiter < 0) return undefined;
  const param = name.slice(0, delimiter + 1);
  const { keys, isMap } = extractParamKeys(name.slice(delimiter + 1));
  if (keys.length === 0) return undefined;
  // brackets with a non-numeric key are a map only on POST, PUT and PATCH
  if (isMap && !["POST", "PUT", "PATCH"].includes(method)) return undefined;
  return nestPath(container, [param, ...keys], value);
}

/** arguments_decoder.lua decode_complex_arg */
function decodeComplexArg(name: string, value: unknown, container: Table, method: string): unknown {
  const decoded = decodeMapArrayArg(name, value, container, method);
  if (decoded === undefined) {
    container[name] = value;
    return container[name];
  }
  return decoded;
}

/** arguments_decoder.lua decode_arg */
function decodeArg(rawName: string, value: unknown, method: string): Table {
  // `{ name = value }` in Lua: a key starting or ending with a dot lands under the literal key "name"
  if (/^\.+|\.$/.test(rawName)) return { name: value };
  const name = rawName.replace(/%5B(.*?)%5D/gi, "[$1]");
  // treat test[foo.bar] as a single match instead of splitting on the dot
  const names = [...name.matchAll(/(?:[^.](?:\[[^\]]*\])*)+/g)].map((m) => m[0]);
  const container: Table = {};
  if (names.length === 0) {
    decodeComplexArg(name, value, container, method);
    return container;
  }
  let bucket: Table = container;
  for (const [i, part] of names.entries()) {
    if (i === names.length - 1) decodeComplexArg(part, value, bucket, method);
    else bucket = decodeComplexArg(part, {}, bucket, method) as Table;
  }
  return container;
}

/** arguments.lua combine_arg */
function combineArg(to: Table, arg: unknown): void {
  if (!isTable(arg)) {
    insert(to, len(to) + 1, arg);
    return;
  }
  for (const [k, v] of Object.entries(arg)) {
    const t = to[k];
    if (t === undefined) to[k] = v;
    else if (isTable(t)) combineArg(t, v);
    else {
      to[k] = { "1": t };
      combineArg(to[k] as Table, v);
    }
  }
}

/** The schema shapes infer needs: a field's type and what it holds. */
export interface InferField {
  type: string;
  abstract?: boolean;
  elements?: InferField;
  values?: InferField;
  fields?: readonly Record<string, InferField>[];
  shorthand_fields?: readonly Record<string, InferField>[];
}
export interface InferSchema {
  fields: readonly Record<string, InferField>[];
  shorthand_fields?: readonly Record<string, InferField>[];
}

/** arguments.lua infer_value */
function inferValue(value: unknown, field: InferField | undefined): unknown {
  if (value === undefined || field === undefined) return value;
  if (value === "" || value === NULL) return NULL;
  switch (field.type) {
    case "number":
    case "integer":
      return toNumber(value) ?? value;
    case "boolean":
      return value === "true" ? true : value === "false" ? false : value;
    case "array":
    case "set": {
      const list: Table = isTable(value) ? value : { "1": value };
      for (let i = 1; i <= len(list); i++) list[String(i)] = inferValue(list[String(i)], field.elements);
      return list;
    }
    case "map":
      if (isTable(value)) for (const k of Object.keys(value)) value[k] = inferValue(value[k], field.values);
      return value;
    case "record":
      if (field.abstract || !isTable(value)) return value;
      for (const k of Object.keys(value)) {
        for (const item of [...(field.fields ?? []), ...(field.shorthand_fields ?? [])]) {
          if (k in item) value[k] = inferValue(value[k], item[k]);
        }
      }
      return value;
    default:
      // "foreign": infer(value, field.schema) — a reference's primary key has nothing to type
      return value;
  }
}

/** arguments.lua infer: the schema's fields (the subschema's for a plugin) and shorthand fields. */
function infer(args: Table, schema: InferSchema | undefined): Table {
  if (schema === undefined) return args;
  for (const item of [...schema.fields, ...(schema.shorthand_fields ?? [])]) {
    const [name, field] = Object.entries(item)[0] as [string, InferField];
    if (args[name] !== undefined) args[name] = inferValue(args[name], field);
  }
  return args;
}

/**
 * arguments.lua decode(args, schema) on the form's fields (load: get_post_args for urlencoded, Lapis's
 * params_post for multipart). `schemaOf` gets the decoded (untyped) arguments: a plugin's schema depends on
 * its name.
 */
export function decodeEntityForm(
  form: FormBody,
  method: string,
  schemaOf: (args: Record<string, unknown>) => InferSchema | undefined,
): Record<string, unknown> {
  const args = form.kind === "urlencoded" ? postArgs(form) : lapisPostArgs(form);
  const combined: Table = {};
  for (const [name, value] of args) combineArg(combined, decodeArg(name, value, method));
  return toJson(infer(combined, schemaOf(toJson(combined) as Record<string, unknown>))) as Record<
    string,
    unknown
  >;
}

// --- other routes: Lapis self.params + api_helpers.lua ----------------------------------------------------------

/** lapis/request.lua add_params: `a[b][c]` nests; whatever follows the last `]` is dropped. */
function lapisParams(form: FormBody): Table {
  const params: Table = {};
  for (const [k, v] of lapisPostArgs(form)) {
    let front = /^([^[]+)\[/.exec(k)?.[1];
    if (front === undefined) {
      params[k] = v;
      continue;
    }
    let curr = params;
    let nested = false;
    for (const m of k.matchAll(/\[([^\]]+)\]/g)) {
      nested = true;
      let next = curr[front];
      if (!isTable(next)) {
        next = {};
        curr[front] = next;
      }
      curr = next as Table;
      front = m[1] as string;
    }
    if (nested) curr[front] = v;
    else params[k] = v;
  }
  return params;
}

/** kong/tools/http.lua decode_array: {"1": a, "2": b} stays an array only without holes. */
function decodeArray(t: Table): Table | undefined {
  const keys = Object.keys(t).map((k) => toNumber(k));
  if (keys.some((k) => k === undefined)) return undefined;
  const sorted = (keys as number[]).sort((a, b) => a - b);
  if (sorted.some((k, i) => k !== i + 1)) return undefined;
  return Object.fromEntries(sorted.map((k) => [String(k), t[String(k)]]));
}

/** kong/tools/http.lua decode_args (urlencoded bodies only) */
function decodeArgs(args: Table): Table {
  const out: Table = {};
  for (const [k, v] of Object.entries(args)) {
    if (isTable(v)) out[k] = decodeArray(v) ?? v;
    else if (v === "") out[k] = NULL;
    else if (v === "true") out[k] = true;
    else if (v === "false") out[k] = false;
    else out[k] = v;
  }
  return out;
}

const NO_ARRAY_INDEX = Symbol("x[]");
type PathEntry = string | number | typeof NO_ARRAY_INDEX;

/** api_helpers.lua key_to_path: "x[1].y" → ["x", 1, "y"] */
function keyToPath(key: string, path: PathEntry[] = []): PathEntry[] {
  const index = /^(.+)\[(\d*)\]$/.exec(key);
  if (index) {
    keyToPath(index[1] as string, path);
    path.push(index[2] === "" ? NO_ARRAY_INDEX : Number(index[2]));
    return path;
  }
  const dot = /^(.+)\.(.+)$/.exec(key);
  if (dot) {
    keyToPath(dot[1] as string, path);
    keyToPath(dot[2] as string, path);
    return path;
  }
  path.push(key);
  return path;
}

const isLapisArray = (t: Table): boolean => {
  const n = Object.keys(t).length;
  for (let i = 1; i <= n; i++) if (t[String(i)] === undefined) return false;
  return true;
};

/** api_helpers.lua normalize_nested_params */
function normalizeNestedParams(obj: Table): Table {
  const out: Table = {};
  for (const [k, raw] of Object.entries(obj)) {
    let v = raw;
    let isArray = false;
    if (isTable(v)) {
      if (isLapisArray(v)) {
        isArray = true;
        const n = Object.keys(v).length;
        v = Object.fromEntries(
          Array.from({ length: n }, (_, i) => [String(i + 1), (v as Table)[String(i + 1)]]),
        );
      } else v = normalizeNestedParams(v);
    }
    const path = keyToPath(k);
    let node: unknown = out;
    let prev: Table = out;
    let entry: string | undefined;
    const key = (e: PathEntry, n: Table) => (e === NO_ARRAY_INDEX ? String(len(n) + 1) : String(e));
    for (const e of path.slice(0, -1)) {
      if (!isTable(node)) break;
      entry = key(e, node);
      node[entry] = node[entry] ?? {};
      prev = node;
      node = node[entry];
    }
    const lastEntry = path[path.length - 1] as PathEntry;
    if (lastEntry === NO_ARRAY_INDEX && isArray) {
      if (isTable(node)) for (let i = 1; i <= len(v as Table); i++) node[String(i)] = (v as Table)[String(i)];
      else prev[entry ?? k] = v;
    } else if (isTable(node)) node[key(lastEntry, node)] = v;
  }
  return out;
}

/** `self.params` of a route Kong attaches with attach_routes (`/config`, `/schemas/.../validate`). */
export function decodeParamsForm(form: FormBody): Record<string, unknown> {
  const params = lapisParams(form);
  return toJson(normalizeNestedParams(form.kind === "urlencoded" ? decodeArgs(params) : params)) as Record<
    string,
    unknown
  >;
}

/** Reads a form body: URLSearchParams for urlencoded, undici's multipart parser (a file part gives its text). */
export async function readForm(contentType: string, raw: Buffer): Promise<FormBody | undefined> {
  const type = contentType.toLowerCase();
  if (type.startsWith("application/x-www-form-urlencoded")) {
    return { kind: "urlencoded", entries: [...new URLSearchParams(raw.toString("utf8"))] };
  }
  if (!type.startsWith("multipart/form-data")) return undefined;
  const data = await new Request("http://admin/", {
    method: "POST",
    headers: { "content-type": contentType },
    body: raw,
  }).formData();
  const entries: [string, string][] = [];
  for (const [name, value] of data)
    entries.push([name, typeof value === "string" ? value : await value.text()]);
  return { kind: "multipart", entries };
}
