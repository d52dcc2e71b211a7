/** A Lua error raised on Kong's side of a PDK call: Kong never answers the call, the event stops there. */
export class LuaError extends Error {
  override name = "LuaError";
}
