/**
 * Cuts the byte stream of one connection from Kong into whole MessagePack messages, whatever the chunks the
 * socket hands over: a split inside a header or a length field, between two items, one byte at a time, or
 * several messages in one chunk.
 *
 * Why not decode each chunk and retry on "insufficient data" (kong-pdk 0.6.0's listener): that re-decodes the
 * whole buffer on every chunk (quadratic in a message's size: 62-85 ms of CPU per 1 MB body, issue 20), and a
 * split in some places throws a RangeError it does not catch, which ends the process. @msgpack/msgpack's own
 * stream decoder resumes, but it copies everything still undecoded into a new buffer on every chunk, which is
 * quadratic too for a body of several MiB.
 *
 * So this only reads the type bytes and the length fields, as they arrive, and skips over strings and binaries
 * by their length without looking at them; each chunk is kept as it came. Once a message is complete its bytes
 * are joined once (or not at all, when it sits inside one chunk) and the caller decodes them once. Every byte is
 * copied at most once and decoded once.
 */

/** What the framer needs to know about one item's header: its size, its payload's size, and its children. */
interface Head {
  /** Bytes of the header: the type byte and any length or count fields (and an ext's type byte). */
  headerBytes: number;
  /** Bytes after the header that belong to this item (a string's, binary's or extension's data). */
  payloadBytes: number;
  /** Items nested in this one (an array's elements, a map's keys and values). */
  children: number;
}

export class MessagePackFormatError extends Error {
  override name = "MessagePackFormatError";
}

export class MessageFramer {
  private chunks: Buffer[] = [];
  /** Bytes held in `chunks`. */
  private held = 0;
  /** Bytes of the current message already accounted for (it may run past `held` while a payload arrives). */
  private scanned = 0;
  /** Items of the current message whose header has not been read yet. */
  private itemsLeft = 1;
  /** Where byteAt last was: the index of a chunk in `chunks`, and the position of that chunk's first byte. */
  private cursorChunk = 0;
  private cursorStart = 0;

  /** Bytes held for a message that is not complete yet (for memory accounting and tests). */
  get pendingBytes(): number {
    return this.held;
  }

  /** Takes the next chunk; returns the messages it completed, in order, each as its own bytes. */
  push(chunk: Buffer): Buffer[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.held += chunk.length;
    }
    const messages: Buffer[] = [];
    for (;;) {
      while (this.itemsLeft > 0 && this.scanned < this.held) {
        const head = this.readHead(this.scanned);
        if (head === undefined) break; // the header itself is cut: wait for the next chunk
        this.scanned += head.headerBytes + head.payloadBytes;
        this.itemsLeft += head.children - 1;
      }
      if (this.itemsLeft > 0 || this.scanned > this.held) return messages;
      messages.push(this.take(this.scanned));
      this.scanned = 0;
      this.itemsLeft = 1;
      if (this.held === 0) return messages;
    }
  }

  /** The header at `pos`, or undefined if not all of its bytes have arrived. */
  private readHead(pos: number): Head | undefined {
    const type = this.byteAt(pos);
    const fixed = (headerBytes: number, payloadBytes = 0): Head => ({
      headerBytes,
      payloadBytes,
      children: 0,
    });
    if (type <= 0x7f || type >= 0xe0) return fixed(1); // positive and negative fixint
    if (type <= 0x8f) return { headerBytes: 1, payloadBytes: 0, children: 2 * (type - 0x80) }; // fixmap
    if (type <= 0x9f) return { headerBytes: 1, payloadBytes: 0, children: type - 0x90 }; // fixarray
    if (type <= 0xbf) return fixed(1, type - 0xa0); // fixstr
    switch (type) {
      case 0xc0: // nil
      case 0xc2: // false
      case 0xc3: // true
        return fixed(1);
      case 0xcc: // uint 8
      case 0xd0: // int 8
        return fixed(2);
      case 0xcd: // uint 16
      case 0xd1: // int 16
        return fixed(3);
      case 0xca: // float 32
      case 0xce: // uint 32
      case 0xd2: // int 32
        return fixed(5);
      case 0xcb: // float 64
      case 0xcf: // uint 64
      case 0xd3: // int 64
        return fixed(9);
      case 0xd4: // fixext 1, 2, 4, 8, 16: a type byte, then the data
        return fixed(2, 1);
      case 0xd5:
        return fixed(2, 2);
      case 0xd6:
        return fixed(2, 4);
      case 0xd7:
        return fixed(2, 8);
      case 0xd8:
        return fixed(2, 16);
      case 0xc4: // bin 8, 16, 32
      case 0xd9: // str 8, 16, 32
        return this.sized(pos, 1, 0);
      case 0xc5:
      case 0xda:
        return this.sized(pos, 2, 0);
      case 0xc6:
      case 0xdb:
        return this.sized(pos, 4, 0);
      case 0xc7: // ext 8, 16, 32: the length, then a type byte, then the data
        return this.sized(pos, 1, 1);
      case 0xc8:
        return this.sized(pos, 2, 1);
      case 0xc9:
        return this.sized(pos, 4, 1);
      case 0xdc: // array 16, 32
        return this.counted(pos, 2, 1);
      case 0xdd:
        return this.counted(pos, 4, 1);
      case 0xde: // map 16, 32
        return this.counted(pos, 2, 2);
      case 0xdf:
        return this.counted(pos, 4, 2);
      default: // 0xc1 is never used
        throw new MessagePackFormatError(`byte 0x${type.toString(16)} is not a MessagePack type`);
    }
  }

  /** A string, binary or extension: a big-endian length of `lengthBytes`, then `extra` header bytes. */
  private sized(pos: number, lengthBytes: number, extra: number): Head | undefined {
    const length = this.uintAt(pos + 1, lengthBytes);
    if (length === undefined || pos + 1 + lengthBytes + extra > this.held) return undefined;
    return { headerBytes: 1 + lengthBytes + extra, payloadBytes: length, children: 0 };
  }

  /** An array or a map: a big-endian count of `countBytes`, each counted entry being `perEntry` items. */
  private counted(pos: number, countBytes: number, perEntry: number): Head | undefined {
    const count = this.uintAt(pos + 1, countBytes);
    if (count === undefined) return undefined;
    return { headerBytes: 1 + countBytes, payloadBytes: 0, children: perEntry * count };
  }

  private uintAt(pos: number, bytes: number): number | undefined {
    if (pos + bytes > this.held) return undefined;
    let value = 0;
    for (let i = 0; i < bytes; i++) value = value * 256 + this.byteAt(pos + i);
    return value;
  }

  /**
   * The byte at `pos` of the held bytes (the caller checked that it has arrived). Positions read within a
   * message only grow, so the walk resumes from the chunk of the last read: a message cut into many small
   * chunks is still walked once.
   */
  private byteAt(pos: number): number {
    if (pos < this.cursorStart) {
      this.cursorChunk = 0;
      this.cursorStart = 0;
    }
    for (;;) {
      const chunk = this.chunks[this.cursorChunk];
      if (chunk === undefined) throw new RangeError(`byte ${pos} of ${this.held} held`);
      if (pos - this.cursorStart < chunk.length) return chunk[pos - this.cursorStart] as number;
      this.cursorStart += chunk.length;
      this.cursorChunk++;
    }
  }

  /** Removes the first `length` held bytes and returns them as one buffer (a view when they sit in one chunk). */
  private take(length: number): Buffer {
    const first = this.chunks[0] as Buffer;
    let message: Buffer;
    if (first.length >= length) {
      message = first.subarray(0, length);
      if (first.length === length) this.chunks.shift();
      else this.chunks[0] = first.subarray(length);
    } else {
      // The whole chunks the message spans, then the part of the last one it uses; removed in one splice
      // (a message cut into many small chunks would make a shift per chunk quadratic).
      let whole = 0;
      let left = length;
      while ((this.chunks[whole] as Buffer).length <= left) {
        left -= (this.chunks[whole] as Buffer).length;
        whole++;
        if (left === 0) break;
      }
      const parts = this.chunks.slice(0, whole);
      if (left > 0) {
        const last = this.chunks[whole] as Buffer;
        parts.push(last.subarray(0, left));
        this.chunks[whole] = last.subarray(left);
      }
      this.chunks.splice(0, whole);
      message = Buffer.concat(parts, length);
    }
    this.held -= length;
    this.cursorChunk = 0;
    this.cursorStart = 0;
    return message;
  }
}
