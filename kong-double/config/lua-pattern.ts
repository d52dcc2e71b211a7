/**
 * Lua 5.1 pattern matching (the language of Kong's `match`, `not_match`, `match_all`, `match_none` and
 * `match_any` validators, which call `string.match`). Implemented as a backtracking matcher over the bytes of
 * the subject, like Lua's own lstrlib, rather than a translation to RegExp: the two languages differ in `-`,
 * `%b`, `%f`, character classes and anchors, and a translation silently changes meaning at those edges.
 *
 * Supported: `.`, `%a %c %d %l %p %s %u %w %x` and their upper-case complements (ASCII, C locale), `%` escapes,
 * sets `[...]` / `[^...]` with ranges and classes, the quantifiers `* + - ?`, anchors `^` and `$`, captures
 * `(...)` and position captures `()`, back-references `%1`-`%9`, `%bxy` and the frontier `%f[set]`.
 * Malformed patterns throw a LuaPatternError with Lua's message.
 */

export class LuaPatternError extends Error {
  override name = "LuaPatternError";
}

const MAX_CALLS = 200_000;
const CAP_UNFINISHED = -1;
const CAP_POSITION = -2;

interface State {
  src: Uint8Array;
  pat: Uint8Array;
  level: number;
  capture: { start: number; len: number }[];
  calls: number;
}

const PERCENT = 0x25; // %
const code = (c: string) => c.charCodeAt(0);

/** `string.match(subject, pattern) ~= nil`: true when the pattern matches anywhere in the subject. */
export function luaPatternMatches(subject: string, pattern: string): boolean {
  const src = Buffer.from(subject, "utf8");
  const pat = Buffer.from(pattern, "utf8");
  const anchored = pat[0] === code("^");
  let start = 0;
  do {
    const state: State = { src, pat, level: 0, capture: [], calls: 0 };
    if (match(state, start, anchored ? 1 : 0) !== -1) return true;
    start++;
  } while (start <= src.length && !anchored);
  return false;
}

function classEnd(ms: State, p: number): number {
  const c = ms.pat[p++];
  if (c === PERCENT) {
    if (p >= ms.pat.length) throw new LuaPatternError("malformed pattern (ends with '%')");
    return p + 1;
  }
  if (c === code("[")) {
    if (ms.pat[p] === code("^")) p++;
    do {
      if (p >= ms.pat.length) throw new LuaPatternError("malformed pattern (missing ']')");
      const cc = ms.pat[p++];
      if (cc === PERCENT && p < ms.pat.length) p++;
    } while (ms.pat[p] !== code("]"));
    return p + 1;
  }
  return p;
}

function singleClass(c: number, cl: number): boolean {
  const lower = cl | 0x20;
  let res: boolean;
  switch (String.fromCharCode(lower)) {
    case "a":
      res = isAlpha(c);
      break;
    case "c":
      res = c < 32 || c === 127;
      break;
    case "d":
      res = c >= 48 && c <= 57;
      break;
    case "l":
      res = c >= 97 && c <= 122;
      break;
    case "p":
      res = isPunct(c);
      break;
    case "s":
      res = c === 32 || (c >= 9 && c <= 13);
      break;
    case "u":
      res = c >= 65 && c <= 90;
      break;
    case "w":
      res = isAlpha(c) || (c >= 48 && c <= 57);
      break;
    case "x":
      res = (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
      break;
    default:
      return cl === c;
  }
  return cl >= 65 && cl <= 90 ? !res : res;
}

function isAlpha(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

function isPunct(c: number): boolean {
  return c > 32 && c < 127 && !isAlpha(c) && !(c >= 48 && c <= 57);
}

/** Whether byte `c` is in the set that spans pat[p] ('[') to pat[ep] (']'). */
function matchBracketClass(ms: State, c: number, p: number, ep: number): boolean {
  let sig = true;
  if (ms.pat[p + 1] === code("^")) {
    sig = false;
    p++;
  }
  while (++p < ep) {
    const pc = ms.pat[p] as number;
    if (pc === PERCENT) {
      p++;
      if (singleClass(c, ms.pat[p] as number)) return sig;
    } else if (ms.pat[p + 1] === code("-") && p + 2 < ep) {
      p += 2;
      if (pc <= c && c <= (ms.pat[p] as number)) return sig;
    } else if (pc === c) return sig;
  }
  return !sig;
}

function singleMatch(ms: State, s: number, p: number, ep: number): boolean {
  if (s >= ms.src.length) return false;
  const c = ms.src[s] as number;
  const pc = ms.pat[p] as number;
  if (pc === code(".")) return true;
  if (pc === PERCENT) return singleClass(c, ms.pat[p + 1] as number);
  if (pc === code("[")) return matchBracketClass(ms, c, p, ep - 1);
  return pc === c;
}

function match(ms: State, s: number, p: number): number {
  if (++ms.calls > MAX_CALLS) throw new LuaPatternError("pattern too complex");
  for (;;) {
    if (p >= ms.pat.length) return s;
    const pc = ms.pat[p] as number;
    if (pc === code("(")) {
      if (ms.pat[p + 1] === code(")")) return startCapture(ms, s, p + 2, CAP_POSITION);
      return startCapture(ms, s, p + 1, CAP_UNFINISHED);
    }
    if (pc === code(")")) return endCapture(ms, s, p + 1);
    if (pc === PERCENT) {
      const next = ms.pat[p + 1];
      if (next === code("b")) {
        s = matchBalance(ms, s, p + 2);
        if (s === -1) return -1;
        p += 4;
        continue;
      }
      if (next === code("f")) {
        p += 2;
        if (ms.pat[p] !== code("[")) throw new LuaPatternError("missing '[' after '%f' in pattern");
        const ep = classEnd(ms, p);
        const prev = s === 0 ? 0 : (ms.src[s - 1] as number);
        const cur = s < ms.src.length ? (ms.src[s] as number) : 0;
        if (!matchBracketClass(ms, prev, p, ep - 1) && matchBracketClass(ms, cur, p, ep - 1)) {
          p = ep;
          continue;
        }
        return -1;
      }
      if (next !== undefined && next >= 48 && next <= 57) {
        s = matchCapture(ms, s, next);
        if (s === -1) return -1;
        p += 2;
        continue;
      }
    }
    if (pc === code("$") && p + 1 === ms.pat.length) return s === ms.src.length ? s : -1;
    const ep = classEnd(ms, p);
    const epc = ms.pat[ep];
    const m = singleMatch(ms, s, p, ep);
    if (epc === code("?")) {
      if (m) {
        const res = match(ms, s + 1, ep + 1);
        if (res !== -1) return res;
      }
      p = ep + 1;
      continue;
    }
    if (epc === code("*")) return maxExpand(ms, s, p, ep);
    if (epc === code("+")) return m ? maxExpand(ms, s + 1, p, ep) : -1;
    if (epc === code("-")) return minExpand(ms, s, p, ep);
    if (!m) return -1;
    s++;
    p = ep;
  }
}

function maxExpand(ms: State, s: number, p: number, ep: number): number {
  let i = 0;
  while (singleMatch(ms, s + i, p, ep)) i++;
  while (i >= 0) {
    const res = match(ms, s + i, ep + 1);
    if (res !== -1) return res;
    i--;
  }
  return -1;
}

function minExpand(ms: State, s: number, p: number, ep: number): number {
  for (;;) {
    const res = match(ms, s, ep + 1);
    if (res !== -1) return res;
    if (singleMatch(ms, s, p, ep)) s++;
    else return -1;
  }
}

function startCapture(ms: State, s: number, p: number, what: number): number {
  ms.capture[ms.level] = { start: s, len: what };
  ms.level++;
  const res = match(ms, s, p);
  if (res === -1) ms.level--;
  return res;
}

function endCapture(ms: State, s: number, p: number): number {
  let l = -1;
  for (let level = ms.level - 1; level >= 0; level--) {
    if (ms.capture[level]?.len === CAP_UNFINISHED) {
      l = level;
      break;
    }
  }
  if (l < 0) throw new LuaPatternError("invalid pattern capture");
  const cap = ms.capture[l] as { start: number; len: number };
  cap.len = s - cap.start;
  const res = match(ms, s, p);
  if (res === -1) cap.len = CAP_UNFINISHED;
  return res;
}

function matchBalance(ms: State, s: number, p: number): number {
  if (p + 1 >= ms.pat.length) throw new LuaPatternError("missing arguments to '%b'");
  if (s >= ms.src.length || ms.src[s] !== ms.pat[p]) return -1;
  const open = ms.pat[p];
  const close = ms.pat[p + 1];
  let depth = 1;
  let i = s + 1;
  while (i < ms.src.length) {
    const c = ms.src[i];
    if (c === close) {
      if (--depth === 0) return i + 1;
    } else if (c === open) depth++;
    i++;
  }
  return -1;
}

function matchCapture(ms: State, s: number, digit: number): number {
  const l = digit - 49; // '1' → 0
  const cap = ms.capture[l];
  if (l < 0 || l >= ms.level || cap === undefined || cap.len === CAP_UNFINISHED) {
    throw new LuaPatternError(`invalid capture index %${String.fromCharCode(digit)}`);
  }
  const len = cap.len === CAP_POSITION ? 0 : cap.len;
  if (ms.src.length - s >= len) {
    const a = ms.src.subarray(cap.start, cap.start + len);
    const b = ms.src.subarray(s, s + len);
    if (Buffer.compare(a, b) === 0) return s + len;
  }
  return -1;
}
