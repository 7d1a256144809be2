import * as sys from '../sys/index.ts';
import { Bus } from './bus.ts';
import type { VirtioShared } from './virtio/device-protocol.ts';
import { VirtioMmioTransport } from './virtio/mmio-transport.ts';
import { VIRTIO_MMIO_SIZE } from './virtio/virtio-abi.ts';
import type { DeviceContext } from './device-context.ts';
import { COM1_BASE, Serial, UART_PORTS, createSerialShared, type SerialShared } from './serial.ts';
import { I8042, I8042_BASE, I8042_PORTS, createI8042Shared } from './i8042.ts';

/** The shared state of the devices, handed to every vCPU thread. */
export interface LegacyShared {
  readonly serial: SerialShared;
  readonly i8042: SharedArrayBuffer;
  readonly virtio: readonly VirtioShared[];
}

export function createLegacyShared(virtio: readonly VirtioShared[] = []): LegacyShared {
  return { serial: createSerialShared(), i8042: createI8042Shared(), virtio };
}

export interface Buses {
  readonly pio: Bus;
  readonly mmio: Bus;
}

/** The buses as one thread sees them: device objects over the shared state, acting through `ctx`. */
export function createBuses(shared: LegacyShared, ctx: DeviceContext): Buses {
  const pio = new Bus('pio');
  pio.insert(COM1_BASE, UART_PORTS, new Serial(shared.serial, ctx));
  pio.insert(I8042_BASE, I8042_PORTS, new I8042(shared.i8042, ctx));
  const mmio = new Bus('mmio');
  for (const v of shared.virtio) {
    mmio.insert(v.base, VIRTIO_MMIO_SIZE, new VirtioMmioTransport(v.info, v.transport, {
      notify: (q) => sys.signalEventFd(v.queueFds[q]!),
      activate: () => sys.signalEventFd(v.controlFd),
      reset: () => sys.signalEventFd(v.controlFd),
    }));
  }
  return { pio, mmio };
}
