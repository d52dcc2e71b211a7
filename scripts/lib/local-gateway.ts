/**
 * What `npm start` and `npm run demo` share with docker-compose.yml: the ports it publishes and the example
 * configuration (kong/kong.yml) with the compose hosts of the mock providers pointed at local ones.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

/** docker-compose.yml's published ports: Kong's proxy and Admin API, the two mock providers' (80 inside). */
export const COMPOSE_PORTS = {
  proxy: 8000,
  admin: 8001,
  "chat-backend-1": 9001,
  "chat-backend-2": 9002,
} as const;

/** The mock providers kong/kong.yml names (APK example 01's endpoints), as compose runs them on port 80. */
export const BACKENDS = ["chat-backend-1", "chat-backend-2"] as const;
export type Backend = (typeof BACKENDS)[number];

/** Where `npm start` puts the plugin server's status listener (the image's address). */
export const LOCAL_STATUS_LISTEN = "127.0.0.1:9542";

/** kong/kong.yml as docker-compose loads it, with each `http://chat-backend-N:80` replaced by a local URL. */
export function localKongConfig(root: string, urls: Record<Backend, string>): string {
  let yml = readFileSync(resolve(root, "kong/kong.yml"), "utf8");
  for (const backend of BACKENDS) yml = yml.replaceAll(`http://${backend}:80`, urls[backend]);
  return yml;
}
