/**
 * The plugin server's MessagePack framing (pluginserver/msgpack-frames.ts): every kind of item, cut at every
 * place, one byte at a time, at random, or several messages in one chunk, comes out as the same messages that
 * went in, byte for byte (the messages are @msgpack/msgpack's encodings).
 */
import { decode, Encoder, ExtData } from "@msgpack/msgpack";
import { describe, expect, it } from "vitest";
import { MessageFramer, MessagePackFormatError } from "../../pluginserver/msgpack-frames";

const encoder = new Encoder();
const pack = (value: unknown) => Buffer.from(encoder.encode(value));
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Messages covering every MessagePack type and every length-field width. */
const MESSAGES: unknown[] = [
  [0, 1, "plugin.Step", [{ EventId: 1, Data: "ret" }]],
  [0, 2, "plugin.Step", [{ EventId: 2 }]], // Data omitted: nil
  [null, true, false, 0, 127, -1, -32, -33, -128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -(2 ** 31)],
  [-32769, -(2 ** 31) - 1, 1.5, -0.25, 2 ** 53 - 1, Number.MAX_VALUE],
  [
    "",
    "a".repeat(31),
    "b".repeat(32),
    "c".repeat(255),
    "d".repeat(256),
    "e".repeat(65535),
    "f".repeat(65536),
  ],
  [Buffer.alloc(0), Buffer.alloc(255, 1), Buffer.alloc(256, 2), Buffer.alloc(65536, 3)],
  range(15),
  range(16),
  range(70_000), // array 32
  Object.fromEntries(range(15).map((i) => [`k${i}`, i])),
  Object.fromEntries(range(16).map((i) => [`k${i}`, [i, { nested: [i] }]])), // map 16
  Object.fromEntries(range(66_000).map((i) => [`k${i}`, i])), // map 32
  [[], {}, [[[]]], { a: { b: { c: [] } } }],
  // Extensions: fixext 1/2/4/8/16 and ext 8/16/32 (the timestamp extension is a fixext 4/8 or ext 8).
  [1, 2, 4, 8, 16, 17, 300, 70_000].map((n) => new ExtData(5, new Uint8Array(n).fill(7))),
  new Date(1_700_000_000_123),
];
const BYTES = MESSAGES.map(pack);
const STREAM = Buffer.concat(BYTES);

/** Feeds the chunks to one framer; whether the messages that come out are exactly `messages`. */
function framesAre(chunks: Buffer[], messages: Buffer[]): boolean {
  const framer = new MessageFramer();
  const out = chunks.flatMap((c) => framer.push(c));
  return (
    framer.pendingBytes === 0 &&
    out.length === messages.length &&
    out.every((m, i) => m.equals(messages[i] as Buffer))
  );
}
/** The messages under 5,000 bytes, for the cuts that would make thousands of chunks of the big ones. */
const SMALL = BYTES.filter((b) => b.length < 5000);

describe("MessageFramer", () => {
  it("cuts the stream into the messages, all in one chunk", () => {
    expect(framesAre([STREAM], BYTES)).toBe(true);
  });

  it("one byte at a time", () => {
    const bytes = [...Buffer.concat(SMALL)].map((byte) => Buffer.of(byte));
    expect(framesAre(bytes, SMALL)).toBe(true);
  });

  it("cut at every position of a message with every header width", () => {
    const sample = pack([
      0,
      9,
      "plugin.Step",
      [{ EventId: 9, Data: ["x".repeat(300), Buffer.alloc(70_000)] }],
    ]);
    const framer = new MessageFramer();
    for (let at = 0; at <= sample.length; at += at < 400 ? 1 : 997) {
      const out = [...framer.push(sample.subarray(0, at)), ...framer.push(sample.subarray(at))];
      expect(out).toHaveLength(1);
      expect((out[0] as Buffer).equals(sample)).toBe(true);
    }
  });

  it("at random cuts, over and over (a fixed seed)", () => {
    let seed = 42;
    const next = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed;
    };
    const cut = (stream: Buffer, most: number) => {
      const chunks: Buffer[] = [];
      for (let at = 0; at < stream.length; ) {
        const size = 1 + (next() % most);
        chunks.push(stream.subarray(at, at + size));
        at += size;
      }
      return chunks;
    };
    const small = Buffer.concat(SMALL);
    for (let round = 0; round < 10; round++) {
      expect(framesAre(cut(small, 16), SMALL)).toBe(true);
      expect(framesAre(cut(STREAM, 100_000), BYTES)).toBe(true);
    }
  });

  it("gives back a message that fills its chunk, and the next message's start stays for later", () => {
    const [a, b] = [
      pack([0, 1, "plugin.Step", [{ EventId: 1 }]]),
      pack([0, 2, "plugin.Step", [{ EventId: 2 }]]),
    ];
    const framer = new MessageFramer();
    const both = Buffer.concat([a, b]);
    expect(framer.push(both.subarray(0, a.length + 3))).toEqual([a]);
    expect(framer.pendingBytes).toBe(3);
    expect(framer.push(both.subarray(a.length + 3))).toEqual([b]);
  });

  it("holds a raw body of several MiB as it arrives and gives it whole once, in 64 KiB chunks", () => {
    const body = Buffer.alloc(8 * 1024 * 1024 + 3, "z");
    const message = pack([0, 7, "plugin.Step", [{ EventId: 3, Data: body }]]);
    const framer = new MessageFramer();
    const out: Buffer[] = [];
    for (let at = 0; at < message.length; at += 65_536) {
      out.push(...framer.push(message.subarray(at, at + 65_536)));
      if (at + 65_536 < message.length) expect(out).toEqual([]);
    }
    expect(out).toHaveLength(1);
    const decoded = decode(out[0] as Buffer) as [number, number, string, [{ Data: Uint8Array }]];
    expect(Buffer.from(decoded[3][0].Data).equals(body)).toBe(true);
  });

  it("refuses a byte that is no MessagePack type (0xc1), naming it", () => {
    const framer = new MessageFramer();
    expect(() => framer.push(Buffer.of(0x92, 0x01, 0xc1))).toThrow(MessagePackFormatError);
    expect(() => new MessageFramer().push(Buffer.of(0xc1))).toThrow("byte 0xc1 is not a MessagePack type");
  });
});
