import type { BusDevice } from './bus.ts';
import type { DeviceContext } from './device-context.ts';
import { ByteRing } from './byte-ring.ts';
import { SharedLock } from './shared-lock.ts';

/** COM1 on a PC. */
export const COM1_BASE = 0x3f8;
export const COM1_IRQ = 4;
export const UART_PORTS = 8;

// Register offsets (with DLAB clear unless noted).
const UART_RX = 0; // in: receive buffer; out: transmit holding (DLAB=0)
const UART_IER = 1;
const UART_IIR = 2; // in: interrupt id; out: FIFO control
const UART_LCR = 3;
const UART_MCR = 4;
const UART_LSR = 5;
const UART_MSR = 6;
const UART_SCR = 7;

const LCR_DLAB = 0x80;
const IER_RDI = 0x01;
const IER_THRI = 0x02;
const IIR_NO_INT = 0x01;
const IIR_THRI = 0x02;
const IIR_RDI = 0x04;
const IIR_FIFO_ENABLED = 0xc0;
const LSR_DR = 0x01;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
const MCR_LOOP = 0x10;
const MSR_DEFAULT = 0xb0; // DCD, DSR, CTS

// Indices in the shared state words.
const S_LOCK = 0;
const S_IER = 1;
const S_LCR = 2;
const S_MCR = 3;
const S_SCR = 4;
const S_DLL = 5;
const S_DLM = 6;
const S_THR_PENDING = 7;
const S_FCR = 8;
const S_WORDS = 9;

/** The shared parts of a UART: register state and the byte rings to and from the host. */
export interface SerialShared {
  readonly state: SharedArrayBuffer;
  readonly output: SharedArrayBuffer;
  readonly input: SharedArrayBuffer;
}

export function createSerialShared(outputCapacity = 64 * 1024, inputCapacity = 4096): SerialShared {
  const state = new SharedArrayBuffer(S_WORDS * 4);
  const words = new Int32Array(state);
  words[S_DLL] = 12; // 9600 baud, as firmware leaves it
  return { state, output: new ByteRing(outputCapacity).buffer, input: new ByteRing(inputCapacity).buffer };
}

/**
 * An 8250/16550A UART. Transmitted bytes go to the output ring at once (the transmitter is always empty);
 * received bytes come from the input ring. State is shared, so any vCPU thread may run the device.
 */
export class Serial implements BusDevice {
  readonly name = 'serial';
  readonly #s: Int32Array;
  readonly #lock: SharedLock;
  readonly #out: ByteRing;
  readonly #in: ByteRing;
  readonly #ctx: DeviceContext;
  readonly #irq: number;

  constructor(shared: SerialShared, ctx: DeviceContext, irq = COM1_IRQ) {
    this.#s = new Int32Array(shared.state);
    this.#lock = new SharedLock(this.#s, S_LOCK);
    this.#out = new ByteRing(shared.output);
    this.#in = new ByteRing(shared.input);
    this.#ctx = ctx;
    this.#irq = irq;
  }

  read(offset: number, data: Uint8Array): void {
    if (data.length !== 1) {
      data.fill(0xff);
      return;
    }
    data[0] = this.#lock.with(() => this.#readReg(offset));
  }

  write(offset: number, data: Uint8Array): void {
    if (data.length !== 1) return;
    const value = data[0]!;
    const irq = this.#lock.with(() => this.#writeReg(offset, value));
    if (irq) this.#ctx.pulseIrq(this.#irq);
  }

  /**
   * Host side: bytes typed at the console. They wait in the input ring (bytes beyond its room are dropped and
   * counted); the receive interrupt fires when the guest enabled it.
   */
  receive(bytes: Uint8Array): void {
    const irq = this.#lock.with(() => {
      for (const b of bytes) this.#in.pushByte(b, 0);
      return (this.#s[S_IER]! & IER_RDI) !== 0;
    });
    if (irq) this.#ctx.pulseIrq(this.#irq);
  }

  #dlab(): boolean {
    return (this.#s[S_LCR]! & LCR_DLAB) !== 0;
  }

  #dataReady(): boolean {
    return this.#in.length > 0;
  }

  #readReg(offset: number): number {
    const s = this.#s;
    switch (offset) {
      case UART_RX: {
        if (this.#dlab()) return s[S_DLL]!;
        const b = this.#in.pullByte();
        return b < 0 ? 0 : b;
      }
      case UART_IER:
        return this.#dlab() ? s[S_DLM]! : s[S_IER]!;
      case UART_IIR: {
        const fifo = (s[S_FCR]! & 1) !== 0 ? IIR_FIFO_ENABLED : 0;
        if ((s[S_IER]! & IER_RDI) !== 0 && this.#dataReady()) return IIR_RDI | fifo;
        if ((s[S_IER]! & IER_THRI) !== 0 && s[S_THR_PENDING] === 1) {
          s[S_THR_PENDING] = 0; // reading IIR acknowledges a THR-empty interrupt
          return IIR_THRI | fifo;
        }
        return IIR_NO_INT | fifo;
      }
      case UART_LCR:
        return s[S_LCR]!;
      case UART_MCR:
        return s[S_MCR]!;
      case UART_LSR:
        return LSR_THRE | LSR_TEMT | (this.#dataReady() ? LSR_DR : 0);
      case UART_MSR: {
        const mcr = s[S_MCR]!;
        if ((mcr & MCR_LOOP) === 0) return MSR_DEFAULT;
        // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
        return ((mcr & 0x01) << 5) | ((mcr & 0x02) << 3) | ((mcr & 0x04) << 4) | ((mcr & 0x08) << 4);
      }
      case UART_SCR:
        return s[S_SCR]!;
      default:
        return 0xff;
    }
  }

  /** Returns true when the write raises the interrupt line. */
  #writeReg(offset: number, value: number): boolean {
    const s = this.#s;
    switch (offset) {
      case UART_RX:
        if (this.#dlab()) {
          s[S_DLL] = value;
          return false;
        }
        if ((s[S_MCR]! & MCR_LOOP) !== 0) this.#in.pushByte(value, 0);
        else this.#out.pushByte(value);
        s[S_THR_PENDING] = 1;
        return (s[S_IER]! & IER_THRI) !== 0;
      case UART_IER:
        if (this.#dlab()) {
          s[S_DLM] = value;
          return false;
        }
        s[S_IER] = value & 0x0f;
        // Enabling the THR-empty interrupt with an empty transmitter raises it at once, as on hardware.
        if ((value & IER_THRI) !== 0) {
          s[S_THR_PENDING] = 1;
          return true;
        }
        return false;
      case UART_IIR:
        s[S_FCR] = value;
        return false;
      case UART_LCR:
        s[S_LCR] = value;
        return false;
      case UART_MCR:
        s[S_MCR] = value & 0x1f;
        return false;
      case UART_SCR:
        s[S_SCR] = value;
        return false;
      default:
        return false;
    }
  }
}
