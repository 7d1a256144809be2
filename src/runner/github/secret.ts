/**
 * A value that must never reach a log line, an error message or a command line: an installation token, a JIT
 * config. Every way a value is usually turned into text (String(), template literals, JSON.stringify, pino,
 * util.inspect, console.log) gives "[redacted]"; only `reveal()` gives the value, at the one place that sends it.
 */
import { inspect } from 'node:util';

const REDACTED = '[redacted]';

export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  /** The value itself, for the one place that must send it (an Authorization header, the guest's assignment). */
  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }

  [Symbol.toPrimitive](): string {
    return REDACTED;
  }
}
