/** Kong's cosocket read timeout (lua_socket_read_timeout default): Kong gives up on a PDK step after this. */
export const KONG_SOCKET_TIMEOUT_MS = 60_000;

/**
 * How long the server lets a PDK call wait for Kong's answer before abandoning it: longer than Kong's own
 * socket timeout, so an answer that can still come is never cut off.
 */
export const DEFAULT_CALL_TIMEOUT_MS = 65_000;
