export { Bus, type BusDevice } from './bus.ts';
export { ByteRing } from './byte-ring.ts';
export type { DeviceContext } from './device-context.ts';
export { Serial, COM1_BASE, COM1_IRQ, createSerialShared, type SerialShared } from './serial.ts';
export { I8042, I8042_BASE, I8042_KBD_IRQ, createI8042Shared } from './i8042.ts';
export { createBuses, createLegacyShared, type Buses, type LegacyShared } from './legacy.ts';
