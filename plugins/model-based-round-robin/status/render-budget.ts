/**
 * What keeps the status listener from taking the event loop from the proxy (they share one process): a page is
 * rendered at most `perSecond` times a second, and never twice at once. A reader within the budget gets a fresh
 * rendering; past it, every request gets the latest one (at most about a second old), so a thousand concurrent
 * scrapes cost a handful of renders. A lone operator or a Prometheus scrape always stays within it.
 */
export interface RenderBudget {
  /** The page's text: freshly rendered when the budget allows, else the latest rendering. */
  get(): Promise<string>;
  /** Renders done so far (for tests and benches). */
  readonly renders: number;
}

export function renderBudget(
  render: () => string | Promise<string>,
  perSecond: number,
  now: () => number = Date.now,
): RenderBudget {
  // A token bucket: `perSecond` renders in a burst, refilled at `perSecond` a second.
  let tokens = perSecond;
  let refilledAt = now();
  let latest: string | undefined;
  let rendering: Promise<string> | undefined;
  let renders = 0;
  return {
    get renders() {
      return renders;
    },
    get(): Promise<string> {
      if (rendering !== undefined) return rendering;
      const t = now();
      tokens = Math.min(perSecond, tokens + ((t - refilledAt) * perSecond) / 1000);
      refilledAt = t;
      if (latest !== undefined && tokens < 1) return Promise.resolve(latest);
      tokens -= 1;
      renders += 1;
      const current = Promise.resolve()
        .then(render)
        .then((text) => {
          latest = text;
          return text;
        })
        .finally(() => {
          rendering = undefined;
        });
      rendering = current;
      return current;
    },
  };
}
