/**
 * The virtio ABI as the spec (virtio 1.2) and Linux's headers spell it: virtio-mmio v2 registers
 * (linux/virtio_mmio.h), device status bits and reserved feature bits (linux/virtio_config.h), split-ring
 * layout (linux/virtio_ring.h) and the device IDs we implement.
 */

// --- virtio-mmio registers (offsets from the device's base) ---
export const VIRTIO_MMIO_MAGIC_VALUE = 0x000;
export const VIRTIO_MMIO_VERSION = 0x004;
export const VIRTIO_MMIO_DEVICE_ID = 0x008;
export const VIRTIO_MMIO_VENDOR_ID = 0x00c;
export const VIRTIO_MMIO_DEVICE_FEATURES = 0x010;
export const VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014;
export const VIRTIO_MMIO_DRIVER_FEATURES = 0x020;
export const VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024;
export const VIRTIO_MMIO_QUEUE_SEL = 0x030;
export const VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034;
export const VIRTIO_MMIO_QUEUE_NUM = 0x038;
export const VIRTIO_MMIO_QUEUE_READY = 0x044;
export const VIRTIO_MMIO_QUEUE_NOTIFY = 0x050;
export const VIRTIO_MMIO_INTERRUPT_STATUS = 0x060;
export const VIRTIO_MMIO_INTERRUPT_ACK = 0x064;
export const VIRTIO_MMIO_STATUS = 0x070;
export const VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080;
export const VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084;
export const VIRTIO_MMIO_QUEUE_AVAIL_LOW = 0x090;
export const VIRTIO_MMIO_QUEUE_AVAIL_HIGH = 0x094;
export const VIRTIO_MMIO_QUEUE_USED_LOW = 0x0a0;
export const VIRTIO_MMIO_QUEUE_USED_HIGH = 0x0a4;
export const VIRTIO_MMIO_SHM_SEL = 0x0ac;
export const VIRTIO_MMIO_SHM_LEN_LOW = 0x0b0;
export const VIRTIO_MMIO_SHM_LEN_HIGH = 0x0b4;
export const VIRTIO_MMIO_SHM_BASE_LOW = 0x0b8;
export const VIRTIO_MMIO_SHM_BASE_HIGH = 0x0bc;
export const VIRTIO_MMIO_QUEUE_RESET = 0x0c0;
export const VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc;
export const VIRTIO_MMIO_CONFIG = 0x100;
/** Each device's window: registers, then its configuration space up to the end of the page. */
export const VIRTIO_MMIO_SIZE = 0x1000;

export const VIRTIO_MMIO_MAGIC = 0x74726976; // "virt"
export const VIRTIO_MMIO_VERSION_MODERN = 2;
export const VIRTIO_MMIO_INT_VRING = 1 << 0;
export const VIRTIO_MMIO_INT_CONFIG = 1 << 1;

// --- device status (virtio_config.h) ---
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
export const VIRTIO_CONFIG_S_DRIVER = 2;
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
export const VIRTIO_CONFIG_S_NEEDS_RESET = 0x40;
export const VIRTIO_CONFIG_S_FAILED = 0x80;

// --- reserved feature bits ---
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_RING_F_EVENT_IDX = 29;
export const VIRTIO_F_VERSION_1 = 32;
export const VIRTIO_F_ACCESS_PLATFORM = 33;
export const VIRTIO_F_RING_PACKED = 34;
export const VIRTIO_F_IN_ORDER = 35;

// --- split virtqueue (virtio_ring.h) ---
export const VRING_DESC_F_NEXT = 1;
export const VRING_DESC_F_WRITE = 2;
export const VRING_DESC_F_INDIRECT = 4;
export const VRING_AVAIL_F_NO_INTERRUPT = 1;
export const VRING_USED_F_NO_NOTIFY = 1;
export const VRING_DESC_SIZE = 16;
export const VRING_USED_ELEM_SIZE = 8;
/** Alignment the spec requires of the descriptor table, the available ring and the used ring. */
export const VRING_DESC_ALIGN = 16;
export const VRING_AVAIL_ALIGN = 2;
export const VRING_USED_ALIGN = 4;
/** The largest queue a split ring may have. */
export const VIRTQ_MAX_SIZE = 32768;

// --- device IDs ---
export const VIRTIO_ID_NET = 1;
export const VIRTIO_ID_BLOCK = 2;
export const VIRTIO_ID_VSOCK = 19;

/** Bytes of the available ring for a queue of `size` (flags, idx, ring, used_event). */
export function availRingBytes(size: number): number {
  return 6 + 2 * size;
}

/** Bytes of the used ring for a queue of `size` (flags, idx, ring, avail_event). */
export function usedRingBytes(size: number): number {
  return 6 + VRING_USED_ELEM_SIZE * size;
}

/** `vring_need_event` from virtio_ring.h: whether moving the index from `old` to `next` crosses `event`. */
export function vringNeedEvent(event: number, next: number, old: number): boolean {
  return ((next - event - 1) & 0xffff) < ((next - old) & 0xffff);
}
