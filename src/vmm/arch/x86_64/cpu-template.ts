/**
 * CPU templates: per-register CPUID bit overrides applied to the supported CPUID before normalisation.
 * A bitmap is 32 characters, most significant bit first: `x` keeps the bit, `0`/`1` force it. A leading `0b`
 * and `_` separators are allowed for readability.
 *
 * JSON shape: `{ "name": "...", "cpuid": [{ "leaf": 1 | "0x1", "subleaf"?: 0 | "0x0", "register": "ecx",
 * "bitmap": "xxxx0xxx..." }] }`. Without `subleaf`, a modifier applies to every subleaf of the leaf. Modifiers
 * for leaves the host does not report are ignored (a leaf cannot be invented by a template).
 */
import { ErrorCodes, MatchlockError } from '../../../errors.ts';
import type { KvmCpuidEntry } from '../../sys/kvm-types.ts';

export type CpuidRegister = 'eax' | 'ebx' | 'ecx' | 'edx';
export const CPUID_REGISTERS: readonly CpuidRegister[] = ['eax', 'ebx', 'ecx', 'edx'];

export interface CpuidModifier {
  readonly leaf: number;
  readonly subleaf?: number;
  readonly register: CpuidRegister;
  readonly bitmap: string;
}

export interface CpuTemplate {
  readonly name: string;
  readonly cpuid: readonly CpuidModifier[];
}

/** A parsed bitmap: bits set in `mask` are forced to their value in `value`. */
export interface ForcedBits {
  readonly mask: number;
  readonly value: number;
}

function templateError(message: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.CPU_TEMPLATE, message, details);
}

/** Parses a 32-digit bitmap; `where` names it in the error message. */
export function parseBitmap(bitmap: string, where = 'bitmap'): ForcedBits {
  const digits = bitmap.replace(/^0b/i, '').replaceAll('_', '');
  const bad = /[^01x]/i.exec(digits);
  if (bad) {
    throw templateError(`${where} "${bitmap}" has "${bad[0]}": use only 0, 1 or x (32 digits, MSB first)`, { bitmap });
  }
  if (digits.length !== 32) {
    throw templateError(`${where} "${bitmap}" has ${digits.length} digits; it needs exactly 32 of 0, 1 or x (MSB first)`, { bitmap });
  }
  let mask = 0;
  let value = 0;
  for (let i = 0; i < 32; i++) {
    const c = digits[i]!.toLowerCase();
    if (c === 'x') continue;
    const bit = 31 - i;
    mask = (mask | (1 << bit)) >>> 0;
    if (c === '1') value = (value | (1 << bit)) >>> 0;
  }
  return { mask, value };
}

/** A bitmap that forces `zero` bits to 0 and `one` bits to 1, keeping the rest. */
export function bitmapOf(zero: readonly number[], one: readonly number[] = []): string {
  const chars = new Array<string>(32).fill('x');
  for (const b of zero) chars[31 - b] = '0';
  for (const b of one) chars[31 - b] = '1';
  return chars.join('');
}

function parseU32(v: unknown, where: string): number {
  let n: number | undefined;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && /^(0x[0-9a-f]+|[0-9]+)$/i.test(v.trim())) n = Number(v.trim());
  if (n === undefined || !Number.isInteger(n) || n < 0 || n > 0xffff_ffff) {
    throw templateError(`${where} must be an integer from 0 to 0xffffffff (number or "0x..." string), got ${JSON.stringify(v)}`);
  }
  return n;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const TEMPLATE_KEYS = new Set(['name', 'cpuid']);
const MODIFIER_KEYS = new Set(['leaf', 'subleaf', 'register', 'bitmap']);

function checkKeys(obj: Record<string, unknown>, allowed: Set<string>, where: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.has(k)) throw templateError(`${where} has unknown key "${k}"; allowed: ${[...allowed].join(', ')}`);
  }
}

/** Validates a CPU template from parsed JSON (or a JSON string). Throws MATCHLOCK_ERR_CPU_TEMPLATE. */
export function parseCpuTemplate(json: unknown): CpuTemplate {
  let doc = json;
  if (typeof json === 'string') {
    try {
      doc = JSON.parse(json) as unknown;
    } catch (e) {
      throw templateError(`CPU template is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (!isRecord(doc)) throw templateError('CPU template must be a JSON object with "name" and "cpuid"');
  checkKeys(doc, TEMPLATE_KEYS, 'CPU template');
  const { name, cpuid } = doc;
  if (typeof name !== 'string' || name.trim() === '') throw templateError('CPU template needs a non-empty string "name"');
  if (!Array.isArray(cpuid)) throw templateError(`CPU template "${name}" needs a "cpuid" array of modifiers`);
  const modifiers = cpuid.map((m: unknown, i): CpuidModifier => {
    const where = `CPU template "${name}" cpuid[${i}]`;
    if (!isRecord(m)) throw templateError(`${where} must be an object with leaf, register and bitmap`);
    checkKeys(m, MODIFIER_KEYS, where);
    const leaf = parseU32(m['leaf'], `${where}.leaf`);
    const register = m['register'];
    if (typeof register !== 'string' || !(CPUID_REGISTERS as readonly string[]).includes(register)) {
      throw templateError(`${where}.register must be one of eax, ebx, ecx, edx, got ${JSON.stringify(register)}`);
    }
    const bitmap = m['bitmap'];
    if (typeof bitmap !== 'string') throw templateError(`${where}.bitmap must be a string of 32 digits 0, 1 or x`);
    parseBitmap(bitmap, `${where}.bitmap`);
    const base = { leaf, register: register as CpuidRegister, bitmap };
    return m['subleaf'] === undefined ? base : { ...base, subleaf: parseU32(m['subleaf'], `${where}.subleaf`) };
  });
  return { name, cpuid: modifiers };
}

/** Copies `entries` and applies the template's modifiers to the copies. */
export function applyCpuTemplate(entries: readonly KvmCpuidEntry[], template: CpuTemplate): KvmCpuidEntry[] {
  const out = entries.map((e) => ({ ...e }));
  for (const [i, m] of template.cpuid.entries()) {
    const { mask, value } = parseBitmap(m.bitmap, `CPU template "${template.name}" cpuid[${i}].bitmap`);
    for (const e of out) {
      if (e.function >>> 0 !== m.leaf >>> 0) continue;
      if (m.subleaf !== undefined && e.index >>> 0 !== m.subleaf >>> 0) continue;
      e[m.register] = ((e[m.register] & ~mask) | (value & mask)) >>> 0;
    }
  }
  return out;
}
