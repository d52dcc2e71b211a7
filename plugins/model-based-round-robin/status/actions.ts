/**
 * Operator actions on the status listener: POST /actions/lift and POST /actions/drain (core/actions.ts does the
 * work). Off unless MODEL_BASED_ROUND_ROBIN_OPERATOR_TOKEN is set in the plugin server's environment: then a
 * request must carry `Authorization: Bearer <token>`. The token is compared in constant time (digests of equal
 * length) and never logged or echoed. Answers are Kong-style: `{"message": "..."}` naming the field at fault.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { applyAction, type EntrySelection, type OperatorAction } from "../core/actions";
import { isEnvironment } from "../core/entry-record";
import { MAX_DRAIN_SECONDS } from "../core/process-state";
import { policyFor } from "../policies";
import { logToStderr } from "../stderr-log";

export const OPERATOR_TOKEN_ENV = "MODEL_BASED_ROUND_ROBIN_OPERATOR_TOKEN";
/** A selection is a few short strings: anything larger is not one. */
const MAX_BODY_BYTES = 16 * 1024;
const SELECTION_FIELDS = new Set(["plugin_id", "environment", "model", "endpoint"]);

export interface ActionAnswer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface OperatorActions {
  /** Whether the path is one of the actions' (then handle() answers it, 404 while actions are off). */
  owns(path: string): boolean;
  handle(req: IncomingMessage, path: string): Promise<ActionAnswer>;
}

export function operatorActions(env: Record<string, string | undefined> = process.env): OperatorActions {
  const token = env[OPERATOR_TOKEN_ENV];
  // Only the digest is kept: equal lengths for timingSafeEqual, and no copy of the token to leak.
  const expected = token === undefined || token === "" ? undefined : digest(token);
  return {
    owns: (path) => path === "/actions" || path.startsWith("/actions/"),
    async handle(req, path) {
      if (expected === undefined) {
        return fail(404, `not found: operator actions are off (set ${OPERATOR_TOKEN_ENV} to turn them on)`);
      }
      if (!authorized(req.headers.authorization, expected)) {
        return {
          ...fail(401, "unauthorized: send Authorization: Bearer <operator token>"),
          headers: { "www-authenticate": 'Bearer realm="model-based-round-robin"' },
        };
      }
      const kind = path === "/actions/lift" ? "lift" : path === "/actions/drain" ? "drain" : undefined;
      if (kind === undefined)
        return fail(404, "not found: the actions are POST /actions/lift and POST /actions/drain");
      if (req.method !== "POST") {
        return { ...fail(405, `${req.method} is not allowed: use POST`), headers: { allow: "POST" } };
      }
      const body = await readJson(req);
      if (typeof body === "string") return fail(400, body);
      const parsed = parseRequest(body, kind);
      if (typeof parsed === "string") return fail(400, parsed);
      const outcome = applyAction(parsed.selection, parsed.action, (config) =>
        policyFor(config, logToStderr),
      );
      if (outcome.kind === "unknown-plugin") {
        return fail(
          404,
          `plugin_id: no plugin configuration ${JSON.stringify(parsed.selection.pluginId)} has served a request on this plugin server yet (Kong starts a plugin instance with its first request)`,
        );
      }
      if (outcome.kind === "no-match") return fail(404, "no entry of the plugin matches the selection");
      return { status: 200, body: { action: kind, entries: outcome.entries } };
    },
  };
}

function fail(status: number, message: string): ActionAnswer {
  return { status, body: { message } };
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

function authorized(header: string | undefined, expected: Buffer): boolean {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? "");
  if (match?.[1] === undefined) return false;
  return timingSafeEqual(digest(match[1]), expected);
}

/** The request body as JSON, or a sentence saying what is wrong with it. */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return `body: larger than ${MAX_BODY_BYTES} bytes`;
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return "body: missing; send a JSON object with plugin_id";
  try {
    return JSON.parse(text);
  } catch {
    return "body: not valid JSON";
  }
}

/** The selection and the action, or a sentence naming the field at fault. */
export function parseRequest(
  body: unknown,
  kind: "lift" | "drain",
): { selection: EntrySelection; action: OperatorAction } | string {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return "body: must be a JSON object";
  const fields = body as Record<string, unknown>;
  for (const name of Object.keys(fields)) {
    if (!SELECTION_FIELDS.has(name) && !(kind === "drain" && name === "seconds")) {
      return `${name}: unknown field (expected plugin_id, environment, model, endpoint${kind === "drain" ? ", seconds" : ""})`;
    }
  }
  const { plugin_id: pluginId, environment, model, endpoint, seconds } = fields;
  if (pluginId === undefined) return "plugin_id: required field missing";
  if (typeof pluginId !== "string" || pluginId === "") return "plugin_id: expected a non-empty string";
  if (environment !== undefined && !isEnvironment(environment))
    return 'environment: expected "production" or "sandbox"';
  for (const [name, value] of [
    ["model", model],
    ["endpoint", endpoint],
  ] as const) {
    if (value !== undefined && (typeof value !== "string" || value === ""))
      return `${name}: expected a non-empty string`;
  }
  const selection: EntrySelection = {
    pluginId,
    ...(environment !== undefined && { environment }),
    ...(typeof model === "string" && { model }),
    ...(typeof endpoint === "string" && { endpoint }),
  };
  if (kind === "lift") return { selection, action: { kind: "lift" } };
  if (seconds === undefined) return "seconds: required field missing";
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds <= 0)
    return "seconds: expected a positive number";
  if (seconds > MAX_DRAIN_SECONDS) return `seconds: at most ${MAX_DRAIN_SECONDS} (30 days)`;
  return { selection, action: { kind: "drain", seconds } };
}
