/**
 * The guest protocol's framing (docs/guest-protocol.md): each frame is a 4-byte big-endian length N, then N bytes:
 * one type byte and N-1 bytes of payload. Control frames carry a JSON object, output frames raw bytes. Both ends
 * treat the other as hostile: a frame longer than MAX_FRAME, of length 0 or of an unknown type stops the decoder
 * for good (the connection is then closed), and nothing is buffered beyond one frame.
 */

/** The largest frame (type byte + payload) either side sends or accepts. */
export const MAX_FRAME = 1 << 20;
/** Output is cut into frames of at most this many bytes. */
export const MAX_OUTPUT_CHUNK = 64 * 1024;

export const FrameType = {
  HELLO: 1,
  ASSIGN: 2,
  REFUSED: 3,
  STARTED: 4,
  STDOUT: 5,
  STDERR: 6,
  EXITED: 7,
  ACK: 8,
  CANCEL: 9,
  ERROR: 10,
} as const;

export type FrameTypeName = keyof typeof FrameType;
export type FrameTypeCode = (typeof FrameType)[FrameTypeName];

const NAMES = new Map<number, FrameTypeName>(Object.entries(FrameType).map(([k, v]) => [v, k as FrameTypeName]));

export function frameTypeName(code: number): FrameTypeName | undefined {
  return NAMES.get(code);
}

export interface Frame {
  readonly type: FrameTypeName;
  readonly payload: Buffer;
}

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

export function encodeFrame(type: FrameTypeName, payload: Uint8Array): Buffer {
  const n = 1 + payload.length;
  if (n > MAX_FRAME) throw new FrameError(`a ${type} frame of ${n} bytes is over the ${MAX_FRAME}-byte limit`);
  const out = Buffer.allocUnsafe(4 + n);
  out.writeUInt32BE(n, 0);
  out[4] = FrameType[type];
  out.set(payload, 5);
  return out;
}

export function encodeJsonFrame(type: FrameTypeName, body: object): Buffer {
  return encodeFrame(type, Buffer.from(JSON.stringify(body), 'utf8'));
}

/** Output as frames of at most MAX_OUTPUT_CHUNK bytes each. */
export function encodeOutput(type: 'STDOUT' | 'STDERR', data: Buffer): Buffer[] {
  const frames: Buffer[] = [];
  for (let at = 0; at < data.length; at += MAX_OUTPUT_CHUNK) frames.push(encodeFrame(type, data.subarray(at, at + MAX_OUTPUT_CHUNK)));
  return frames;
}

/**
 * Cuts a byte stream into frames. `push` returns the frames completed by a chunk; after a FrameError the decoder
 * refuses everything (the stream has lost its framing).
 */
export class FrameDecoder {
  #pending: Buffer[] = [];
  #have = 0;
  #broken: FrameError | null = null;

  push(chunk: Buffer): Frame[] {
    if (this.#broken !== null) throw this.#broken;
    this.#pending.push(chunk);
    this.#have += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.#have < 4) return frames;
      const head = this.#peek(4);
      const n = head.readUInt32BE(0);
      if (n === 0 || n > MAX_FRAME) return this.#fail(`frame length ${n} is outside 1 to ${MAX_FRAME}`);
      if (this.#have < 4 + n) return frames;
      const whole = this.#take(4 + n);
      const type = frameTypeName(whole[4]!);
      if (type === undefined) return this.#fail(`unknown frame type ${whole[4]!}`);
      frames.push({ type, payload: whole.subarray(5) });
    }
  }

  /** Bytes of a frame not yet complete (a stream that ends with some is truncated). */
  get buffered(): number {
    return this.#have;
  }

  #fail(message: string): never {
    this.#broken = new FrameError(message);
    this.#pending = [];
    this.#have = 0;
    throw this.#broken;
  }

  #peek(n: number): Buffer {
    if (this.#pending[0]!.length < n) this.#pending = [Buffer.concat(this.#pending)];
    return this.#pending[0]!;
  }

  #take(n: number): Buffer {
    const all = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending);
    const out = Buffer.from(all.subarray(0, n));
    const rest = all.subarray(n);
    this.#pending = rest.length > 0 ? [rest] : [];
    this.#have = rest.length;
    return out;
  }
}
