/**
 * apk-conf → Kong declarative configuration (`_format_version: "3.0"`) for the model-based-round-robin plugin.
 *
 * - A service per API and, when the apk-conf has sandbox endpoints, a second service for them whose routes only
 *   match the sandbox host: Kong prefers a route with a matching host, so sandbox traffic to operations without
 *   the policy reaches the sandbox endpoint, as in APK. An API of an `environment` has its production routes on
 *   APK's host for it (`default-<env>.gw.wso2.com`) and its sandbox ones on `default-<env>.sandbox.gw.wso2.com`.
 * - Fail closed: when Kong's plugin server is down, Kong proxies the request without the plugin, to the service's
 *   own URL. So a service whose every route carries the plugin points at UNROUTED_HOST (scheme, port and path of
 *   the endpoint it used to name: the plugin computes the upstream path relative to the service's path), and
 *   only operations the plugin does not route (operation-level policies only; in sandbox, a policy without
 *   sandboxModels) keep the endpoint's URL, on a second service `<api>-direct` (`<api>-sandbox-direct`). Without
 *   any policy nothing changes.
 * - A route per operation under APK's full base path (`/<basePath>/<version>`, or the basePath alone when it ends
 *   in the version), the verb as its method, the target as an anchored regex path (`{threadId}` becomes a named
 *   capture, one trailing slash is optional, a trailing `/*` takes the rest). Kong's strip_path removes the whole
 *   matched path, so each route carries a request-transformer that sets the upstream path to the service's path +
 *   the operation's target (captures filled in): the upstream sees the operation's path, as APK sends it, and the
 *   plugin (which runs after request-transformer) swaps the service's path for the chosen endpoint's.
 * - ModelBasedRoundRobin: an API-level policy → the plugin on the service(s); an operation-level one → on that
 *   operation's route(s). endpointSecurity (an API key header from a Kubernetes secret) → the auth_header_name and
 *   a `{vault://env/...}` reference of every model on that endpoint; requests Kong routes to the endpoint itself
 *   cannot carry it (no bundled plugin sends a referenced header): a warning, repeated in the YAML's header.
 * - Header policies → request-transformer. Everything else is listed as a warning, never dropped silently.
 */
import { stringify } from "yaml";
import { UNROUTED_HOST } from "../plugins/model-based-round-robin/core/misconfiguration";
import { ConversionError, located } from "./errors";
import {
  type ApkConf,
  type EndpointConfiguration,
  endpointField,
  type Operation,
  type Policy,
  readApkConf,
  show,
} from "./read";

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

/** The Kong authentication plugin a secured operation's routes get (`none`: no plugin, the operation is open). */
export type AuthPlugin = "key-auth" | "jwt" | "none";
export const AUTH_PLUGINS: readonly AuthPlugin[] = ["key-auth", "jwt", "none"];

export interface ConvertOptions {
  fileName: string;
  /** What a secured operation gets: key-auth unless given (APK's `secured` defaults to true). */
  auth?: AuthPlugin;
  /** A Redis for the rate-limiting plugins' counters (policy redis); without it, each node counts alone (local). */
  redis?: { host: string; port?: number };
  /** The request host that selects sandbox for an API without `environment` (APK's default unless given). */
  sandboxHost?: string;
  /** The hosts of an API of each `environment` (APK's `default-<env>.gw.wso2.com` and its sandbox unless given). */
  environmentHosts?: Record<string, { production?: string; sandbox?: string }>;
}

/**
 * The hosts APK serves an API on: `<organization>[-<environment>].gw.wso2.com` and the same under `sandbox.`
 * (config-deployer's getHostNames, the default vhosts gw.wso2.com and sandbox.gw.wso2.com, organization
 * "default"). Without an environment the production routes take any host, as the converter always did.
 */
export function apkHosts(environment: string | undefined): { production?: string; sandbox: string } {
  if (environment === undefined || environment === "") return { sandbox: APK_DEFAULT_SANDBOX_HOST };
  return {
    production: `default-${environment}.gw.wso2.com`,
    sandbox: `default-${environment}.sandbox.gw.wso2.com`,
  };
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

/** One API's conversion, before it is written out (alone, or with other APIs: see convertApkConfs). */
export interface ApiConversion {
  fileName: string;
  /** The API's name and the path prefix it is routed under. */
  name: string;
  prefix: string;
  /** Its `environment`, when it has one. */
  environment: string | undefined;
  /** The hosts its production routes are restricted to (none: any host), and its sandbox host. */
  hosts: { production: string[] | undefined; sandbox: string };
  services: Service[];
  warnings: string[];
  notes: string[];
  /** What the YAML's header comment says besides the API's name: the notes and warnings a reader must see. */
  header: string[];
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
  return render([convertApi(text, opts)]);
}

export function convertApi(text: string, opts: ConvertOptions): ApiConversion {
  const apk = readApkConf(text, opts.fileName);
  return new Converter(apk, opts).run();
}

/**
 * Two APIs in one configuration must not make a service of the same name (Kong would refuse the file, or a
 * second run would replace the first's) nor a route Kong could not tell from another's (same method, path and
 * hosts: Kong would send both APIs' requests to one of them).
 */
function refuseCollisions(apis: ApiConversion[]): void {
  const services = new Map<string, ApiConversion>();
  const routes = new Map<string, ApiConversion>();
  for (const api of apis) {
    const what = (a: ApiConversion) => `API "${a.name}" of ${a.fileName}`;
    for (const service of api.services) {
      const other = services.get(service.name);
      if (other !== undefined && other !== api)
        throw new ConversionError(
          `${api.fileName}: service "${service.name}" of API "${api.name}" is also made by ${what(other)}: the service is named after the API's id (else its name); give one of them another id`,
        );
      services.set(service.name, api);
      for (const route of service.routes) {
        const key = `${route.methods.join(",")} ${route.paths.join(",")} ${route.hosts?.join(",") ?? "*"}`;
        const taken = routes.get(key);
        if (taken !== undefined && taken !== api)
          throw new ConversionError(
            `${api.fileName}: API "${api.name}" routes ${route.methods.join(",")} ${route.paths.join(",")} on ${route.hosts?.join(", ") ?? "any host"}, as ${what(taken)} does: Kong could not tell their requests apart; give them different basePaths, versions or environments`,
          );
        routes.set(key, api);
      }
    }
  }
}

/** The declarative configuration of converted APIs, its YAML with a header comment, and what to tell the user. */
export function render(apis: ApiConversion[]): Conversion {
  refuseCollisions(apis);
  const several = apis.length > 1;
  const prefixed = (api: ApiConversion, text: string) => (several ? `${api.fileName}: ${text}` : text);
  const config: DeclarativeConfig = { _format_version: "3.0", services: apis.flatMap((a) => a.services) };
  const secrets = new Map<string, SecretReference>();
  for (const api of apis) for (const s of api.secrets) secrets.set(s.envVar, s);
  const header = [
    ...apis.flatMap((api) => [
      `# Converted from the apk-conf of API "${api.name}" (${api.prefix}${api.hosts.production ? ` on ${api.hosts.production.join(", ")}` : ""}) by apk-conf-to-kong.`,
      ...api.header.flatMap((n) => wrap(n, 110).map((line) => `# ${line}`)),
    ]),
    ...[...secrets.values()].map(
      (s) => `# Set ${s.envVar} to key "${s.key}" of Kubernetes secret "${s.secretName}" (${s.reference}).`,
    ),
  ].join("\n");
  return {
    config,
    yaml: `${header}\n${stringify(config, { lineWidth: 0 })}`,
    warnings: apis.flatMap((a) => a.warnings.map((w) => prefixed(a, w))),
    notes: apis.flatMap((a) => a.notes.map((n) => prefixed(a, n))),
    secrets: [...secrets.values()],
  };
}

class Converter {
  private readonly warnings: string[] = [];
  private readonly notes: string[] = [];
  private failoverNoted = false;
  /** Warnings the YAML's header repeats: where the converted API does not behave as on APK. */
  private readonly loud: string[] = [];
  private readonly secrets = new Map<string, SecretReference>();
  private readonly sandboxHost: string;
  private readonly productionHosts: string[] | undefined;
  private readonly apiName: string;
  private readonly prefix: string;
  private readonly fileName: string;
  private readonly clientAuth: AuthPlugin;
  private readonly redis: ConvertOptions["redis"];

  constructor(
    private readonly apk: ApkConf,
    opts: ConvertOptions,
  ) {
    this.fileName = opts.fileName;
    this.clientAuth = opts.auth ?? "key-auth";
    this.redis = opts.redis;
    // The dev and qa variants of one API share its id or name: the environment makes their services' names
    // distinct (and stable, so that applying one with --admin-url never replaces the other's).
    const base = slug(apk.id ?? apk.name);
    const env = apk.environment ? slug(apk.environment) : "";
    this.apiName = env === "" || base.endsWith(`-${env}`) ? base : `${base}-${env}`;
    // APK's returnFullBasePath: the version is appended unless the basePath already ends in it.
    const basePath = apk.basePath.replace(/\/+$/, "");
    this.prefix = basePath.endsWith(apk.version) ? basePath : `${basePath}/${apk.version}`;
    if (basePath.endsWith(apk.version))
      this.notes.push(
        `basePath ${apk.basePath} already ends in version ${apk.version}: routed under ${this.prefix}, as APK does (it appends the version only to a basePath that does not end in it)`,
      );
    const environment = apk.environment;
    if (environment === undefined || environment === "") {
      this.sandboxHost = opts.sandboxHost ?? APK_DEFAULT_SANDBOX_HOST;
      this.productionHosts = undefined;
    } else {
      const apkDefault = apkHosts(environment);
      const given = opts.environmentHosts?.[environment];
      const production = given?.production ?? apkDefault.production ?? "";
      this.sandboxHost = given?.sandbox ?? apkDefault.sandbox;
      for (const [flag, host] of [
        ["--env-host", production],
        ["--env-sandbox-host", this.sandboxHost],
      ] as const) {
        if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(host))
          throw located(
            this.fileName,
            undefined,
            "environment",
            `${show(environment)} makes the host ${show(host)}, which is not a host name; choose one with ${flag} ${environment}=HOST`,
          );
      }
      this.productionHosts = [production];
      this.notes.push(
        `environment ${environment}: routed on host ${production} (production) and ${this.sandboxHost} (sandbox)${given ? "" : ", as APK names them for organization default"}`,
      );
    }
  }

  run(): ApiConversion {
    this.warnUnconverted();
    const production = this.apk.endpointConfigurations?.production ?? [];
    const sandbox = this.apk.endpointConfigurations?.sandbox ?? [];
    const apiPolicy = this.roundRobinPolicy(this.apk.apiPolicies?.request, "apiPolicies");
    const firstProduction = production[0] ? endpointUrl(production[0]) : this.firstModelEndpoint(apiPolicy);
    if (firstProduction === undefined && sandbox[0] === undefined) {
      const perOperation = (this.apk.operations ?? []).some((op) => op.endpointConfigurations);
      throw located(
        this.fileName,
        undefined,
        "endpointConfigurations",
        `has no production or sandbox endpoint and no policy names a model endpoint: there is nowhere to send requests${perOperation ? " (operation-level endpointConfigurations are not converted)" : ""}`,
      );
    }
    const operations: Op[] = (this.apk.operations ?? []).map((op, index) => ({
      op,
      index,
      policy: this.roundRobinPolicy(op.operationPolicies?.request, `operations[${index}].operationPolicies`),
    }));
    const services: Service[] = [];
    const unrouted: Service[] = [];
    const directServices: Service[] = [];
    const add = (env: Env, endpoint: string, config: EndpointConfiguration | undefined) => {
      const name = env === "production" ? this.apiName : `${this.apiName}-sandbox`;
      const hosts = env === "production" ? this.productionHosts : [this.sandboxHost];
      // An operation is routed by the plugin in this environment when its policy (the operation's, which Kong
      // prefers on the route, else the API's) has models for it. APK's gateway keeps the request's model when the
      // policy has none for the environment: such requests go to the endpoint as they came, as here.
      const routed = operations.filter((o) => hasModels(o.policy ?? apiPolicy, env));
      const direct = operations.filter((o) => !routed.includes(o));
      const servicePolicy = hasModels(apiPolicy, env) ? apiPolicy : undefined;
      if (routed.length === 0) {
        // No plugin in this environment: Kong alone routes, to the endpoint.
        services.push(this.service(name, name, endpoint, operations, hosts, undefined, env));
      } else {
        const service = this.service(name, name, unroutedUrl(endpoint), routed, hosts, servicePolicy, env);
        services.push(service);
        unrouted.push(service);
        if (direct.length > 0) {
          const other = this.service(`${name}-direct`, name, endpoint, direct, hosts, undefined, env);
          services.push(other);
          directServices.push(other);
        }
      }
      // Operations with a policy that has no sandbox models: routed in production, not in sandbox.
      const modelless = direct.filter((o) => (o.policy ?? apiPolicy) !== undefined);
      if (env === "sandbox" && modelless.length > 0) {
        const all = modelless.length === operations.length;
        this.notes.push(
          `sandbox: ${all ? "the ModelBasedRoundRobin policy has" : `${describeOps(modelless)}: their policy has`} no sandboxModels, so sandbox requests ${all ? "" : "for them "}go to the sandbox endpoint ${endpoint} with the client's model, as on APK (its gateway keeps the request's model when it has none to choose)`,
        );
      }
      this.warnKeyNotSent(env, config, endpoint, routed.length === 0 ? operations : direct, name);
    };
    if (firstProduction !== undefined) add("production", firstProduction, production[0]);
    else
      this.notes.push(
        "no production endpoint: only the sandbox host is routed, as on APK, which makes no production route then",
      );
    if (sandbox[0] !== undefined) add("sandbox", endpointUrl(sandbox[0]), sandbox[0]);
    const failClosed = this.failClosedNotes(unrouted, directServices);
    this.notes.push(...failClosed);
    return {
      fileName: this.fileName,
      name: this.apk.name,
      prefix: this.prefix,
      environment: this.apk.environment || undefined,
      hosts: { production: this.productionHosts, sandbox: this.sandboxHost },
      services,
      warnings: this.warnings,
      notes: this.notes,
      header: [...failClosed, ...this.loud],
      secrets: this.secretsList(),
    };
  }

  /**
   * endpointSecurity covers every request APK sends to the endpoint. Kong's bundled plugins cannot send a header
   * whose value is a vault reference (only this plugin's auth_header_value is referenceable), so the operations
   * Kong routes to the endpoint itself reach it without the key: said loudly, never silently.
   */
  private warnKeyNotSent(
    env: Env,
    config: EndpointConfiguration | undefined,
    url: string,
    ops: Op[],
    routePrefix: string,
  ): void {
    const key = config === undefined ? undefined : apiKeyOf(config);
    if (key === undefined || ops.length === 0) return;
    const list = this.apk.endpointConfigurations?.[env] ?? [];
    const warning = `${endpointField(`endpointConfigurations.${env}`, list, 0)}.endpointSecurity: ${describeOps(ops)} ${ops.length === 1 ? "reaches" : "reach"} ${url} WITHOUT the API key (header ${key.header}, key "${key.key}" of secret "${key.secretName}"): no ModelBasedRoundRobin policy routes ${ops.length === 1 ? "it" : "them"} in ${env}, and Kong's bundled plugins cannot send a vault-referenced header; add the header to route${ops.length === 1 ? "" : "s"} ${ops.map((o) => routeName(routePrefix, o.op)).join(", ")} yourself`;
    this.warnings.push(warning);
    this.loud.push(`WARNING: ${warning}`);
  }

  private service(
    name: string,
    routePrefix: string,
    url: string,
    operations: Op[],
    hosts: string[] | undefined,
    apiPolicy: Policy | undefined,
    env: Env,
  ): Service {
    const servicePath = new URL(url).pathname.replace(/\/+$/, "");
    const routes = operations.map((o) =>
      this.route(routePrefix, servicePath, o.op, hasModels(o.policy, env) ? o.policy : undefined, hosts),
    );
    const apiLimit = this.apk.rateLimit as RateLimit | undefined;
    return {
      name,
      url,
      routes,
      plugins: [
        ...(apiLimit === undefined ? [] : [this.rateLimiting(apiLimit)]),
        ...(apiPolicy === undefined ? [] : [{ name: PLUGIN_NAME, config: this.pluginConfig(apiPolicy) }]),
      ],
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
    const { regex, upstream } = operationPath(op.target, servicePath);
    const headers = this.headerPolicies(op);
    // Only the sections a policy filled, so the generated file says what it does and nothing else.
    const sections = Object.fromEntries(Object.entries(headers).filter(([, v]) => v.headers.length > 0));
    const transformer = { ...sections, replace: { ...sections.replace, uri: upstream } };
    return {
      name: routeName(serviceName, op),
      methods: [op.verb],
      paths: [`~${escapeRegex(this.prefix)}${regex}$`],
      ...(hosts && { hosts }),
      strip_path: true,
      plugins: [
        ...(op.secured !== false && this.clientAuth !== "none" ? [this.authPlugin()] : []),
        ...(op.rateLimit === undefined ? [] : [this.rateLimiting(op.rateLimit as RateLimit)]),
        { name: "request-transformer", config: transformer },
        ...(policy === undefined ? [] : [{ name: PLUGIN_NAME, config: this.pluginConfig(policy) }]),
      ],
    };
  }

  /**
   * The authentication plugin of a secured operation's routes. key-auth hides the key from the upstream: the
   * client's key to this gateway is no business of the provider's.
   */
  private authPlugin(): Plugin {
    if (this.clientAuth === "jwt") return { name: "jwt", config: { claims_to_verify: ["exp"] } };
    return { name: "key-auth", config: { key_names: ["apikey"], hide_credentials: true } };
  }

  /**
   * APK's rateLimit as Kong's bundled rate-limiting: requestsPerUnit per Minute/Hour/Day as Kong's minute/hour/day
   * field. APK counts an API's (an operation's) requests together, whoever sends them: limit_by service, which
   * on a route's plugin counts that route's requests (Kong keys its counters by the plugin's route and service).
   */
  private rateLimiting(limit: RateLimit): Plugin {
    return {
      name: "rate-limiting",
      config: {
        [limit.unit.toLowerCase()]: limit.requestsPerUnit,
        limit_by: "service",
        ...(this.redis === undefined
          ? { policy: "local" }
          : { policy: "redis", redis: { host: this.redis.host, port: this.redis.port ?? 6379 } }),
      },
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
      failover_attempts: this.failoverAttempts(),
    };
  }

  /**
   * The plugin's default, written out so that a reader sees it: unlike APK, which hands a model's 429 to the
   * client, the request goes on to the next model (through the plugin server's relay). Said once per API.
   */
  private failoverAttempts(): number {
    if (!this.failoverNoted) {
      this.failoverNoted = true;
      this.notes.push(
        "failover_attempts: 1 (the plugin's default): a model's 429 goes on to the next model within the same request (APK hands it to the client); set it to 0 for APK's behaviour",
      );
    }
    return 1;
  }

  /**
   * The API key header of the endpoint configuration that serves this URL, as a vault reference: a model on the
   * endpoint sends the endpoint's key, as on APK, where a model's backend is the endpoint's of that host and path.
   */
  private auth(endpoint: string, env: Env): { auth_header_name?: string; auth_header_value?: string } {
    const config = (this.apk.endpointConfigurations?.[env] ?? []).find((c) =>
      sameUrl(endpointUrl(c), endpoint),
    );
    const key = config === undefined ? undefined : apiKeyOf(config);
    if (key === undefined) return {}; // basic auth or a key in the query: warned about
    const vaultName = slug(`${key.secretName}-${key.key}`);
    const envVar = vaultName.toUpperCase().replace(/-/g, "_");
    const reference = `{vault://env/${vaultName}}`;
    this.secrets.set(envVar, { envVar, reference, secretName: key.secretName, key: key.key });
    return { auth_header_name: key.header, auth_header_value: reference };
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
    if (a.rateLimit) this.notes.push(this.rateLimitNote("rateLimit", a.rateLimit as RateLimit, "service"));
    if (a.authentication)
      w(
        `authentication: not converted; secured operations get Kong's ${this.clientAuth === "none" ? "no authentication plugin (--auth none)" : `${this.clientAuth} plugin (--auth)`}`,
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
    if (a.keyManagers)
      w("keyManagers: not converted (configure token validation in a Kong authentication plugin)");
    for (const [env, list] of Object.entries(a.endpointConfigurations ?? {}) as [
      Env,
      EndpointConfiguration[],
    ][]) {
      list.forEach((c, i) => {
        const where = endpointField(`endpointConfigurations.${env}`, list, i);
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
      if (op.rateLimit)
        this.notes.push(this.rateLimitNote(`${where}: rateLimit`, op.rateLimit as RateLimit, "route"));
      if (op.endpointConfigurations) w(`${where}: operation-level endpointConfigurations not converted`);
    });
    const secured = (a.operations ?? []).filter((op) => op.secured !== false);
    if (secured.length > 0 && this.clientAuth === "none") {
      const warning = `--auth none: ${describeOps(secured.map((op, index) => ({ op, index, policy: undefined })))} ${secured.length === 1 ? "is" : "are"} secured in APK (secured defaults to true) but OPEN on Kong: anyone who reaches Kong can use ${secured.length === 1 ? "it" : "them"}, with the provider keys the plugin sends`;
      w(warning);
      this.loud.push(`WARNING: ${warning}`);
    } else if (secured.length > 0) {
      this.notes.push(
        `secured operations (${describeOps(secured.map((op, index) => ({ op, index, policy: undefined })))}) get Kong's ${this.clientAuth} plugin: they answer 401 until you create a consumer and its ${this.clientAuth === "jwt" ? "jwt_secrets credential" : "key (keyauth_credentials)"} (docs/converter.md)`,
      );
    }
  }

  private rateLimitNote(where: string, limit: RateLimit, scope: "service" | "route"): string {
    const services = scope === "service" ? " (each of the API's services counts alone)" : "";
    return `${where} ${limit.requestsPerUnit} per ${limit.unit}: converted to Kong's bundled rate-limiting on the ${scope}${services}, counted ${this.redis === undefined ? "by each Kong node alone (policy local; --redis-host shares the count)" : `in Redis at ${this.redis.host}:${this.redis.port ?? 6379} (policy redis)`}`;
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

type Op = { op: Operation; index: number; policy: Policy | undefined };
/** APK's RateLimit (the schema checks it). */
type RateLimit = { requestsPerUnit: number; unit: "Minute" | "Hour" | "Day" };

/** A route's name: its service's (without -direct), the verb and the target. */
function routeName(serviceName: string, op: Operation): string {
  return `${serviceName}-${op.verb.toLowerCase()}-${slug(op.target) || "root"}`;
}

/** The policy has models for the environment (productionModels is required; sandboxModels is not). */
function hasModels(policy: Policy | undefined, env: Env): boolean {
  if (policy === undefined) return false;
  const p = policy.parameters as { productionModels?: unknown[]; sandboxModels?: unknown[] } | undefined;
  return ((env === "production" ? p?.productionModels : p?.sandboxModels) ?? []).length > 0;
}

/** "GET /models" or "GET /models, POST /embeddings". */
function describeOps(ops: Op[]): string {
  return ops.map((o) => `${o.op.verb} ${o.op.target}`).join(", ");
}

/** An API-key header endpointSecurity, the only kind converted. */
function apiKeyOf(c: EndpointConfiguration): { header: string; secretName: string; key: string } | undefined {
  const security = c.endpointSecurity;
  if (!security?.enabled || !security.securityType) return undefined;
  const t = security.securityType as {
    secretName?: string;
    in?: string;
    apiKeyNameKey?: string;
    apiKeyValueKey?: string;
  };
  if (t.apiKeyNameKey === undefined || t.secretName === undefined || t.in === "Query") return undefined;
  return { header: t.apiKeyNameKey, secretName: t.secretName, key: t.apiKeyValueKey ?? "apikey" };
}

/**
 * An operation's target as a route path after the API's prefix, and the path sent upstream (after `base`, the
 * endpoint's path), as APK's
 * config-deployer and router make them: `{param}` a named capture (one path segment here; APK's `(.*)` takes
 * any text), one optional trailing slash accepted and not sent on (`.../employee/` reaches `/employee`), and a
 * trailing `/*` taking the rest of the path, which is sent on.
 */
export function operationPath(target: string, base = ""): { regex: string; upstream: string } {
  const wildcard = /\/\*$/.test(target);
  const trimmed = (wildcard ? target.slice(0, -2) : target).replace(/\/+$/, "");
  const parts = trimmed.split(/(\{[^}]+\})/);
  const capture = (p: string) => p.replace(/[^A-Za-z0-9_]/g, "_");
  const regex = parts
    .map((part) => {
      const param = /^\{([^}]+)\}$/.exec(part);
      return param === null ? escapeRegex(part) : `(?<${capture(param[1] as string)}>[^/]+)`;
    })
    .join("");
  const upstream = trimmed.replace(/\{([^}]+)\}/g, (_m, p: string) => `$(uri_captures.${capture(p)})`);
  if (wildcard && base + upstream === "") {
    // Nothing before the rest of the path (`/*` on an endpoint without a path): the slash stays outside the
    // capture, or the API's bare prefix would send an empty path, which Kong refuses with a 500.
    return { regex: `${regex}/?(?<${WILDCARD}>.*)`, upstream: `/$(uri_captures.${WILDCARD})` };
  }
  if (wildcard)
    return { regex: `${regex}(?<${WILDCARD}>.*)`, upstream: `${base}${upstream}$(uri_captures.${WILDCARD})` };
  return { regex: `${regex}/?`, upstream: base + (upstream === "" ? "/" : upstream) };
}

/** The capture of a trailing `/*`. */
const WILDCARD = "apk_wildcard";
