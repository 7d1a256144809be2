/**
 * Built-in CPU templates.
 *
 * `T0` (alias `none`) changes nothing.
 *
 * `pvm-safe` hides XSAVE and every feature whose state or encoding depends on it (AVX, AVX2, AVX-512, FMA, F16C,
 * AMX, MPX, PKU, CET), removes leaf 0xD, and hides the instruction-set extensions newer than SSE3 (SSSE3, SSE4.1,
 * SSE4.2, POPCNT, MOVBE, AES, PCLMULQDQ, SHA, GFNI, BMI1/2, LZCNT, SSE4A, XOP, FMA4) plus CMPXCHG16B. On hosts
 * that emulate rather than execute some guest instructions, a stock distribution kernel otherwise picks
 * XSAVE-based context switching and SSE4/AVX code paths that the emulator fails on. SSE3 stays visible: every
 * x86_64 CPU since 2005 has it and hiding it gains nothing.
 */
import { ErrorCodes, MatchlockError } from '../../../errors.ts';
import type { CpuidModifier, CpuTemplate } from './cpu-template.ts';
import { bitmapOf } from './cpu-template.ts';

/** Leaf 1 ECX bits hidden by pvm-safe. */
export const PVM_SAFE_LEAF1_ECX = [
  1, // PCLMULQDQ
  9, // SSSE3
  12, // FMA
  13, // CMPXCHG16B
  19, // SSE4.1
  20, // SSE4.2
  22, // MOVBE
  23, // POPCNT
  25, // AES
  26, // XSAVE
  27, // OSXSAVE
  28, // AVX
  29, // F16C
] as const;

/** Leaf 7 subleaf 0 EBX: BMI1, AVX2, BMI2, MPX, AVX512F/DQ/IFMA/PF/ER/CD/SHA/BW/VL. */
export const PVM_SAFE_LEAF7_EBX = [3, 5, 8, 14, 16, 17, 21, 26, 27, 28, 29, 30, 31] as const;
/** Leaf 7 subleaf 0 ECX: AVX512_VBMI, PKU, OSPKE, AVX512_VBMI2, CET_SS, GFNI, VAES, VPCLMULQDQ, AVX512_VNNI/BITALG/VPOPCNTDQ. */
export const PVM_SAFE_LEAF7_ECX = [1, 3, 4, 6, 7, 8, 9, 10, 11, 12, 14] as const;
/** Leaf 7 subleaf 0 EDX: AVX512_4VNNIW/4FMAPS/VP2INTERSECT, CET_IBT, AMX_BF16, AVX512_FP16, AMX_TILE, AMX_INT8. */
export const PVM_SAFE_LEAF7_EDX = [2, 3, 8, 20, 22, 23, 24, 25] as const;
/** Leaf 7 subleaf 1 EAX: AVX_VNNI, AVX512_BF16, AMX_FP16, AVX_IFMA. */
export const PVM_SAFE_LEAF7_1_EAX = [4, 5, 21, 23] as const;
/** Leaf 0x80000001 ECX: ABM/LZCNT, SSE4A, XOP, FMA4. */
export const PVM_SAFE_EXT1_ECX = [5, 6, 11, 16] as const;

const ALL_ZERO = bitmapOf(Array.from({ length: 32 }, (_, i) => i));

function freeze(t: CpuTemplate): CpuTemplate {
  return Object.freeze({ name: t.name, cpuid: Object.freeze(t.cpuid.map((m) => Object.freeze({ ...m }))) });
}

const T0: CpuTemplate = freeze({ name: 'T0', cpuid: [] });

const leaf0xD: CpuidModifier[] = (['eax', 'ebx', 'ecx', 'edx'] as const).map((register) => ({ leaf: 0xd, register, bitmap: ALL_ZERO }));

const PVM_SAFE: CpuTemplate = freeze({
  name: 'pvm-safe',
  cpuid: [
    { leaf: 0x1, register: 'ecx', bitmap: bitmapOf(PVM_SAFE_LEAF1_ECX) },
    { leaf: 0x7, subleaf: 0, register: 'ebx', bitmap: bitmapOf(PVM_SAFE_LEAF7_EBX) },
    { leaf: 0x7, subleaf: 0, register: 'ecx', bitmap: bitmapOf(PVM_SAFE_LEAF7_ECX) },
    { leaf: 0x7, subleaf: 0, register: 'edx', bitmap: bitmapOf(PVM_SAFE_LEAF7_EDX) },
    { leaf: 0x7, subleaf: 1, register: 'eax', bitmap: bitmapOf(PVM_SAFE_LEAF7_1_EAX) },
    ...leaf0xD,
    { leaf: 0x8000_0001, register: 'ecx', bitmap: bitmapOf(PVM_SAFE_EXT1_ECX) },
  ],
});

const BUILTIN: ReadonlyMap<string, CpuTemplate> = new Map([
  ['T0', T0],
  ['none', T0],
  ['pvm-safe', PVM_SAFE],
]);

export const BUILTIN_CPU_TEMPLATE_NAMES: readonly string[] = [...BUILTIN.keys()];

/** A built-in template by name (`T0`/`none`, `pvm-safe`); throws MATCHLOCK_ERR_CPU_TEMPLATE for others. */
export function builtinCpuTemplate(name: string): CpuTemplate {
  const t = BUILTIN.get(name);
  if (!t) {
    throw new MatchlockError(
      ErrorCodes.CPU_TEMPLATE,
      `unknown CPU template "${name}"; built-in templates: ${BUILTIN_CPU_TEMPLATE_NAMES.join(', ')}`,
      { name },
    );
  }
  return t;
}
