/**
 * Reads an apk-conf: YAML with line numbers, refuses what is not an apk-conf (Kubernetes custom resources,
 * several documents, a random YAML map), and validates it against the project's own schema
 * (apk-conf.schema.json: APK's facts, stricter where APK is too loose).
 */
import Ajv, { type ErrorObject } from "ajv";
import { type Document, LineCounter, parseAllDocuments } from "yaml";
import schema from "./apk-conf.schema.json";
import { located } from "./errors";

export interface ApkConf {
  id?: string;
  name: string;
  basePath: string;
  version: string;
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

const validate = new Ajv({ allErrors: false, strict: false }).compile(schema);

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
    );
  }
  if (objects.length !== 1)
    throw located(file, undefined, undefined, `holds ${objects.length} YAML documents; an apk-conf is one`);
  const data = objects[0];
  if (!isMap(data))
    throw located(file, 1, undefined, "is not an apk-conf: expected a YAML mapping at the top");
  if (!["name", "basePath", "version", "operations", "endpointConfigurations"].some((k) => k in data)) {
    throw located(
      file,
      1,
      undefined,
      "is not an apk-conf: it has none of name, basePath, version, operations, endpointConfigurations",
    );
  }
  if (!validate(data)) throw schemaError(validate.errors?.[0], list[0] as Document, lines, file);
  return data as ApkConf;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function schemaError(error: ErrorObject | undefined, doc: Document, lines: LineCounter, file: string) {
  if (error === undefined) return located(file, undefined, undefined, "does not match the apk-conf schema");
  const path = error.instancePath
    .split("/")
    .slice(1)
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p.replace(/~1/g, "/").replace(/~0/g, "~")));
  const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
  const line = node?.range ? lines.linePos(node.range[0]).line : undefined;
  const field = path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
  switch (error.keyword) {
    case "required":
      return located(
        file,
        line,
        field ? `${field}.${error.params.missingProperty}` : String(error.params.missingProperty),
        "is required",
      );
    case "additionalProperties":
      return located(
        file,
        line,
        field ? `${field}.${error.params.additionalProperty}` : String(error.params.additionalProperty),
        "is not a known apk-conf field",
      );
    case "pattern":
      return located(
        file,
        line,
        field,
        /endpoint/.test(field)
          ? `must be an http(s) URL with a scheme (got ${JSON.stringify(doc.getIn(path))})`
          : `must match ${error.params.pattern} (got ${JSON.stringify(doc.getIn(path))})`,
      );
    case "oneOf":
      return located(file, line, field, "must be an http(s) URL or a Kubernetes service {name, port}");
    default:
      return located(
        file,
        line,
        field,
        `${error.message ?? "is invalid"} (got ${JSON.stringify(doc.getIn(path))})`,
      );
  }
}
