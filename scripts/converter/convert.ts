/**
 * apk-conf → Kong declarative configuration (`_format_version: "3.0"`) for the model-based-round-robin plugin.
 *
 * - A service per API and, when the apk-conf has sandbox endpoints, a second service for them whose routes only
 *   match the sandbox host: Kong prefers a route with a matching host, so sandbox traffic to operations without
 *   the policy reaches the sandbox endpoint, as in APK.
 * - Fail closed: when Kong's plugin server is down, Kong proxies the request without the plugin, to the service's
 *   own URL. So a service whose every route carries the plugin points at UNROUTED_HOST (scheme, port and path of
 *   the endpoint it used to name: the plugin computes the upstream path relative to the service's path), and
 *   only operations without the policy (operation-level policies only) keep the endpoint's URL, on a second
 *   service `<api>-direct` (`<api>-sandbox-direct`). Without any policy nothing changes.
 * - A route per operation under /<basePath>/<version>, the verb as its method, the target as an anchored regex
 *   path (`{threadId}` becomes a named capture). Kong's strip_path removes the whole matched path, not just the
 *   /<basePath>/<version> prefix, so each route carries a request-transformer that sets the upstream path to the
 *   service's path + the operation's target (captures filled in): the upstream sees the operation's path, as APK
 *   sends it, and the plugin (which runs after request-transformer) swaps the service's path for the chosen
 *   endpoint's.
 * - ModelBasedRoundRobin: an API-level policy → the plugin on the service(s); an operation-level one → on that
 *   operation's route(s). endpointSecurity (an API key header from a Kubernetes secret) → the entry's
 *   auth_header_name and a `{vault://env/...}` reference.
 * - Header policies → request-transformer. Everything else is listed as a warning, never dropped silently.
 */
import { stringify } from "yaml";
import { UNROUTED_HOST } from "../../plugins/model-based-round-robin/core/misconfiguration";
import { located } from "./errors";
import { type ApkConf, type EndpointConfiguration, type Operation, type Policy, readApkConf } from "./read";

export const PLUGIN_NAME = "model-based-round-robin";
export const APK_DEFAULT_SANDBOX_HOST = "default.sandbox.gw.wso2.com";

/**
 * The host of a service whose every route carries the plugin. The plugin routes every request that reaches it,
 * so the service's own URL is used only when Kong skips the plugin: Kong 3.9 proxies a request without it when
 * the plugin server is unreachable (crashed, out of memory, restarting). Such a request must reach no provider
 * (it would carry the client's model, no key, and for sandbox the production backend), so it goes to a name in
 * `.invalid`, which never resolves (RFC 6761), and the client gets Kong's own error. A host NAME, not an IP: on
 * Kong 3.9 an IP service host with a DNS-named endpoint fails every request with `no host allowed`.
 */
export { UNROUTED_HOST };

/** The endpoint's URL with its host replaced by UNROUTED_HOST: scheme, port (even a default one) and path kept. */
export function unroutedUrl(endpoint: string): string {
  const url = new URL(endpoint);
  const port = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*:(\d+)(?:[/?#]|$)/i.exec(endpoint)?.[1];
  const path = url.pathname.replace(/\/+$/, "");
  return `${url.protocol}//${UNROUTED_HOST}${port === undefined ? "" : `:${port}`}${path}`;
}

export interface ConvertOptions {
  fileName: string;
  /** The request host that selects sandbox (APK's default gateway sandbox host unless given). */
  sandboxHost?: string;
}

export interface SecretReference {
  envVar: string;
  reference: string;
  secretName: string;
  key: string;
}

export interface Conversion {
  config: DeclarativeConfig;
  yaml: string;
  warnings: string[];
  notes: string[];
  secrets: SecretReference[];
}

type Env = "production" | "sandbox";
type Plugin = { name: string; config: Record<string, unknown> };
interface Route {
  name: string;
  methods: string[];
  paths: string[];
  hosts?: string[];
  strip_path: boolean;
  plugins: Plugin[];
}
interface Service {
  name: string;
  url: string;
  routes: Route[];
  plugins: Plugin[];
}
export interface DeclarativeConfig {
  _format_version: "3.0";
  services: Service[];
}

export function convertApkConf(text: string, opts: ConvertOptions): Conversion {
  const apk = readApkConf(text, opts.fileName);
  return new Converter(apk, opts).run();
}

class Converter {
  private readonly warnings: string[] = [];
  private readonly notes: string[] = [];
  private readonly secrets = new Map<string, SecretReference>();
  private readonly sandboxHost: string;
  private readonly apiName: string;
  private readonly prefix: string;
  private readonly fileName: string;

  constructor(
    private readonly apk: ApkConf,
    opts: ConvertOptions,
  ) {
    this.sandboxHost = opts.sandboxHost ?? APK_DEFAULT_SANDBOX_HOST;
    this.fileName = opts.fileName;
    this.apiName = slug(apk.id ?? apk.name);
    this.prefix = `${apk.basePath.replace(/\/+$/, "")}/${apk.version}`;
  }

  run(): Conversion {
    this.warnUnconverted();
    const production = (this.apk.endpointConfigurations?.production ?? []).map(endpointUrl);
    const sandbox = (this.apk.endpointConfigurations?.sandbox ?? []).map(endpointUrl);
    const apiPolicy = this.roundRobinPolicy(this.apk.apiPolicies?.request, "apiPolicies");
    const firstProduction = production[0] ?? this.firstModelEndpoint(apiPolicy);
    if (firstProduction === undefined) {
      throw located(
        this.fileName,
        undefined,
        "endpointConfigurations.production",
        "is empty and no policy names a model endpoint: there is nowhere to send requests",
      );
    }
    const operations = (this.apk.operations ?? []).map((op, index) => ({
      op,
      index,
      policy: this.roundRobinPolicy(op.operationPolicies?.request, `operations[${index}].operationPolicies`),
    }));
    const routed = operations.filter((o) => apiPolicy !== undefined || o.policy !== undefined);
    const direct = operations.filter((o) => apiPolicy === undefined && o.policy === undefined);
    const services: Service[] = [];
    const unrouted: Service[] = [];
    const directServices: Service[] = [];
    const add = (name: string, endpoint: string, hosts: string[] | undefined) => {
      if (routed.length === 0 && apiPolicy === undefined) {
        // No plugin anywhere: Kong alone routes, to the endpoint, as before.
        services.push(this.service(name, name, endpoint, operations, hosts, undefined));
        return;
      }
      const service = this.service(name, name, unroutedUrl(endpoint), routed, hosts, apiPolicy);
      services.push(service);
      unrouted.push(service);
      if (direct.length > 0) {
        const other = this.service(`${name}-direct`, name, endpoint, direct, hosts, undefined);
        services.push(other);
        directServices.push(other);
      }
    };
    add(this.apiName, firstProduction, undefined);
    if (sandbox[0] !== undefined) add(`${this.apiName}-sandbox`, sandbox[0], [this.sandboxHost]);
    const failClosed = this.failClosedNotes(unrouted, directServices);
    this.notes.push(...failClosed);
    const config: DeclarativeConfig = { _format_version: "3.0", services };
    const header = [
      `# Converted from the apk-conf of API "${this.apk.name}" (${this.prefix}) by apk-conf-to-kong.`,
      ...failClosed.flatMap((n) => wrap(n, 110).map((line) => `# ${line}`)),
      ...this.secretsList().map(
        (s) => `# Set ${s.envVar} to key "${s.key}" of Kubernetes secret "${s.secretName}" (${s.reference}).`,
      ),
    ].join("\n");
    return {
      config,
      yaml: `${header}\n${stringify(config, { lineWidth: 0 })}`,
      warnings: this.warnings,
      notes: this.notes,
      secrets: this.secretsList(),
    };
  }

  private service(
    name: string,
    routePrefix: string,
    url: string,
    operations: { op: Operation; index: number; policy: Policy | undefined }[],
    hosts: string[] | undefined,
    apiPolicy: Policy | undefined,
  ): Service {
    const servicePath = new URL(url).pathname.replace(/\/+$/, "");
    const routes = operations.map((o) => this.route(routePrefix, servicePath, o.op, o.policy, hosts));
    return {
      name,
      url,
      routes,
      plugins: apiPolicy === undefined ? [] : [{ name: PLUGIN_NAME, config: this.pluginConfig(apiPolicy) }],
    };
  }

  /** What the unrouted URLs are for, and where operations without the policy go. */
  private failClosedNotes(unrouted: Service[], direct: Service[]): string[] {
    const names = (list: Service[]) => list.map((s) => `${s.name} (${s.url})`).join(", ");
    const notes: string[] = [];
    if (unrouted.length > 0)
      notes.push(
        `fail closed: service${unrouted.length > 1 ? "s" : ""} ${names(unrouted)}: every route carries the plugin, which sends each request to a model's endpoint; the host ${UNROUTED_HOST} never resolves, so while Kong's plugin server is down (Kong then proxies without the plugin) a request fails with Kong's own error instead of reaching a provider unrouted`,
      );
    if (direct.length > 0)
      notes.push(
        `fail closed: operations without a ModelBasedRoundRobin policy go to ${names(direct)}: Kong routes them to the endpoint itself`,
      );
    return notes;
  }

  private route(
    serviceName: string,
    servicePath: string,
    op: Operation,
    policy: Policy | undefined,
    hosts: string[] | undefined,
  ): Route {
    const captures: string[] = [];
    const regex = op.target
      .split(/(\{[^}]+\})/)
      .map((part) => {
        const param = /^\{([^}]+)\}$/.exec(part);
        if (param === null) return escapeRegex(part);
        const name = (param[1] as string).replace(/[^A-Za-z0-9_]/g, "_");
        captures.push(name);
        return `(?<${name}>[^/]+)`;
      })
      .join("");
    const uri =
      servicePath +
      op.target.replace(
        /\{([^}]+)\}/g,
        (_m, p: string) => `$(uri_captures.${p.replace(/[^A-Za-z0-9_]/g, "_")})`,
      );
    const headers = this.headerPolicies(op);
    // Only the sections a policy filled, so the generated file says what it does and nothing else.
    const sections = Object.fromEntries(Object.entries(headers).filter(([, v]) => v.headers.length > 0));
    const transformer = { ...sections, replace: { ...sections.replace, uri } };
    return {
      name: `${serviceName}-${op.verb.toLowerCase()}-${slug(op.target) || "root"}`,
      methods: [op.verb],
      paths: [`~${escapeRegex(this.prefix)}${regex}$`],
      ...(hosts && { hosts }),
      strip_path: true,
      plugins: [
        { name: "request-transformer", config: transformer },
        ...(policy === undefined ? [] : [{ name: PLUGIN_NAME, config: this.pluginConfig(policy) }]),
      ],
    };
  }

  /** APK header policies (API-level and the operation's) as request-transformer's config. */
  private headerPolicies(op: Operation): {
    add: { headers: string[] };
    append: { headers: string[] };
    remove: { headers: string[] };
    replace: { headers: string[] };
  } {
    const out = {
      add: { headers: [] as string[] },
      append: { headers: [] as string[] },
      remove: { headers: [] as string[] },
      replace: { headers: [] as string[] },
    };
    for (const policy of [
      ...(this.apk.apiPolicies?.request ?? []),
      ...(op.operationPolicies?.request ?? []),
    ]) {
      const p = policy.parameters ?? {};
      const name = String(p.headerName ?? "");
      const value = String(p.headerValue ?? "");
      if (policy.policyName === "AddHeader") out.append.headers.push(`${name}:${value}`);
      else if (policy.policyName === "SetHeader") {
        out.replace.headers.push(`${name}:${value}`);
        out.add.headers.push(`${name}:${value}`);
      } else if (policy.policyName === "RemoveHeader") out.remove.headers.push(name);
    }
    return out;
  }

  private roundRobinPolicy(policies: Policy[] | undefined, where: string): Policy | undefined {
    const found = (policies ?? []).filter((p) => p.policyName === "ModelBasedRoundRobin");
    if (found.length > 1)
      this.warnings.push(
        `${where}: ${found.length} ModelBasedRoundRobin policies; only the first is converted`,
      );
    return found[0];
  }

  private pluginConfig(policy: Policy): Record<string, unknown> {
    const p = policy.parameters as {
      onQuotaExceedSuspendDuration: number;
      productionModels: { model: string; endpoint: string; weight?: number }[];
      sandboxModels?: { model: string; endpoint: string; weight?: number }[];
    };
    const models = (list: typeof p.productionModels, env: Env) =>
      list.map((m) => ({
        model: m.model,
        endpoint: m.endpoint,
        weight: m.weight ?? 1,
        ...this.auth(m.endpoint, env),
      }));
    return {
      production_models: models(p.productionModels, "production"),
      ...(p.sandboxModels &&
        p.sandboxModels.length > 0 && { sandbox_models: models(p.sandboxModels, "sandbox") }),
      on_quota_exceed_suspend_duration: p.onQuotaExceedSuspendDuration,
      sandbox_hosts: [this.sandboxHost],
    };
  }

  /** The API key header of the endpoint configuration that serves this URL, as a vault reference. */
  private auth(endpoint: string, env: Env): { auth_header_name?: string; auth_header_value?: string } {
    const config = (this.apk.endpointConfigurations?.[env] ?? []).find((c) =>
      sameUrl(endpointUrl(c), endpoint),
    );
    const security = config?.endpointSecurity;
    if (!security?.enabled || !security.securityType) return {};
    const t = security.securityType as {
      secretName?: string;
      in?: string;
      apiKeyNameKey?: string;
      apiKeyValueKey?: string;
    };
    if (t.apiKeyNameKey === undefined || t.secretName === undefined) return {}; // basic auth: warned about
    if (t.in === "Query") return {}; // warned about
    const vaultName = slug(`${t.secretName}-${t.apiKeyValueKey ?? "apikey"}`);
    const envVar = vaultName.toUpperCase().replace(/-/g, "_");
    const reference = `{vault://env/${vaultName}}`;
    this.secrets.set(envVar, {
      envVar,
      reference,
      secretName: t.secretName,
      key: t.apiKeyValueKey ?? "apikey",
    });
    return { auth_header_name: t.apiKeyNameKey, auth_header_value: reference };
  }

  private firstModelEndpoint(policy: Policy | undefined): string | undefined {
    const models = (policy?.parameters as { productionModels?: { endpoint: string }[] } | undefined)
      ?.productionModels;
    return models?.[0]?.endpoint;
  }

  private secretsList(): SecretReference[] {
    return [...this.secrets.values()];
  }

  private warnUnconverted(): void {
    const a = this.apk;
    const w = (text: string) => this.warnings.push(text);
    if (a.rateLimit) w("rateLimit: not converted (add Kong's rate-limiting plugin to the service)");
    if (a.authentication)
      w(
        "authentication: not converted (add a Kong authentication plugin such as key-auth, jwt or openid-connect)",
      );
    if (a.corsConfiguration) w("corsConfiguration: not converted (add Kong's cors plugin)");
    if (a.subscriptionValidation === true)
      w("subscriptionValidation: not converted (Kong has no subscriptions; use consumers and acl)");
    if (a.aiProvider)
      w(
        "aiProvider: not converted (the plugin needs no provider definition; endpoints and models come from the policy)",
      );
    if (a.defaultVersion === true)
      w(`defaultVersion: not converted (only ${this.prefix} is routed, not the unversioned path)`);
    if (a.additionalProperties) w("additionalProperties: not converted");
    if (a.definitionPath) w("definitionPath: not converted");
    for (const [env, list] of Object.entries(a.endpointConfigurations ?? {}) as [
      Env,
      EndpointConfiguration[],
    ][]) {
      list.forEach((c, i) => {
        const where = `endpointConfigurations.${env}[${i}]`;
        for (const key of ["aiRatelimit", "resiliency", "certificate"])
          if (c[key]) w(`${where}.${key}: not converted`);
        if (c.weight !== undefined)
          w(`${where}.weight: not converted (endpoint weights; the plugin weighs models)`);
        if (i > 0)
          w(
            `${where}: only the first ${env} endpoint is a service's (operations without the policy go to it); the others are reached through the policy's models`,
          );
        const t = c.endpointSecurity?.securityType as { in?: string; apiKeyNameKey?: string } | undefined;
        if (c.endpointSecurity?.enabled && t?.apiKeyNameKey === undefined)
          w(`${where}.endpointSecurity: only API-key headers are converted (basic auth is not)`);
        if (c.endpointSecurity?.enabled && t?.in === "Query")
          w(`${where}.endpointSecurity: an API key in the query is not converted`);
      });
    }
    const policyWarnings = (
      policies: { request?: Policy[]; response?: Policy[] } | undefined,
      where: string,
    ) => {
      for (const p of policies?.request ?? []) {
        if (["AddHeader", "SetHeader", "RemoveHeader"].includes(p.policyName)) {
          this.notes.push(
            `${where}.request ${p.policyName}: converted to Kong's bundled request-transformer plugin`,
          );
        } else if (p.policyName !== "ModelBasedRoundRobin")
          w(`${where}.request ${p.policyName}: not converted`);
      }
      for (const p of policies?.response ?? []) {
        w(
          `${where}.response ${p.policyName}: not converted${["AddHeader", "SetHeader", "RemoveHeader"].includes(p.policyName) ? " (Kong's response-transformer plugin can do it)" : ""}`,
        );
      }
    };
    policyWarnings(a.apiPolicies, "apiPolicies");
    (a.operations ?? []).forEach((op, i) => {
      const where = `operations[${i}] ${op.verb} ${op.target}`;
      policyWarnings(op.operationPolicies, where);
      if (op.scopes && op.scopes.length > 0) w(`${where}: scopes ${op.scopes.join(", ")} not converted`);
      if (op.rateLimit) w(`${where}: rateLimit not converted`);
      if (op.endpointConfigurations) w(`${where}: operation-level endpointConfigurations not converted`);
    });
    if ((a.operations ?? []).some((op) => op.secured !== false) && !a.authentication) {
      w(
        "operations are secured in APK (secured defaults to true); add a Kong authentication plugin, none is generated",
      );
    }
  }
}

function endpointUrl(c: EndpointConfiguration): string {
  if (typeof c.endpoint === "string") return c.endpoint.replace(/\/+$/, "");
  const e = c.endpoint;
  return `${e.protocol ?? "http"}://${e.name}${e.namespace ? `.${e.namespace}` : ""}:${e.port}`;
}

function sameUrl(a: string, b: string): boolean {
  const norm = (u: string) => {
    const url = new URL(u);
    return `${url.protocol}//${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}${url.pathname.replace(/\/+$/, "")}`;
  };
  try {
    return norm(a) === norm(b);
  } catch {
    return false;
  }
}

function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Words of `text` in lines of at most `width` characters (a longer word stays whole). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(line);
  return lines;
}
