/** What a device may ask of the VM around it, from the vCPU thread that is handling the access. */
export interface DeviceContext {
  /** Pulses an edge-triggered interrupt line of the in-kernel irqchip. */
  pulseIrq(irq: number): void;
  /** Asks the VM to stop (a guest reset or power-off). */
  requestStop(reason: 'reset' | 'shutdown'): void;
}
