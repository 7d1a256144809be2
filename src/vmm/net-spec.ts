/** `--net tap=NAME[,mac=XX:XX:XX:XX:XX:XX][,mtu=N]`, parsed and checked (the TAP is opened later). */
import { createHash } from 'node:crypto';
import { ErrorCodes, MatchlockError } from '../errors.ts';

export interface NetSpec {
  readonly tap: string;
  readonly mac: Uint8Array;
  readonly mtu: number | null;
}

function netSpecError(spec: string, why: string): MatchlockError {
  return new MatchlockError(ErrorCodes.CONFIG, `--net ${JSON.stringify(spec)}: ${why}`, { net: spec });
}

/** A stable, locally administered unicast MAC for a TAP name (06:xx:xx:xx:xx:xx). */
export function defaultMac(tap: string): Uint8Array {
  const mac = createHash('sha256').update(`matchlock-net:${tap}`).digest().subarray(0, 6);
  mac[0] = 0x06;
  return Uint8Array.from(mac);
}

/** Why `name` cannot name a TAP interface, or null when it can. */
export function tapNameProblem(name: string): string | null {
  return /^[A-Za-z0-9_.-]{1,15}$/.test(name) ? null : 'must name an interface: 1 to 15 letters, digits, "_", "." or "-"';
}

/** A unicast MAC from `xx:xx:xx:xx:xx:xx`, or why it is not one. */
export function parseMac(text: string): Uint8Array | string {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) return 'must be six hex bytes separated by ":"';
  const mac = Uint8Array.from(text.split(':').map((h) => parseInt(h, 16)));
  if ((mac[0]! & 1) !== 0) return 'is a multicast address: its first byte must be even';
  return mac;
}

export function parseNetSpec(spec: string): NetSpec {
  let tap: string | null = null;
  let mac: Uint8Array | null = null;
  let mtu: number | null = null;
  for (const o of spec.split(',')) {
    const eq = o.indexOf('=');
    const key = eq < 0 ? o : o.slice(0, eq);
    const value = eq < 0 ? '' : o.slice(eq + 1);
    if (key === 'tap') {
      const problem = tapNameProblem(value);
      if (problem !== null) throw netSpecError(spec, `tap= ${problem}`);
      tap = value;
    } else if (key === 'mac') {
      const parsed = parseMac(value);
      if (typeof parsed === 'string') throw netSpecError(spec, `mac= ${parsed}`);
      mac = parsed;
    } else if (key === 'mtu') {
      mtu = /^\d+$/.test(value) ? Number(value) : Number.NaN;
      if (!(mtu >= 68 && mtu <= 65535)) throw netSpecError(spec, 'mtu= must be 68 to 65535');
    } else throw netSpecError(spec, `unknown option ${JSON.stringify(o)} (known: tap=NAME, mac=XX:XX:XX:XX:XX:XX, mtu=N)`);
  }
  if (tap === null) throw netSpecError(spec, 'no tap=NAME');
  return Object.freeze({ tap, mac: mac ?? defaultMac(tap), mtu });
}
