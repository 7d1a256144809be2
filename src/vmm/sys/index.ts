export * from './ioctl-numbers.ts';
export * from './kvm-abi.ts';
export * from './kvm-run.ts';
export * from './kvm-types.ts';
export * from './calls.ts';
export { errnoName } from './libc.ts';
export * from './events.ts';
export * from './tap.ts';
export * from './unix-socket.ts';
