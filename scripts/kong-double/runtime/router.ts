/**
 * Route matching and `$upstream_uri` as Kong computes them (traditional_compatible router; kong/router/utils.lua
 * at 3.9.3), for what the double models: prefix and `~` regex paths, hosts with a leading or trailing `*`
 * wildcard, methods, regex_priority, strip_path, and the path_handling v0/v1 join of the service's path.
 * Routes with more kinds of criteria win; then regex paths by regex_priority; then longer paths.
 */
import type { RouteEntity, ServiceEntity } from "../config/model";

export interface Match {
  route: RouteEntity;
  service: ServiceEntity | undefined;
  /** $upstream_uri: service path joined with the (stripped) request path, escaped, without the query. */
  upstreamUri: string;
  /** The matched prefix (X-Forwarded-Prefix). */
  prefix: string;
  /** Named captures of a regex path (kong.request.get_uri_captures().named). */
  captures: Record<string, string>;
}

interface Candidate {
  route: RouteEntity;
  service: ServiceEntity | undefined;
  path?: string;
  regex?: RegExp;
  weight: [number, number, number];
}

export class Router {
  private readonly candidates: Candidate[];

  constructor(routes: RouteEntity[], services: ServiceEntity[]) {
    const byId = new Map(services.map((s) => [s.id, s]));
    this.candidates = routes.flatMap((route) => {
      const service = route.service ? byId.get(route.service.id) : undefined;
      const criteria =
        Number(!!route.hosts?.length) +
        Number(!!route.methods?.length) +
        Number(!!route.paths?.length) +
        Number(!!route.headers);
      const paths = route.paths?.length ? route.paths : [undefined];
      return paths.map((path): Candidate => {
        const isRegex = path?.startsWith("~") ?? false;
        return {
          route,
          service,
          ...(path !== undefined && { path }),
          ...(isRegex && path !== undefined && { regex: new RegExp(`^${path.slice(1)}`) }),
          weight: [criteria, isRegex ? route.regex_priority + 1e9 : 0, path?.length ?? 0],
        };
      });
    });
    this.candidates.sort(
      (a, b) => b.weight[0] - a.weight[0] || b.weight[1] - a.weight[1] || b.weight[2] - a.weight[2],
    );
  }

  match(method: string, host: string, rawPath: string): Match | undefined {
    const hostname = host.replace(/:\d+$/, "").toLowerCase();
    for (const c of this.candidates) {
      if (c.route.methods?.length && !c.route.methods.includes(method)) continue;
      if (c.route.hosts?.length && !c.route.hosts.some((h) => hostMatches(h.toLowerCase(), hostname)))
        continue;
      let matched = "";
      let captures: Record<string, string> = {};
      if (c.regex !== undefined) {
        const m = c.regex.exec(safeDecode(rawPath));
        if (m === null) continue;
        matched = m[0];
        captures = { ...m.groups };
      } else if (c.path !== undefined) {
        if (!rawPath.startsWith(c.path)) continue;
        matched = c.path;
      }
      return {
        route: c.route,
        service: c.service,
        upstreamUri: upstreamUri(c.route, c.service, rawPath, matched),
        prefix: c.route.strip_path && matched !== "" ? matched : "/",
        captures,
      };
    }
    return undefined;
  }
}

function hostMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith("*.")) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  if (pattern.endsWith(".*")) return host.startsWith(pattern.slice(0, -1));
  return pattern === host;
}

function safeDecode(path: string): string {
  try {
    return decodeURI(path);
  } catch {
    return path;
  }
}

function upstreamUri(
  route: RouteEntity,
  service: ServiceEntity | undefined,
  rawPath: string,
  matched: string,
): string {
  let rest = rawPath;
  if (route.strip_path && matched !== "") {
    rest = rawPath.slice(matched.length);
    if (!rest.startsWith("/")) rest = `/${rest}`;
  }
  const base = service?.path ?? "/";
  if (base === "/") return rest;
  if (route.path_handling === "v1") {
    if (rest === "/" && !base.endsWith("/")) return base;
    return base + (base.endsWith("/") ? rest.slice(1) : rest);
  }
  // v0: the service path's trailing slash decides whether the joined path keeps one
  if (base.endsWith("/")) return rest === "/" ? base : base + rest.slice(1);
  return rest === "/" ? (rawPath.endsWith("/") ? `${base}/` : base) : base + rest;
}
