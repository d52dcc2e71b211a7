import { describe, expect, it } from "vitest";
import { answerPace, type PaceClock } from "../../plugins/model-based-round-robin/status/answer-pace";

/** A clock whose timers run when the test moves time past them. */
function manualClock() {
  let t = 0;
  let timers: { at: number; run: () => void }[] = [];
  const clock: PaceClock = {
    now: () => t,
    later: (run, ms) => void timers.push({ at: t + ms, run }),
  };
  const advance = (ms: number) => {
    const until = t + ms;
    for (;;) {
      const due = timers.filter((x) => x.at <= until).sort((x, y) => x.at - y.at)[0];
      if (due === undefined) break;
      timers = timers.filter((x) => x !== due);
      t = due.at;
      due.run();
    }
    t = until;
  };
  return { clock, advance, timers: () => timers.length };
}

/** Requests queued on the pace, each noting its name when answered; `gone` says whether its connection left. */
function requests(pace: ReturnType<typeof answerPace>) {
  const answered: (string | number)[] = [];
  const queue = (name: string | number, gone: () => boolean = () => false) =>
    pace.turn(() => answered.push(name), gone);
  return { answered, queue };
}

describe("status listener answer pace", () => {
  it("answers a burst at once, then the rest in arrival order at its pace", () => {
    const { clock, advance } = manualClock();
    const pace = answerPace(10, 3, clock);
    const { answered, queue } = requests(pace);
    for (let i = 0; i < 8; i++) queue(i);
    expect(answered).toEqual([0, 1, 2]);
    expect(pace.waiting).toBe(5);
    advance(100); // one answer's worth
    expect(answered).toEqual([0, 1, 2, 3]);
    advance(400);
    expect(answered).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(pace.waiting).toBe(0);
  });

  it("keeps a newcomer behind those already waiting, even when a token is back", () => {
    const { clock, advance } = manualClock();
    const pace = answerPace(10, 1, clock);
    const { answered, queue } = requests(pace);
    queue("a");
    queue("b");
    advance(50);
    queue("c");
    expect(answered).toEqual(["a"]);
    advance(50);
    expect(answered).toEqual(["a", "b"]);
    advance(100);
    expect(answered).toEqual(["a", "b", "c"]);
  });

  it("skips a waiting request whose connection went away, without spending its turn", () => {
    const { clock, advance } = manualClock();
    const pace = answerPace(10, 1, clock);
    const { answered, queue } = requests(pace);
    queue("first");
    let gone = false;
    queue("gone", () => gone);
    queue("next");
    gone = true;
    advance(100);
    expect(answered).toEqual(["first", "next"]);
  });

  it("refills to the burst at most, and sets no timer while nobody waits", () => {
    const { clock, advance, timers } = manualClock();
    const pace = answerPace(10, 2, clock);
    advance(60_000);
    const { answered, queue } = requests(pace);
    for (let i = 0; i < 3; i++) queue(i);
    expect(answered).toEqual([0, 1]);
    expect(timers()).toBe(1);
    advance(100);
    expect(answered).toEqual([0, 1, 2]);
    expect(timers()).toBe(0);
  });
});
