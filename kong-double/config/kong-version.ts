/**
 * The one Kong version the double reports (Admin API `GET /` version, bundled plugins' versions, the Server and
 * Via headers): the version kong/Dockerfile runs. Kong's Lua tree differs between 3.9.1 and 3.9.3 only in
 * kong/meta.lua (the version string; `git diff --stat 3.9.1 3.9.3 -- kong`), so comments citing K3.9.3 hold for
 * 3.9.1 as well. See kong-double/KONG-BEHAVIOURS.md.
 */
export const KONG_VERSION = "3.9.1";
