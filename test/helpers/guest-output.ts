/**
 * Parser for the test guest's serial output (test/guests/README.md, "Output contract"), shared by the QEMU
 * proof (test/integration/qemu-guest.test.ts) and the KVM boot tests, so both judge the guest by the same rules.
 *
 * Every complete line (ended by `\n`) is read; a trailing fragment without `\n` is kept in `partial`. Anything
 * that breaks the contract (a line that is not `mltest: ...`, a malformed report, BOOT/CMDLINE missing or not
 * first, lines after EXIT, EXIT without DONE) is listed in `errors`, so a test can assert `errors` is empty.
 */

export type BootPath = 'linux' | 'pvh';

export interface E820Entry {
  start: number;
  size: number;
  type: number;
}

/** [start, end): end exclusive, as the guest prints it. */
export interface MemRegion {
  start: number;
  end: number;
}

export interface MpTable {
  cpus: number;
  apicIds: number[];
  /** null for `ioapic=none`. */
  ioapic: { id: number; addr: number } | null;
}

export interface GuestOutput {
  /** From the first BOOT line; null if there was none. */
  boot: BootPath | null;
  /** How many BOOT lines appeared (more than one: the guest ran again, e.g. a reset that restarted it). */
  bootCount: number;
  /** The command line exactly as the guest received it (from the first CMDLINE line). */
  cmdline: string | null;
  /** Words of `ml.say=` tokens, in order (may be empty strings). */
  says: string[];
  e820: E820Entry[];
  /** The RAM line: the guest's own sum of the type-1 e820 sizes. */
  ram: number | null;
  /** Per-region memtest results. */
  mem: { ok: MemRegion[]; fail: number[]; skip: MemRegion[] };
  /** The MEMTEST summary line: `{ ok: true, regions: n }` for `MEMTEST OK n`, `{ ok: false, regions: null }` for FAIL. */
  memtest: { ok: boolean; regions: number | null } | null;
  /** Parsed `MPTABLE cpus=...`; null when absent or when the guest reported `none` / `BAD <reason>`. */
  mptable: MpTable | null;
  /** Text after `MPTABLE ` as printed (`cpus=...`, `none`, `BAD mpf-checksum`, ...), or null. */
  mptableRaw: string | null;
  /** N of each `PIO <N> done` line, in order. */
  pio: number[];
  /** Text after `VBLK ` of each virtio-blk report (`INFO sectors 8 ro 0`, `VERIFY 0 8 ok`, `ERROR …`), in order. */
  vblk: string[];
  /** Text after `VNET ` of each virtio-net report. */
  vnet: string[];
  /** Text after `VSOCK ` of each virtio-vsock report. */
  vsock: string[];
  /** Text after `AGENT ` of each report of the guest agent's protocol (`ml.vsock.agent`). */
  agent: string[];
  /** Tokens the guest reported as `UNKNOWN`. */
  unknown: string[];
  done: boolean;
  /** `<how>` of the EXIT line (`reset`, `triple`, `hang`, `debugexit=1`), or null. */
  exit: string | null;
  /** Every complete line, in order. */
  lines: string[];
  /** Text after the last `\n` (a line still being written, or cut off). */
  partial: string;
  /** Contract violations, in order of appearance; empty when the output is well formed. */
  errors: string[];
}

const PREFIX = 'mltest: ';
const HEX = '0x[0-9a-f]+';
const DEC = '[0-9]+';
const RE_E820 = new RegExp(`^E820 (${HEX}) (${HEX}) (${DEC})$`);
const RE_RAM = new RegExp(`^RAM (${DEC})$`);
const RE_MEM_OK = new RegExp(`^MEM OK (${HEX}) (${HEX})$`);
const RE_MEM_SKIP = new RegExp(`^MEM SKIP (${HEX}) (${HEX})$`);
const RE_MEM_FAIL = new RegExp(`^MEM FAIL (${HEX})$`);
const RE_MEMTEST_OK = new RegExp(`^MEMTEST OK (${DEC})$`);
const RE_MPTABLE = new RegExp(`^MPTABLE cpus=(${DEC}) apic_ids=((?:${DEC}(?:,${DEC})*)?) ioapic=(?:none|(${DEC})@(${HEX}))$`);
const RE_MPTABLE_BAD = /^MPTABLE BAD (mpf-checksum|default-config|no-config-table|pcmp-signature|pcmp-checksum|entry-type)$/;
const RE_PIO = new RegExp(`^PIO (${DEC}) done$`);
const RE_EXIT = /^EXIT (reset|triple|hang|debugexit=[0-9]+)$/;

/** Parses a number printed by the guest (`0x` hex or decimal); throws past 2^53 rather than lose precision. */
function num(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`number out of range: ${text}`);
  return n;
}

/** Capture group i of a match that the regex guarantees is present. */
function group(m: RegExpExecArray, i: number): string {
  const g = m[i];
  if (g === undefined) throw new Error(`regex group ${i} missing in "${m[0]}"`);
  return g;
}

/** Reports kept as lists of what follows their keyword, in order. */
const LISTED: readonly (readonly [string, 'says' | 'unknown' | 'vblk' | 'vnet' | 'vsock' | 'agent'])[] = [
  ['SAY ', 'says'], ['UNKNOWN ', 'unknown'], ['VBLK ', 'vblk'], ['VNET ', 'vnet'], ['VSOCK ', 'vsock'], ['AGENT ', 'agent'],
];

export function parseGuestOutput(text: string): GuestOutput {
  const out: GuestOutput = {
    boot: null,
    bootCount: 0,
    cmdline: null,
    says: [],
    e820: [],
    ram: null,
    mem: { ok: [], fail: [], skip: [] },
    memtest: null,
    mptable: null,
    mptableRaw: null,
    pio: [],
    vblk: [],
    vnet: [],
    vsock: [],
    agent: [],
    unknown: [],
    done: false,
    exit: null,
    lines: [],
    partial: '',
    errors: [],
  };
  const pieces = text.split('\n');
  out.partial = pieces.pop() ?? '';
  out.lines = pieces;

  pieces.forEach((line, index) => {
    const where = `line ${index + 1}`;
    const bad = (why: string): void => {
      out.errors.push(`${where}: ${why}: ${JSON.stringify(line)}`);
    };
    if (!line.startsWith(PREFIX)) {
      bad('not an "mltest: " line');
      return;
    }
    if (out.exit !== null) bad('output after the EXIT line');
    const body = line.slice(PREFIX.length);

    // Only the first two lines are positional; the rest may come in any order the tokens asked for.
    if (index === 0 && !body.startsWith('BOOT ')) bad('the first line is not BOOT');
    if (index === 1 && !body.startsWith('CMDLINE ')) bad('the second line is not CMDLINE');

    if (body.startsWith('BOOT ')) {
      const path = body.slice(5);
      out.bootCount++;
      if (path !== 'linux' && path !== 'pvh') bad('unknown boot path');
      else if (out.boot === null) out.boot = path;
      return;
    }
    if (body.startsWith('CMDLINE ')) {
      // the command line itself may contain anything but \n, so it is taken verbatim
      if (out.cmdline === null) out.cmdline = body.slice(8);
      return;
    }
    if (body === 'CMDLINE') {
      bad('CMDLINE without the separating space');
      return;
    }
    const list = LISTED.find(([prefix]) => body.startsWith(prefix));
    if (list !== undefined) {
      out[list[1]].push(body.slice(list[0].length));
      return;
    }
    if (body === 'DONE') {
      if (out.done) bad('a second DONE');
      out.done = true;
      return;
    }
    if (body.startsWith('MPTABLE ')) {
      if (out.mptableRaw !== null) bad('a second MPTABLE line');
      out.mptableRaw = body.slice(8);
    }
    try {
      let m: RegExpExecArray | null;
      if ((m = RE_E820.exec(body))) {
        out.e820.push({ start: num(group(m, 1)), size: num(group(m, 2)), type: num(group(m, 3)) });
      } else if ((m = RE_RAM.exec(body))) {
        out.ram = num(group(m, 1));
      } else if ((m = RE_MEM_OK.exec(body))) {
        out.mem.ok.push({ start: num(group(m, 1)), end: num(group(m, 2)) });
      } else if ((m = RE_MEM_SKIP.exec(body))) {
        out.mem.skip.push({ start: num(group(m, 1)), end: num(group(m, 2)) });
      } else if ((m = RE_MEM_FAIL.exec(body))) {
        out.mem.fail.push(num(group(m, 1)));
      } else if ((m = RE_MEMTEST_OK.exec(body))) {
        out.memtest = { ok: true, regions: num(group(m, 1)) };
      } else if (body === 'MEMTEST FAIL') {
        out.memtest = { ok: false, regions: null };
      } else if ((m = RE_MPTABLE.exec(body))) {
        const ids = group(m, 2);
        const ioId = m[3];
        const ioAddr = m[4];
        out.mptable = {
          cpus: num(group(m, 1)),
          apicIds: ids === '' ? [] : ids.split(',').map(num),
          ioapic: ioId !== undefined && ioAddr !== undefined ? { id: num(ioId), addr: num(ioAddr) } : null,
        };
      } else if (body === 'MPTABLE none' || RE_MPTABLE_BAD.test(body)) {
        // kept in mptableRaw only
      } else if ((m = RE_PIO.exec(body))) {
        out.pio.push(num(group(m, 1)));
      } else if ((m = RE_EXIT.exec(body))) {
        if (!out.done) bad('EXIT before DONE');
        out.exit = group(m, 1);
      } else {
        bad('malformed report');
      }
    } catch (e: unknown) {
      bad(e instanceof Error ? e.message : String(e));
    }
  });
  if (out.boot === null) out.errors.push('no BOOT line');
  if (out.cmdline === null) out.errors.push('no CMDLINE line');
  return out;
}

/** Sum of the sizes of the type-1 (RAM) entries: what the guest's RAM line must say. */
export function e820RamTotal(e820: readonly E820Entry[]): number {
  return e820.filter((e) => e.type === 1).reduce((sum, e) => sum + e.size, 0);
}

/**
 * What is wrong with the memory reports of one run with `ml.e820 ml.memtest` (empty when all is well): RAM must
 * equal the type-1 sum, type-1 entries must not overlap, each must be tested (MEM OK) or skipped exactly once
 * with its exact bounds, nothing may fail, and MEMTEST must say OK with the number of MEM OK lines.
 */
export function memoryProblems(out: GuestOutput): string[] {
  const problems: string[] = [];
  const ram = out.e820.filter((e) => e.type === 1);
  if (ram.length === 0) problems.push('no type-1 (RAM) e820 entry');
  if (out.ram !== e820RamTotal(out.e820)) problems.push(`RAM ${out.ram} != sum of type-1 e820 sizes ${e820RamTotal(out.e820)}`);
  const sorted = [...ram].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (prev !== undefined && cur !== undefined && prev.start + prev.size > cur.start) {
      problems.push(`e820 RAM entries overlap: 0x${prev.start.toString(16)}+0x${prev.size.toString(16)} and 0x${cur.start.toString(16)}`);
    }
  }
  const reported = [...out.mem.ok, ...out.mem.skip].map((r) => `${r.start}-${r.end}`);
  for (const e of ram) {
    const key = `${e.start}-${e.start + e.size}`;
    const n = reported.filter((k) => k === key).length;
    if (n !== 1 && out.mem.fail.length === 0) problems.push(`e820 RAM entry 0x${e.start.toString(16)}+0x${e.size.toString(16)} reported ${n} times by memtest`);
  }
  if (reported.length + out.mem.fail.length !== ram.length) {
    problems.push(`memtest reported ${reported.length + out.mem.fail.length} regions for ${ram.length} RAM entries`);
  }
  for (const a of out.mem.fail) problems.push(`MEM FAIL at 0x${a.toString(16)}`);
  if (out.memtest === null) problems.push('no MEMTEST line');
  else if (!out.memtest.ok) problems.push('MEMTEST FAIL');
  else if (out.memtest.regions !== out.mem.ok.length) {
    problems.push(`MEMTEST OK ${out.memtest.regions}, but ${out.mem.ok.length} MEM OK lines`);
  }
  return problems;
}
