/**
 * Reads MODEL_BASED_ROUND_ROBIN_STATUS_LISTEN: `host:port` (`127.0.0.1:9542`, `[::1]:9542`, `localhost:9542`);
 * port 0 takes any free port (the address is logged). Pure: the listener (./index) says what was wrong.
 */
export const STATUS_LISTEN_ENV = "MODEL_BASED_ROUND_ROBIN_STATUS_LISTEN";

export interface ListenAddress {
  host: string;
  port: number;
}

/** The address, or a sentence saying what is wrong with the value. */
export function parseListenAddress(value: string): ListenAddress | string {
  const text = value.trim();
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:/[\]]+)):(\d{1,5})$/.exec(text);
  if (match === null) return "expected host:port, for example 127.0.0.1:9542 or [::1]:9542";
  const port = Number(match[3]);
  if (port > 65535) return `port ${port} is over 65535`;
  return { host: (match[1] ?? match[2]) as string, port };
}
