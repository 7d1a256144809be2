export * from './virtio-abi.ts';
export { SplitQueue, layoutProblem, driverError, MAX_INDIRECT_DESCRIPTORS, type ChainBuffer, type DescriptorChain, type QueueFeatures, type QueueLayout } from './queue.ts';
export { TransportState, createTransportShared, MAX_QUEUES, type ActiveConfig } from './transport-state.ts';
export { VirtioMmioTransport, offeredFeatures, type TransportCounters, type VirtioDeviceInfo, type VirtioTransportEvents } from './mmio-transport.ts';
