/**
 * Reads an apk-conf: YAML with line numbers, refuses what is not an apk-conf (Kubernetes custom resources,
 * several documents, a random YAML map), and validates it against the project's own schema
 * (apk-conf.schema.json: APK's facts, stricter where APK is too loose).
 */
import Ajv, { type ErrorObject } from "ajv";
import { type Document, isScalar, isMap as isYamlMap, LineCounter, parseAllDocuments } from "yaml";
import schema from "./apk-conf.schema.json";
import { ConversionError, located, NotAnApkConf } from "./errors";

export interface ApkConf {
  id?: string;
  name: string;
  basePath: string;
  version: string;
  type?: string;
  environment?: string;
  endpointConfigurations?: { production?: EndpointConfiguration[]; sandbox?: EndpointConfiguration[] };
  operations?: Operation[];
  apiPolicies?: Policies;
  [field: string]: unknown;
}
export interface EndpointConfiguration {
  endpoint: string | { name: string; namespace?: string; port: number; protocol?: string };
  endpointSecurity?: { enabled?: boolean; securityType?: Record<string, unknown> };
  [field: string]: unknown;
}
export interface Operation {
  target: string;
  verb: string;
  secured?: boolean;
  scopes?: string[];
  operationPolicies?: Policies;
  [field: string]: unknown;
}
export interface Policies {
  request?: Policy[];
  response?: Policy[];
}
export interface Policy {
  policyName: string;
  parameters?: Record<string, unknown>;
  [field: string]: unknown;
}

const validate = new Ajv({ allErrors: true, verbose: true, strict: false }).compile(schema);

/** APK's API types other than REST, by the name their documentation gives them. */
const OTHER_API_TYPES: Record<string, string> = {
  GRAPHQL: "a GraphQL API",
  GRPC: "a gRPC API",
  WS: "a WebSocket API",
  WSS: "a WebSocket API",
  SSE: "a Server-Sent Events API",
  WEBSUB: "a WebSub API",
};

export function readApkConf(text: string, file: string): ApkConf {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [docs];
  for (const doc of list) {
    const error = doc.errors[0];
    if (error !== undefined) {
      throw located(
        file,
        lines.linePos(error.pos[0]).line,
        undefined,
        `not valid YAML: ${error.message.split("\n")[0]}`,
      );
    }
  }
  const objects = list.map((d) => d.toJS() as unknown);
  const resource = objects.find(
    (o) => isMap(o) && typeof o.kind === "string" && typeof o.apiVersion === "string",
  ) as { kind: string; apiVersion: string } | undefined;
  if (resource !== undefined) {
    throw located(
      file,
      undefined,
      undefined,
      `is a Kubernetes custom resource (kind: ${resource.kind}, apiVersion: ${resource.apiVersion}), not an apk-conf; convert the apk-conf file it was generated from`,
      NotAnApkConf,
    );
  }
  if (objects.length !== 1)
    throw located(
      file,
      undefined,
      undefined,
      `holds ${objects.length} YAML documents; an apk-conf is one`,
      NotAnApkConf,
    );
  const data = objects[0];
  const doc = list[0] as Document;
  const lineOf = (path: (string | number)[]) => {
    const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
    return node?.range ? lines.linePos(node.range[0]).line : undefined;
  };
  if (!isMap(data))
    throw located(file, 1, undefined, "is not an apk-conf: expected a YAML mapping at the top", NotAnApkConf);
  if (!["name", "basePath", "version", "operations", "endpointConfigurations"].some((k) => k in data)) {
    throw located(
      file,
      1,
      undefined,
      "is not an apk-conf: it has none of name, basePath, version, operations, endpointConfigurations",
      NotAnApkConf,
    );
  }
  // Before the schema: a GraphQL API's operations ("hero", verb QUERY) would otherwise be refused as bad REST ones.
  if (typeof data.type === "string" && data.type !== "REST") {
    const kind = OTHER_API_TYPES[data.type.toUpperCase()];
    throw located(
      file,
      lineOf(["type"]),
      "type",
      data.type.toUpperCase() === "REST"
        ? `${show(data.type)}: APK's types are upper case, write REST`
        : kind === undefined
          ? `${show(data.type)} is not an APK API type (REST, GRAPHQL, GRPC, WS, SSE, WEBSUB); apk-conf-to-kong converts REST APIs only`
          : `${data.type} is ${kind}, which apk-conf-to-kong does not convert: it converts REST APIs only (Kong routes them by HTTP method and path)`,
    );
  }
  if (!validate(data)) throw schemaErrors(validate.errors ?? [], data, doc, lines, file, text);
  listEndpointForms(data);
  return data as ApkConf;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Marks a list read from APK 1.2's single form, so that messages name the field as the file has it. */
const SINGLE_FORM = Symbol("single endpoint configuration");

/** `endpointConfigurations.production[1]`, or `endpointConfigurations.production` for APK 1.2's single form. */
export function endpointField(prefix: string, list: EndpointConfiguration[], index: number): string {
  return (list as { [SINGLE_FORM]?: boolean })[SINGLE_FORM] ? prefix : `${prefix}[${index}]`;
}

/**
 * APK 1.2 wrote each environment of endpointConfigurations as one endpoint (`production: {endpoint: ...}`), 1.3
 * and later as a list of them (`production: [{endpoint: ...}]`): the single form is read as a list of one.
 */
function listEndpointForms(data: Record<string, unknown>): void {
  const visit = (holder: unknown) => {
    if (!isMap(holder)) return;
    for (const env of ["production", "sandbox"]) {
      if (isMap(holder[env]))
        holder[env] = Object.defineProperty([holder[env]], SINGLE_FORM, { value: true });
    }
  };
  visit(data.endpointConfigurations);
  if (Array.isArray(data.operations))
    for (const op of data.operations) if (isMap(op)) visit(op.endpointConfigurations);
}

/** A value for a one-line message: scalars as written, never a whole mapping or list. */
export function show(value: unknown): string {
  if (typeof value === "string")
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (isMap(value)) return "a mapping";
  return String(value);
}

/**
 * The errors to report, one per problem: Ajv (allErrors) reports every branch of a oneOf/anyOf and the misspelled
 * field twice (the unknown name, the required name it misspells). Per field: every unknown name (with the
 * known one it probably misspells), every missing field no unknown name explains, then the other errors, where
 * a "type" error inside a oneOf only says the value is not of that branch and the oneOf's (anyOf's) own error
 * is reported only when no branch said more. A field whose only errors are such branch noise is left out when a
 * field inside it has a real error (a list of endpoints with a bad endpoint: the endpoint's error is the one).
 */
function pickErrors(errors: ErrorObject[]): ErrorObject[] {
  const useful = errors.filter((e) => e.keyword !== "if");
  const alternatives = new Set(
    useful.filter((e) => e.keyword === "oneOf" || e.keyword === "anyOf").map((e) => e.instancePath),
  );
  const noise = (e: ErrorObject) =>
    (e.keyword === "type" && alternatives.has(e.instancePath)) ||
    e.keyword === "oneOf" ||
    e.keyword === "anyOf";
  const paths = [...new Set(useful.map((e) => e.instancePath))];
  const picked: ErrorObject[] = [];
  for (const path of paths) {
    const here = useful.filter((e) => e.instancePath === path);
    const unknown = here.filter((e) => e.keyword === "additionalProperties");
    const suggested = new Set(unknown.map((e) => suggestionFor(e, here)));
    const missing = here.filter(
      (e) => e.keyword === "required" && !suggested.has(String(e.params.missingProperty)),
    );
    const others = here.filter((e) => e.keyword !== "additionalProperties" && e.keyword !== "required");
    const real = others.filter((e) => !noise(e));
    const deeper = useful.some((e) => e.instancePath.startsWith(`${path}/`));
    const alternative = others.find((e) => e.keyword === "oneOf" || e.keyword === "anyOf");
    const rest =
      real.length > 0
        ? real
        : alternative !== undefined && unknown.length + missing.length === 0 && !deeper
          ? [alternative]
          : [];
    picked.push(...unknown, ...missing, ...rest);
  }
  return picked;
}

/** The known field an unknown one (an additionalProperties error) probably misspells, if any. */
function suggestionFor(error: ErrorObject, atPath: ErrorObject[]): string | undefined {
  const name = String(error.params.additionalProperty);
  const known = Object.keys((error.parentSchema as { properties?: object } | undefined)?.properties ?? {});
  const missing = atPath.filter((e) => e.keyword === "required").map((e) => String(e.params.missingProperty));
  return closest(name, missing) ?? closest(name, known);
}

/** Every problem the schema finds in the file, as one error with one line per problem. */
function schemaErrors(
  errors: ErrorObject[],
  data: unknown,
  doc: Document,
  lines: LineCounter,
  file: string,
  text: string,
): ConversionError {
  const picked = pickErrors(errors);
  if (picked.length === 0) return located(file, undefined, undefined, "does not match the apk-conf schema");
  // In the file's order.
  const messages = picked
    .map(
      (e) =>
        schemaError(
          e,
          errors.filter((o) => o.instancePath === e.instancePath),
          data,
          doc,
          lines,
          file,
          text,
        ).message,
    )
    .map((message) => ({
      message,
      line: Number(/^[^\n]*?:(\d+): /.exec(message.slice(file.length))?.[1] ?? Infinity),
    }))
    .sort((a, b) => a.line - b.line)
    .map((m) => m.message);
  return new ConversionError([...new Set(messages)].join("\n"));
}

function schemaError(
  error: ErrorObject,
  atPath: ErrorObject[],
  data: unknown,
  doc: Document,
  lines: LineCounter,
  file: string,
  text: string,
) {
  const path = error.instancePath
    .split("/")
    .slice(1)
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p.replace(/~1/g, "/").replace(/~0/g, "~")));
  const value = path.reduce<unknown>(
    (v, p) => (v as Record<string | number, unknown> | undefined)?.[p],
    data,
  );
  const lineAt = (range: [number, number, number] | null | undefined) =>
    range ? lines.linePos(range[0]).line : undefined;
  const range = (doc.getIn(path, true) as { range?: [number, number, number] } | undefined)?.range;
  const line = lineAt(range);
  /** The line of the key `name` in the mapping at `path`. */
  const keyLine = (name: string) => {
    const map = doc.getIn(path, true);
    const pair = isYamlMap(map) ? map.items.find((p) => isScalar(p.key) && p.key.value === name) : undefined;
    return lineAt(isScalar(pair?.key) ? pair.key.range : undefined);
  };
  const field = path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
  const child = (name: unknown) => (field ? `${field}.${String(name)}` : String(name));
  switch (error.keyword) {
    case "required":
      return located(file, line, child(error.params.missingProperty), "is required");
    case "additionalProperties": {
      const name = String(error.params.additionalProperty);
      const known = Object.keys(
        (error.parentSchema as { properties?: object } | undefined)?.properties ?? {},
      );
      const suggestion = suggestionFor(error, atPath);
      return located(
        file,
        keyLine(name) ?? line,
        child(name),
        suggestion === undefined
          ? `is not a known apk-conf field${known.length > 0 ? ` (known here: ${known.join(", ")})` : ""}`
          : `is not a known apk-conf field; did you mean ${suggestion}?`,
      );
    }
    case "pattern":
      return located(
        file,
        line,
        field,
        /endpoint/.test(field)
          ? endpointProblem(value)
          : `must match ${error.params.pattern} (got ${show(value)})`,
      );
    case "enum":
      return located(
        file,
        line,
        field,
        `must be one of ${(error.params.allowedValues as unknown[]).map(String).join(", ")} (got ${show(value)})`,
      );
    case "oneOf":
      return located(file, line, field, "must be an http(s) URL or a Kubernetes service {name, port}");
    case "anyOf":
      return located(file, line, field, "must be a list of endpoint configurations, or one (APK 1.2's form)");
    case "type": {
      // YAML reads `version: 1.0` as the number 1: the text as written, and the quotes that keep it text.
      const written = range ? text.slice(range[0], range[1]).trim() : String(value);
      const quote =
        error.params.type === "string" && (typeof value === "number" || typeof value === "boolean")
          ? `; YAML reads ${written} as a ${typeof value}: write it in quotes, ${field.split(".").at(-1)}: "${written}"`
          : "";
      return located(file, line, field, `${error.message ?? "is invalid"} (got ${show(value)})${quote}`);
    }
    default:
      return located(file, line, field, `${error.message ?? "is invalid"} (got ${show(value)})`);
  }
}

/**
 * Why an endpoint URL is refused: no http(s) scheme, or a host Kong cannot route to, such as APK's deploy-time
 * placeholders (`https://{endpoint}/openai/...` in APK's Azure example), which Kong would refuse as a service host.
 */
function endpointProblem(value: unknown): string {
  const host = typeof value === "string" ? /^https?:\/\/([^/?#]*)/i.exec(value)?.[1] : undefined;
  if (host === undefined) return `must be an http(s) URL with a scheme (got ${show(value)})`;
  if (/[{}]/.test(host))
    return `has the placeholder host ${show(host)} (got ${show(value)}): APK fills such placeholders in when it deploys; write the real host name, e.g. https://my-resource.openai.azure.com/...`;
  return `must be an http(s) URL whose host is a host name or IP address Kong can route to (got ${show(value)})`;
}

/**
 * The known name `name` most likely misspells: one it abbreviates (its letters in order, the first three alike:
 * prodModels → productionModels), or one a few edits away; none when nothing is close.
 */
export function closest(name: string, known: string[]): string | undefined {
  const lower = name.toLowerCase();
  const abbreviates = (k: string) => {
    const target = k.toLowerCase();
    if (target.slice(0, 3) !== lower.slice(0, 3)) return false;
    let i = 0;
    for (const c of target) if (c === lower[i]) i++;
    return i === lower.length;
  };
  const scored = known
    .filter((k) => k !== name)
    .map((k) => ({ k, d: distance(lower, k.toLowerCase()) }))
    .filter(({ k, d }) => d <= Math.max(2, Math.floor(k.length / 3)) || abbreviates(k))
    .sort((a, b) => a.d - b.d);
  return scored[0]?.k;
}

/** Levenshtein distance. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(
        (previous[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    previous = row;
  }
  return previous[b.length] as number;
}
