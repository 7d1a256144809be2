/** Where virtio-mmio device n sits: 4 KiB at 0xC000_1000 + n·0x1000, on IRQ 5 + n (so at most 19 devices). */
import { IRQ_BASE, IRQ_MAX, MMIO_DEVICES_START, MMIO_DEVICE_SIZE } from '../../arch/x86_64/layout.ts';

export const MAX_VIRTIO_DEVICES = IRQ_MAX - IRQ_BASE + 1;

export function devicePlace(n: number): { base: number; irq: number } {
  if (!Number.isInteger(n) || n < 0 || n >= MAX_VIRTIO_DEVICES) throw new RangeError(`virtio device ${n} is outside 0-${MAX_VIRTIO_DEVICES - 1}`);
  return { base: MMIO_DEVICES_START + n * MMIO_DEVICE_SIZE, irq: IRQ_BASE + n };
}

/** `virtio_mmio.device=4K@0xc0001000:5 …` announcing `count` devices to a Linux guest. */
export function virtioCmdline(count: number): string {
  return Array.from({ length: count }, (_, n) => {
    const { base, irq } = devicePlace(n);
    return `virtio_mmio.device=4K@0x${base.toString(16)}:${irq}`;
  }).join(' ');
}
