/** x86_64 boot architecture: memory layout, boot data structures and initial vCPU state. */
export * from './layout.ts';
export * from './e820.ts';
export * from './boot-params.ts';
export * from './pvh.ts';
export * from './mptable.ts';
export * from './gdt.ts';
export * from './page-tables.ts';
export * from './regs.ts';
export * from './msr.ts';
export * from './cpu-template.ts';
export * from './builtin-cpu-templates.ts';
export * from './cpuid.ts';
