/**
 * `npm run bench:listener`: what reading one large message from Kong costs, by the way it is read. One Step
 * carrying a raw body of 1, 4 and 8 MiB arrives in 64 KiB chunks (what a unix socket hands Node) and is read:
 *  - by the project's listener: framed as it arrives (pluginserver/msgpack-frames.ts), decoded once;
 *  - as kong-pdk 0.6.0's listener does: all chunks so far joined and decoded again on every chunk, until one
 *    decode succeeds;
 *  - by @msgpack/msgpack's own stream decoder (Decoder.decodeStream), which resumes but copies the undecoded rest
 *    into a new buffer on every chunk.
 * Prints the median of 9 runs per case (milliseconds of this process's time). Figures only: nothing is asserted.
 */
import { Decoder, encode } from "@msgpack/msgpack";
import { MessageFramer } from "../pluginserver/msgpack-frames";
import { commandArgs, commandFailed } from "./lib/command";

const CHUNK = 64 * 1024;
const RUNS = 9;

function chunks(message: Uint8Array): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < message.length; at += CHUNK) out.push(Buffer.from(message.subarray(at, at + CHUNK)));
  return out;
}

function project(parts: Buffer[]): unknown {
  const framer = new MessageFramer();
  const decoder = new Decoder();
  let last: unknown;
  for (const part of parts) for (const m of framer.push(part)) last = decoder.decode(m);
  return last;
}

function kongPdk(parts: Buffer[]): unknown {
  const decoder = new Decoder();
  let held: Buffer[] = [];
  for (const part of parts) {
    held.push(part);
    try {
      const value = decoder.decode(Buffer.concat(held));
      held = [];
      return value;
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
    }
  }
  return undefined;
}

async function msgpackStream(parts: Buffer[]): Promise<unknown> {
  async function* source() {
    yield* parts;
  }
  let last: unknown;
  for await (const value of new Decoder().decodeStream(source())) last = value;
  return last;
}

async function median(run: () => unknown): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const started = process.hrtime.bigint();
    if ((await run()) === undefined) throw new Error("nothing decoded");
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(RUNS / 2)] as number;
}

async function main(): Promise<void> {
  console.log("| raw body | project's listener | kong-pdk 0.6.0's way | @msgpack decodeStream |");
  console.log("|---|---|---|---|");
  for (const mib of [1, 4, 8]) {
    const body = Buffer.alloc(mib * 1024 * 1024, "a");
    const parts = chunks(encode([0, 1, "plugin.Step", [{ EventId: 1, Data: body }]]));
    const a = await median(() => project(parts));
    const b = await median(() => kongPdk(parts));
    const c = await median(() => msgpackStream(parts));
    console.log(`| ${mib} MiB | ${a.toFixed(1)} ms | ${b.toFixed(1)} ms | ${c.toFixed(1)} ms |`);
  }
}

commandArgs("bench-listener", { options: {}, strict: true, allowPositionals: false });
main().catch(commandFailed("bench-listener"));
