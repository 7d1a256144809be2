/** What the virtio device thread is started with, and what it says back. */
import type { OpenedDrive } from './blk/disk.ts';
import type { BlkLimits } from './blk/blk-device.ts';
import type { VirtioDeviceInfo } from './mmio-transport.ts';
import type { Tap } from '../../sys/index.ts';

export interface RegionData {
  readonly gpa: number;
  readonly size: number;
  readonly hostAddress: bigint;
}

export interface BlkDeviceData {
  readonly kind: 'blk';
  readonly drive: OpenedDrive;
  readonly limits: BlkLimits;
}

export interface NetDeviceData {
  readonly kind: 'net';
  readonly tap: Tap;
}

export interface VsockDeviceData {
  readonly kind: 'vsock';
  readonly guestCid: number;
  readonly listenFd: number;
  readonly udsPath: string;
}

export type BackendData = BlkDeviceData | NetDeviceData | VsockDeviceData;

/** One device as every thread needs it: its registers, its queue eventfds and where it sits. */
export interface VirtioShared {
  readonly info: VirtioDeviceInfo;
  readonly base: number;
  readonly irq: number;
  readonly transport: SharedArrayBuffer;
  /** One eventfd per queue: KVM signals it on QueueNotify (ioeventfd); the transport does for other writes. */
  readonly queueFds: readonly number[];
  /** Signalled when the driver sets DRIVER_OK or resets the device, and when the host stops the thread. */
  readonly controlFd: number;
}

export interface DeviceWorkerData {
  readonly regions: readonly RegionData[];
  readonly devices: readonly (VirtioShared & { readonly irqFd: number; readonly backend: BackendData })[];
  readonly controlFd: number;
  /** Int32Array words: [CONTROL_STOP] = the host wants the thread to end; [CONTROL_COUNTERS] = it wants the counters now. */
  readonly control: SharedArrayBuffer;
}

export const CONTROL_STOP = 0;
export const CONTROL_COUNTERS = 1;
export const CONTROL_WORDS = 2;

export type DeviceMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'guest-fault'; readonly device: string; readonly message: string; readonly count: number }
  | { readonly type: 'device-failed'; readonly device: string; readonly message: string }
  | { readonly type: 'counters'; readonly counters: Readonly<Record<string, Readonly<Record<string, number>>>> }
  | { readonly type: 'stopped'; readonly counters: Readonly<Record<string, Readonly<Record<string, number>>>> };
