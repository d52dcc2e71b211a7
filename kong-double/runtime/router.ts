/**
 * Route matching and `$upstream_uri` as Kong computes them (traditional_compatible router; kong/router/atc.lua
 * and kong/router/utils.lua at 3.9.3), for what the double models: prefix and `~` regex paths, hosts with a
 * leading or trailing `*` wildcard, methods, regex_priority, strip_path, and the join of the service's path.
 * Routes with more kinds of criteria win; then regex paths by regex_priority; then longer paths.
 *
 * Matching and the join work on the normalised path (see uri.ts: utils.lua `strip_uri_args` normalises with
 * merged slashes before atc.lua `_M:exec` matches), and the result is escaped (uri.lua `escape`, applied in
 * kong/runloop/handler.lua access.before). The traditional_compatible router always joins the v0 way
 * (atc.lua `set_upstream_uri` calls utils.lua `get_upstream_uri_v0`): a route's `path_handling: v1` is
 * accepted (with a deprecation warning, kong/db/schema/entities/routes.lua) and ignored; only the
 * `traditional` flavour honours it.
 */
import type { RouteEntity, ServiceEntity } from "../config/model";
import { escapeBytes, normalizePath } from "./uri";

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
    const path = normalizePath(rawPath);
    const hostname = host.replace(/:\d+$/, "").toLowerCase();
    for (const c of this.candidates) {
      if (c.route.methods?.length && !c.route.methods.includes(method)) continue;
      if (c.route.hosts?.length && !c.route.hosts.some((h) => hostMatches(h.toLowerCase(), hostname)))
        continue;
      let matched = "";
      let captures: Record<string, string> = {};
      if (c.regex !== undefined) {
        const m = c.regex.exec(path);
        if (m === null) continue;
        matched = m[0];
        captures = { ...m.groups };
      } else if (c.path !== undefined) {
        if (!path.startsWith(c.path)) continue;
        matched = c.path;
      }
      return {
        route: c.route,
        service: c.service,
        upstreamUri: escapeBytes(upstreamUri(c.route, c.service, path, matched)),
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

/** kong/router/utils.lua `sanitize_uri_postfix`: a leading `.`/`..` segment of what follows the prefix goes. */
function sanitizePostfix(postfix: string): string {
  if (postfix === "." || postfix === "..") return "";
  if (postfix.startsWith("./")) return postfix.slice(2);
  if (postfix.startsWith("../")) return postfix.slice(3);
  return postfix;
}

/** kong/router/utils.lua `get_upstream_uri_v0`: the service path joined with the (stripped) request path. */
function upstreamUri(
  route: RouteEntity,
  service: ServiceEntity | undefined,
  path: string,
  matched: string,
): string {
  const base = service?.path ?? "/";
  const strip = route.strip_path && matched !== "";
  const postfix = strip ? sanitizePostfix(path.slice(matched.length)) : "";
  if (base.endsWith("/")) {
    if (!strip) return base + path.slice(1);
    if (postfix === "") return base === "/" ? "/" : path.endsWith("/") ? base : base.slice(0, -1);
    return postfix.startsWith("/") ? base.slice(0, -1) + postfix : base + postfix;
  }
  if (!strip) return path === "/" ? base : base + path;
  if (postfix === "") return path.length > 1 && path.endsWith("/") ? `${base}/` : base;
  return postfix.startsWith("/") ? base + postfix : `${base}/${postfix}`;
}
