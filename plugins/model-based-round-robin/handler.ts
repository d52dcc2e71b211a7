/**
 * The thin layer between Kong and the pure core: it reads what Kong knows about the request, asks the core
 * what to do, and tells Kong. Every PDK call is a round trip to Kong (~140 µs on the JS side alone), so each
 * phase reads only what its decision needs, and every argument is checked before the call because Kong never
 * answers a call it rejects (the request would hang until Kong's 500).
 */
import { type Balancer, balancerFor } from "./core/balancer";
import { isInsufficientQuota } from "./core/billing";
import { ConfigError, type Entry, normalizeConfig, type RoundRobinConfig } from "./core/config";
import { type Environment, environmentOf } from "./core/environment";
import {
  allSuspendedError,
  bodyTooLargeError,
  internalError,
  invalidBodyError,
  retryHeaders,
  sandboxNotConfiguredError,
} from "./core/openai-error";
import { prepareBody } from "./core/request-body";
import { needsHeaders, suspensionFromResponse } from "./core/signals";
import { upstreamPath } from "./core/upstream-path";
import type { HeaderMap, Pdk } from "./pdk";

/** Where `access` leaves the choice for `log`, in the request's kong.ctx.shared. */
const CHOICE_KEY = "model_based_round_robin";
/** The most headers kong.request.get_headers returns (Kong's upper bound for its argument). */
const MAX_REQUEST_HEADERS = 1000;

export class ModelBasedRoundRobinHandler {
  private readonly config: RoundRobinConfig | undefined;
  private readonly configProblem: string | undefined;
  private readonly balancer: Balancer | undefined;

  /** Kong starts one instance per plugin configuration (and again on every reload); all derivation is done here. */
  constructor(rawConfig: unknown) {
    try {
      this.config = normalizeConfig(rawConfig);
      this.balancer = balancerFor(this.config);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      this.configProblem = error.message;
    }
  }

  async access(kong: Pdk): Promise<void> {
    if (this.config === undefined || this.balancer === undefined) {
      // Kong's schema should make this impossible; never send traffic to the service's placeholder instead.
      await kong.log.err(`invalid configuration: ${this.configProblem ?? "unknown problem"}`);
      kong.response.exit(500, internalError("the model-based-round-robin plugin is misconfigured"));
      return;
    }
    try {
      await this.route(kong, this.config, this.balancer);
    } catch (error) {
      await kong.log.err(`access failed: ${describe(error)}`);
      kong.response.exit(500, internalError("the model-based-round-robin plugin failed on this request"));
    }
  }

  async log(kong: Pdk): Promise<void> {
    if (this.config === undefined || this.balancer === undefined) return;
    try {
      await this.observe(kong, this.config, this.balancer);
    } catch (error) {
      await kong.log.err(`log failed: ${describe(error)}`);
    }
  }

  private async route(kong: Pdk, config: RoundRobinConfig, balancer: Balancer): Promise<void> {
    // Kong's default cap is 100 headers: Content-Length or Upgrade after the 100th would go unseen.
    const headers = (await kong.request.getHeaders(MAX_REQUEST_HEADERS)) ?? {};
    const contentLength = first(headers, "content-length");
    if (contentLength === undefined && first(headers, "transfer-encoding") === undefined) {
      return; // no body (GET /models and the like): the request goes to the service unchanged
    }
    const declaredSize = contentLength === undefined ? undefined : Number(contentLength);
    if (declaredSize !== undefined && declaredSize > config.maxBodyBytes) {
      kong.response.exit(413, bodyTooLargeError(declaredSize, config.maxBodyBytes));
      return;
    }

    // The body is checked before a model is chosen, so a bad request never takes a turn in the rotation.
    const raw = toBuffer(await kong.request.getRawBody(config.maxBodyBytes));
    const body = prepareBody(raw);
    if (!body.ok) {
      kong.response.exit(400, invalidBodyError(body.problem));
      return;
    }
    const env = environmentOf(config, {
      host: first(headers, "host"),
      consumer: config.sandboxConsumers.size > 0 ? await kong.client.getConsumer() : undefined,
    });
    const choice = balancer.pick(env);
    if (choice.kind === "no-list") {
      kong.response.exit(404, sandboxNotConfiguredError());
      return;
    }
    if (choice.kind === "all-suspended") {
      kong.response.exit(
        config.allSuspendedStatus,
        allSuspendedError(env, choice.retryAfterMs),
        retryHeaders(choice.retryAfterMs),
      );
      return;
    }

    const rewritten = body.withModel(choice.entry.model);
    await this.sendTo(kong, choice.entry, rewritten === raw ? undefined : rewritten);
    // A suspect entry's answer is read whole, once, to tell a billing error from a rate limit. Never a stream
    // (buffering would hold every token back), never a WebSocket upgrade (Kong turns buffering off for it).
    const probe =
      config.billingSeconds > 0 &&
      !body.streaming &&
      first(headers, "upgrade") === undefined &&
      balancer.takeProbe(env, choice.entry.key);
    if (probe) await kong.service.request.enableBuffering();
    await kong.ctx.shared.set(CHOICE_KEY, encodeChoice({ env, entryKey: choice.entry.key, probe }));
  }

  /** Points the upstream request at the entry. Each write is a round trip, so what is already right is skipped. */
  private async sendTo(kong: Pdk, entry: Entry, body: Buffer | undefined): Promise<void> {
    const upstreamUri = await kong.nginx.getVar("upstream_uri");
    const service = await kong.router.getService();
    // set_target also makes Kong send exactly this host as Host and TLS SNI (it sets $upstream_host).
    await kong.service.setTarget(entry.host, entry.port);
    if (service?.protocol !== entry.scheme) await kong.service.request.setScheme(entry.scheme);
    // Unchanged when the endpoint's path is the service's (the usual /v1 on both).
    const path = upstreamPath(upstreamUri ?? "/", service?.path, entry.basePath);
    if (path !== upstreamUri) await kong.service.request.setPath(path);
    // Unchanged when the client already asked for the chosen model.
    if (body !== undefined) await kong.service.request.setRawBody(body);
    if (entry.authHeader !== undefined) {
      await kong.service.request.setHeader(entry.authHeader.name, entry.authHeader.value);
    }
  }

  private async observe(kong: Pdk, config: RoundRobinConfig, balancer: Balancer): Promise<void> {
    // Cheapest first: most answers end the phase after one or two calls.
    const status = await kong.response.getStatus();
    if (status === undefined || !needsHeaders(status, config)) return;
    const headers = flatten((await kong.response.getHeaders()) ?? {});
    let suspension = suspensionFromResponse(status, headers, config, Date.now());
    if (suspension === null) return;
    const choice = decodeChoice(await kong.ctx.shared.get(CHOICE_KEY));
    if (choice === undefined) return; // this plugin did not route the request (no body, or it answered itself)
    // A 429 made by Kong itself (rate-limiting, another plugin's exit) says nothing about the model's quota.
    if ((await kong.response.getSource()) !== "service") return;
    const byStatus = config.suspendOnStatuses.has(status);
    // Kong turns buffering off for a WebSocket upgrade, and get_raw_body would then raise and never answer: ask
    // the saved ngx.ctx first (one call, only for a probe that is being suspended).
    if (byStatus && choice.probe && (await kong.nginx.getCtx("buffered_proxying")) === true) {
      const body = toBuffer(await kong.service.response.getRawBody());
      if (isInsufficientQuota(body, headers["content-encoding"])) {
        suspension = {
          durationMs: config.billingSeconds * 1000,
          reason: `HTTP ${status} insufficient_quota: billing exhausted`,
        };
      }
    }
    balancer.suspend(choice.env, choice.entryKey, suspension.durationMs);
    // Whatever suspended it, the entry's next readable answer says whether the cause was billing.
    if (byStatus && config.billingSeconds > 0) balancer.markSuspect(choice.env, choice.entryKey);
    await kong.log.warn(
      `suspended ${choice.entryKey} (${choice.env}) for ${suspension.durationMs} ms: ${suspension.reason}`,
    );
  }
}

interface Choice {
  env: Environment;
  entryKey: string;
  /** The request was proxied buffered, so log may read the answer's body. */
  probe: boolean;
}

function encodeChoice(choice: Choice): string {
  return `${choice.env} ${choice.probe ? "probe" : "plain"} ${choice.entryKey}`;
}

function decodeChoice(value: unknown): Choice | undefined {
  if (typeof value !== "string") return undefined;
  const [env, mode] = value.split(" ", 2);
  if (env !== "production" && env !== "sandbox") return undefined;
  if (mode !== "probe" && mode !== "plain") return undefined;
  return { env, probe: mode === "probe", entryKey: value.slice(env.length + mode.length + 2) };
}

function first(headers: HeaderMap, name: string): string | undefined {
  return headers[name]?.[0];
}

function flatten(headers: HeaderMap): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [name, values] of Object.entries(headers)) out[name.toLowerCase()] = values?.[0];
  return out;
}

function toBuffer(raw: Buffer | string | undefined): Buffer {
  if (raw === undefined) return Buffer.alloc(0);
  return typeof raw === "string"
    ? Buffer.from(raw, "utf8")
    : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
