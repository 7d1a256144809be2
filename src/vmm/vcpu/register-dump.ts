import type { KvmRegs, KvmSregs } from '../sys/index.ts';
import { KVM_REGS_FIELDS } from '../sys/index.ts';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** A compact, greppable dump of a vCPU's state for failure logs. */
export function formatRegisters(regs: KvmRegs, sregs: KvmSregs): string {
  const gp = KVM_REGS_FIELDS.map((f) => `${f}=${hex(regs[f])}`).join(' ');
  const cr = `cr0=${hex(sregs.cr0)} cr2=${hex(sregs.cr2)} cr3=${hex(sregs.cr3)} cr4=${hex(sregs.cr4)} efer=${hex(sregs.efer)}`;
  const seg = (['cs', 'ss', 'ds', 'tr'] as const)
    .map((n) => `${n}=${sregs[n].selector.toString(16)}/${hex(sregs[n].base)}/l${sregs[n].l}/dpl${sregs[n].dpl}`)
    .join(' ');
  const tables = `gdt=${hex(sregs.gdt.base)}/${sregs.gdt.limit} idt=${hex(sregs.idt.base)}/${sregs.idt.limit}`;
  return `${gp} ${cr} ${seg} ${tables}`;
}
