/**
 * Which entries are out of rotation, and until when. node-cache evicts expired keys (its TTL is in whole
 * seconds and its check period coarse), while the deadline stored with each key gives millisecond precision:
 * a suspension of 1500 ms ends after 1500 ms, not after node-cache's next sweep.
 */
import NodeCache from "node-cache";

export class SuspensionStore {
  private readonly cache = new NodeCache({ checkperiod: 60, useClones: false });
  /** Why each key is suspended (the signal that set its deadline), kept beside the deadline. */
  private readonly reasons = new Map<string, string>();
  /** Per group (plugin id and environment), the latest deadline: lets a pick skip every lookup when none is due. */
  private readonly latest = new Map<string, number>();
  /** The group of each suspended key, so a snapshot can restore `latest`. */
  private readonly groups = new Map<string, string>();

  /** True when some key of the group may still be suspended at nowMs. */
  anyIn(group: string, nowMs: number): boolean {
    return (this.latest.get(group) ?? 0) > nowMs;
  }

  /** Suspends the key until nowMs + durationMs unless it already runs longer; true when the deadline moved. */
  suspend(key: string, durationMs: number, nowMs: number, group = "", reason = ""): boolean {
    if (!(durationMs > 0)) return false;
    const until = nowMs + durationMs;
    if (until > (this.latest.get(group) ?? 0)) this.latest.set(group, until);
    const existing = this.resumesAt(key, nowMs);
    // Two signals for one entry (concurrent 429s): the later deadline wins, a shorter hint never shortens it.
    if (existing !== undefined && existing >= until) return false;
    this.cache.set(key, until, Math.ceil(durationMs / 1000) + 1);
    this.groups.set(key, group);
    this.reasons.set(key, reason);
    return true;
  }

  /** Every running suspension: key, deadline, group and reason. */
  entries(nowMs: number): [key: string, untilMs: number, group: string, reason: string][] {
    const out: [string, number, string, string][] = [];
    for (const key of this.cache.keys()) {
      const until = this.resumesAt(key, nowMs);
      if (until !== undefined)
        out.push([key, until, this.groups.get(key) ?? "", this.reasons.get(key) ?? ""]);
    }
    return out;
  }

  /** When the entry returns, or undefined when it is not suspended. */
  resumesAt(key: string, nowMs: number): number | undefined {
    const until = this.cache.get<number>(key);
    if (until === undefined || until <= nowMs) return undefined;
    return until;
  }

  isSuspended(key: string, nowMs: number): boolean {
    return this.resumesAt(key, nowMs) !== undefined;
  }

  /** Forgets the per-group deadlines that have passed (their groups have nothing suspended). */
  forgetPast(nowMs: number): void {
    for (const [group, until] of this.latest) if (until <= nowMs) this.latest.delete(group);
    for (const key of this.groups.keys()) {
      if (this.isSuspended(key, nowMs)) continue;
      this.groups.delete(key);
      this.reasons.delete(key);
    }
  }
}
