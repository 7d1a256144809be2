import type { BusDevice } from './bus.ts';
import type { DeviceContext } from './device-context.ts';
import { SharedLock } from './shared-lock.ts';

/** The PS/2 controller's ports: data at 0x60, status/command at 0x64. */
export const I8042_BASE = 0x60;
export const I8042_PORTS = 5;
export const I8042_KBD_IRQ = 1;

const DATA = 0;
const COMMAND = 4;

const SB_OUT_FULL = 0x01;
const SB_SYSTEM_FLAG = 0x04;
const SB_LAST_WAS_COMMAND = 0x08;
const SB_KBD_ENABLED = 0x10;

const CMD_READ_CTR = 0x20;
const CMD_WRITE_CTR = 0x60;
const CMD_DISABLE_AUX = 0xa7;
const CMD_ENABLE_AUX = 0xa8;
const CMD_SELF_TEST = 0xaa;
const CMD_KBD_TEST = 0xab;
const CMD_DISABLE_KBD = 0xad;
const CMD_ENABLE_KBD = 0xae;
const CMD_READ_OUTP = 0xd0;
const CMD_WRITE_OUTP = 0xd1;
const CMD_RESET_CPU = 0xfe;

const CTR_KBD_INT = 0x01;
const KBD_ACK = 0xfa;

const S_LOCK = 0;
const S_STATUS = 1;
const S_CTR = 2;
const S_OUTP = 3;
const S_PENDING_CMD = 4;
const S_BUF_LEN = 5;
const S_BUF = 6; // a small output queue of bytes for the guest
const BUF_MAX = 16;
const S_WORDS = S_BUF + BUF_MAX;

export function createI8042Shared(): SharedArrayBuffer {
  const buf = new SharedArrayBuffer(S_WORDS * 4);
  const s = new Int32Array(buf);
  s[S_STATUS] = SB_SYSTEM_FLAG | SB_KBD_ENABLED;
  s[S_CTR] = CTR_KBD_INT;
  return buf;
}

/**
 * A partial i8042: enough for Linux to probe it, and the CPU reset command (0xFE) that stops the VM, as
 * `reboot=k` does. Scancodes can be queued by the host (SendCtrlAltDel).
 */
export class I8042 implements BusDevice {
  readonly name = 'i8042';
  readonly #s: Int32Array;
  readonly #lock: SharedLock;
  readonly #ctx: DeviceContext;

  constructor(shared: SharedArrayBuffer, ctx: DeviceContext) {
    this.#s = new Int32Array(shared);
    this.#lock = new SharedLock(this.#s, S_LOCK);
    this.#ctx = ctx;
  }

  read(offset: number, data: Uint8Array): void {
    if (data.length !== 1 || (offset !== DATA && offset !== COMMAND)) {
      data.fill(0xff);
      return;
    }
    data[0] = this.#lock.with(() => (offset === COMMAND ? this.#s[S_STATUS]! : this.#pop()));
  }

  write(offset: number, data: Uint8Array): void {
    if (data.length !== 1) return;
    const value = data[0]!;
    const effect = this.#lock.with(() => (offset === COMMAND ? this.#command(value) : offset === DATA ? this.#data(value) : 'none'));
    if (effect === 'reset') this.#ctx.requestStop('reset');
    else if (effect === 'irq') this.#ctx.pulseIrq(I8042_KBD_IRQ);
  }

  /** Queues bytes for the guest to read from the data port (from the host thread); returns true if an IRQ is due. */
  queue(bytes: readonly number[]): boolean {
    return this.#lock.with(() => bytes.map((b) => this.#push(b)).some(Boolean));
  }

  #push(byte: number): boolean {
    const s = this.#s;
    const n = s[S_BUF_LEN]!;
    if (n >= BUF_MAX) return false;
    s[S_BUF + n] = byte;
    s[S_BUF_LEN] = n + 1;
    s[S_STATUS] = s[S_STATUS]! | SB_OUT_FULL;
    return (s[S_CTR]! & CTR_KBD_INT) !== 0;
  }

  #pop(): number {
    const s = this.#s;
    const n = s[S_BUF_LEN]!;
    if (n === 0) return 0;
    const b = s[S_BUF]!;
    for (let i = 1; i < n; i++) s[S_BUF + i - 1] = s[S_BUF + i]!;
    s[S_BUF_LEN] = n - 1;
    if (n === 1) s[S_STATUS] = s[S_STATUS]! & ~SB_OUT_FULL;
    return b;
  }

  #command(cmd: number): 'none' | 'irq' | 'reset' {
    const s = this.#s;
    s[S_STATUS] = s[S_STATUS]! | SB_LAST_WAS_COMMAND;
    switch (cmd) {
      case CMD_RESET_CPU:
        return 'reset';
      case CMD_READ_CTR:
        return this.#push(s[S_CTR]!) ? 'irq' : 'none';
      case CMD_WRITE_CTR:
      case CMD_WRITE_OUTP:
        s[S_PENDING_CMD] = cmd;
        return 'none';
      case CMD_READ_OUTP:
        return this.#push(s[S_OUTP]!) ? 'irq' : 'none';
      case CMD_SELF_TEST:
        return this.#push(0x55) ? 'irq' : 'none';
      case CMD_KBD_TEST:
        return this.#push(0x00) ? 'irq' : 'none';
      case CMD_DISABLE_KBD:
        s[S_STATUS] = s[S_STATUS]! & ~SB_KBD_ENABLED;
        return 'none';
      case CMD_ENABLE_KBD:
        s[S_STATUS] = s[S_STATUS]! | SB_KBD_ENABLED;
        return 'none';
      case CMD_DISABLE_AUX:
      case CMD_ENABLE_AUX:
      default:
        return 'none';
    }
  }

  #data(value: number): 'none' | 'irq' | 'reset' {
    const s = this.#s;
    s[S_STATUS] = s[S_STATUS]! & ~SB_LAST_WAS_COMMAND;
    const pending = s[S_PENDING_CMD]!;
    s[S_PENDING_CMD] = 0;
    if (pending === CMD_WRITE_CTR) {
      s[S_CTR] = value;
      return 'none';
    }
    if (pending === CMD_WRITE_OUTP) {
      s[S_OUTP] = value;
      // Output port bit 0 low pulls the CPU reset line.
      return (value & 1) === 0 ? 'reset' : 'none';
    }
    // A command to the keyboard itself: acknowledge it; a keyboard reset also reports its self-test passed.
    const irq = this.#push(KBD_ACK);
    if (value === 0xff) this.#push(0xaa);
    return irq ? 'irq' : 'none';
  }
}
