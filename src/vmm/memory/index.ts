export { GuestMemory } from './guest-memory.ts';
export type { MemoryRegion } from './guest-memory.ts';
export { GuestRam } from './guest-ram.ts';
