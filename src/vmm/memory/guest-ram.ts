import { ramRegions, MiB } from '../arch/x86_64/layout.ts';
import * as sys from '../sys/index.ts';
import { GuestMemory } from './guest-memory.ts';

/** Guest RAM backed by anonymous host mappings (no swap reserved; pages appear as the guest touches them). */
export class GuestRam implements Disposable {
  readonly memory: GuestMemory;
  readonly #mappings: sys.Mapping[];

  private constructor(memory: GuestMemory, mappings: sys.Mapping[]) {
    this.memory = memory;
    this.#mappings = mappings;
  }

  static map(memMib: number): GuestRam {
    const mappings: sys.Mapping[] = [];
    try {
      const regions = ramRegions(memMib * MiB).map((r) => {
        const m = sys.mapAnonymous(r.size);
        mappings.push(m);
        return { gpa: r.gpa, size: r.size, bytes: m.bytes, hostAddress: m.address };
      });
      return new GuestRam(new GuestMemory(regions), mappings);
    } catch (e: unknown) {
      for (const m of mappings) sys.unmap(m.address, m.size);
      throw e;
    }
  }

  /** Unmaps the RAM. Views of it must not be used afterwards. */
  [Symbol.dispose](): void {
    for (const m of this.#mappings.splice(0)) sys.unmap(m.address, m.size);
  }
}
