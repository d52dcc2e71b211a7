/**
 * The configuration a Kong node holds: a KongConfig replaced wholesale by a declarative load (DB-less) or
 * changed entity by entity through the Admin API (database mode). Every change notifies the listeners, so the
 * runtime can rebuild its router and plugin instances (Kong rebuilds its router and plugins iterator and
 * bumps `__seq__` the same way).
 */
import type { KongConfig } from "./model";

export type ConfigListener = (config: KongConfig) => void;

/** constants.DECLARATIVE_EMPTY_CONFIG_HASH: what /status reports before any configuration is loaded. */
export const EMPTY_CONFIG_HASH = "00000000000000000000000000000000";

export const emptyConfig = (): KongConfig => ({
  services: [],
  routes: [],
  consumers: [],
  keyauth_credentials: [],
  plugins: [],
});

export class ConfigStore {
  private current: KongConfig;
  private hash: string;
  private readonly listeners = new Set<ConfigListener>();

  constructor(initial: KongConfig = emptyConfig(), hash = EMPTY_CONFIG_HASH) {
    this.current = initial;
    this.hash = hash;
  }

  get config(): KongConfig {
    return this.current;
  }

  /** The hash of the last declarative configuration loaded (DB-less `/status` `configuration_hash`). */
  get configurationHash(): string {
    return this.hash;
  }

  /** Replaces everything, as `POST /config` does. */
  replace(config: KongConfig, hash = EMPTY_CONFIG_HASH): void {
    this.current = config;
    this.hash = hash;
    this.notify();
  }

  /** Applies one entity change (database mode) on a copy, then publishes it. */
  update(change: (draft: KongConfig) => void): void {
    const draft = structuredClone(this.current);
    change(draft);
    this.current = draft;
    this.notify();
  }

  /** Calls `listener` after every change; returns a function that unsubscribes it. */
  onChange(listener: ConfigListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(): void {
    for (const listener of this.listeners) listener(this.current);
  }
}
