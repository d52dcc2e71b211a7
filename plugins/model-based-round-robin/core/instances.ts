/**
 * What an operator knows a plugin configuration by, and whether Kong still uses it. Kong sends a plugin server
 * the plugin's id and the ids of its service and route, never their names, and never says that a plugin was
 * deleted or replaced (a renamed service in a DB-less file gives the plugin a new id): /status and /metrics would
 * list every id ever seen. The handler tells this registry when Kong uses a configuration and what the service
 * and route are called (read through the PDK, never more than once per instance for the route); the status
 * report names each plugin by them and leaves out configurations Kong has not used for UNUSED_MS.
 * Pure: plain maps, the time passed in.
 */

/** A configuration without a request for this long is taken to be one Kong no longer uses. */
export const UNUSED_MS = 10 * 60 * 1000;
/** Kept this long after the last use, then forgotten (as the rotations are). */
const FORGET_MS = 24 * 3600 * 1000;

interface Instance {
  serviceId?: string;
  routeId?: string;
  /** The names Kong gave, when the handler has read them. */
  service?: string;
  route?: string;
  usedMs: number;
}

const instances = new Map<string, Instance>();

/** Kong started an instance of the configuration `pluginId`, scoped to these ids (absent: global). */
export function noteInstance(
  pluginId: string,
  scope: { serviceId?: string | undefined; routeId?: string | undefined },
  nowMs: number,
): void {
  // Instances start on configuration changes only: a cheap moment to forget ids unused for a day.
  for (const [id, known] of instances) if (nowMs - known.usedMs >= FORGET_MS) instances.delete(id);
  const known = instances.get(pluginId);
  instances.set(pluginId, {
    ...known,
    ...(scope.serviceId !== undefined && { serviceId: scope.serviceId }),
    ...(scope.routeId !== undefined && { routeId: scope.routeId }),
    usedMs: nowMs,
  });
}

/** Kong ran a request through the configuration; `names` are the service's and route's, where read. */
export function noteUse(
  pluginId: string,
  nowMs: number,
  names: { service?: string | undefined; route?: string | undefined } = {},
): void {
  const known = instances.get(pluginId);
  if (known === undefined) {
    instances.set(pluginId, { usedMs: nowMs });
    return;
  }
  known.usedMs = nowMs;
  if (names.service !== undefined) known.service = names.service;
  if (names.route !== undefined) known.route = names.route;
}

/** The service and route a configuration is bound to, by name where known, else by id; absent when global. */
export function scopeOf(pluginId: string): { service?: string; route?: string } {
  const known = instances.get(pluginId);
  const service = known?.service ?? known?.serviceId;
  const route = known?.route ?? known?.routeId;
  return { ...(service !== undefined && { service }), ...(route !== undefined && { route }) };
}

/** Kong has not used the configuration for UNUSED_MS. One this registry never heard of counts as in use. */
export function isUnused(pluginId: string, nowMs: number): boolean {
  const known = instances.get(pluginId);
  return known !== undefined && nowMs - known.usedMs >= UNUSED_MS;
}
