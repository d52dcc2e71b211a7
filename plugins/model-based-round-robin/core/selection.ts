/**
 * Smooth weighted round robin, nginx's algorithm: every pick adds each eligible entry's weight to its current
 * weight, takes the largest (ties go to the earlier entry) and subtracts the eligible total from the winner.
 * Weights 5:1:1 give A A B A C A A, so a heavy entry never takes its share as one block.
 *
 * An ineligible (suspended) entry is skipped and its current weight is held at 0, so when it returns it starts
 * level with the others instead of cashing in the turns it missed (APK's counters gave a returning model a
 * burst of 20+ requests).
 */
export interface Slot {
  readonly weight: number;
  current: number;
}

/**
 * Index of the chosen slot, or -1 when none is eligible. A `skipped` slot (already tried by this request, but
 * not out of rotation) takes no part in this turn and keeps its current weight.
 */
export function pickSmooth(
  slots: readonly Slot[],
  eligible: (index: number) => boolean,
  skipped?: (index: number) => boolean,
): number {
  let total = 0;
  let best = -1;
  let bestCurrent = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < slots.length; i++) {
    const slot = slots[i] as Slot;
    if (skipped?.(i) === true) continue;
    if (!eligible(i)) {
      slot.current = 0;
      continue;
    }
    slot.current += slot.weight;
    total += slot.weight;
    if (slot.current > bestCurrent) {
      best = i;
      bestCurrent = slot.current;
    }
  }
  if (best !== -1) (slots[best] as Slot).current -= total;
  return best;
}

/**
 * The slot pickSmooth would choose now, without taking the turn: for requests that must go to some entry but
 * should not count in the proportions (a GET /models has no model to spread).
 */
export function peekSmooth(slots: readonly Slot[], eligible: (index: number) => boolean): number {
  let best = -1;
  let bestCurrent = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < slots.length; i++) {
    const slot = slots[i] as Slot;
    if (!eligible(i)) continue;
    // An ineligible slot's current would be held at 0 by a real pick; eligible ones gain their weight.
    if (slot.current + slot.weight > bestCurrent) {
      best = i;
      bestCurrent = slot.current + slot.weight;
    }
  }
  return best;
}
