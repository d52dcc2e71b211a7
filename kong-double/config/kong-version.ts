/**
 * The one Kong version the double reports (Admin API `GET /` version, bundled plugins' versions, the Server and
 * Via headers): the version kong/Dockerfile runs. Kong's Lua tree differs between 3.9.1 and 3.9.3 only in
 * kong/meta.lua (the version string; `git diff --stat 3.9.1 3.9.3 -- kong`), so comments citing K3.9.3 hold for
 * 3.9.1 as well. See kong-double/KONG-BEHAVIOURS.md.
 *
 * What differs on Kong's master (declares 3.10.0, commit 22246ef; the same scenarios run there behaved as on
 * 3.9.1), which the double does not model:
 * - Admin `GET /` answers 200 while Kong manages a plugin server (Kong PR #14111; its 3.9.x backport was
 *   reverted, #14886): on 3.9.x the double answers 500 (config/admin-api.ts, KONG-BEHAVIOURS row 27).
 * - `\.` escapes a dot in `kong.log.set_serialize_value` keys (1e3fd83260); the plugin's keys have none.
 * - 01789df426 (buffered body read from ngx.ctx), 7fd7f0471b (`set_scheme` switches upstream TLS, balancer
 *   only), 6b9d32b1a0 (a `response.get_header` change reverted): nothing the plugin calls behaves differently.
 */
export const KONG_VERSION = "3.9.1";
