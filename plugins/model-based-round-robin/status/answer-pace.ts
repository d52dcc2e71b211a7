/**
 * What keeps a flood of requests on the status listener from taking the CPU the proxy needs (they share one
 * process): answers go out at most `perSecond` a second, after a burst of `burst`, and a request past that waits
 * its turn, in arrival order, on its open connection. Closing it at the door instead costs more: a flooding
 * client connects again at once, so each refusal costs an accept, a close and a new connection, as fast as the
 * client can make them (a quarter to a third of the proxy's throughput in `npm run chaos -- --parts 6`). A
 * waiting request costs nothing until its turn; one whose connection closed meanwhile is skipped.
 */
export interface AnswerPace {
  /** Runs `answer` now if the pace allows, else when its turn comes (skipped if `gone()` says so by then). */
  turn(answer: () => void, gone: () => boolean): void;
  /** Requests waiting for their turn (for /status and tests). */
  readonly waiting: number;
}

export interface PaceClock {
  now(): number;
  /** Calls `run` after `ms`; the timer must not keep the process alive. */
  later(run: () => void, ms: number): void;
}

const systemClock: PaceClock = {
  now: Date.now,
  later: (run, ms) => void setTimeout(run, ms).unref(),
};

export function answerPace(perSecond: number, burst: number, clock: PaceClock = systemClock): AnswerPace {
  // A token bucket: `burst` answers at once, refilled at `perSecond`.
  let tokens = burst;
  let refilledAt = clock.now();
  let timerSet = false;
  const queue: { answer: () => void; gone: () => boolean }[] = [];
  let head = 0; // queue[head] is the next in line: no shift() on a long queue

  const refill = () => {
    const t = clock.now();
    tokens = Math.min(burst, tokens + ((t - refilledAt) * perSecond) / 1000);
    refilledAt = t;
  };
  const drain = () => {
    timerSet = false;
    refill();
    while (head < queue.length && tokens >= 1) {
      const next = queue[head++] as (typeof queue)[number];
      if (next.gone()) continue;
      tokens -= 1;
      next.answer();
    }
    if (head === queue.length) {
      queue.length = 0;
      head = 0;
      return;
    }
    timerSet = true;
    clock.later(drain, Math.ceil(((1 - tokens) * 1000) / perSecond));
  };

  return {
    get waiting() {
      return queue.length - head;
    },
    turn(answer, gone) {
      if (head === queue.length) {
        refill();
        if (tokens >= 1) {
          tokens -= 1;
          answer();
          return;
        }
      }
      queue.push({ answer, gone });
      if (!timerSet) {
        timerSet = true;
        clock.later(drain, Math.ceil(((1 - tokens) * 1000) / perSecond));
      }
    },
  };
}
