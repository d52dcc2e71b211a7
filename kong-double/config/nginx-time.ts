/**
 * nginx's time values, as a directive of milliseconds reads them (src/core/ngx_parse.c `ngx_parse_time` with
 * is_sec = 0, used by ngx_conf_set_msec_slot, e.g. lua_socket_read_timeout): one or more space-separated parts
 * `<digits><unit>`, units y M w d h m s ms from the largest down, each at most once; a part without a unit is
 * seconds. Kong writes `KONG_NGINX_HTTP_<DIRECTIVE>` values into nginx.conf as they are.
 */
const UNIT_MS: Record<string, number> = {
  y: 365 * 24 * 3600_000,
  M: 30 * 24 * 3600_000,
  w: 7 * 24 * 3600_000,
  d: 24 * 3600_000,
  h: 3600_000,
  m: 60_000,
  s: 1000,
  ms: 1,
};
const ORDER = ["y", "M", "w", "d", "h", "m", "s", "ms"];
/** nginx refuses more (NGX_PARSE_LARGE_TIME). */
const MAX_MS = 2147483647;

/** Milliseconds of an nginx time such as `60s`, `500ms`, `1m 30s` or `5`; throws naming the directive. */
export function parseNginxMs(directive: string, text: string): number {
  const bad = (why: string) =>
    new Error(
      `${directive} "${text}": ${why} (an nginx time such as 60s, 500ms, 1m 30s, or seconds without a unit)`,
    );
  const parts = text.trim().split(/ +/);
  if (text.trim() === "") throw bad("empty");
  let total = 0;
  let last = -1;
  for (const part of parts) {
    const match = /^(\d+)(ms|[yMwdhms])?$/.exec(part);
    if (match === null) throw bad(`"${part}" is not a time`);
    const unit = match[2] ?? "s";
    const rank = ORDER.indexOf(unit);
    if (rank <= last) throw bad("units must go from the largest down, each once");
    last = rank;
    total += Number(match[1]) * (UNIT_MS[unit] as number);
  }
  if (total > MAX_MS) throw bad("too large for nginx");
  return total;
}
