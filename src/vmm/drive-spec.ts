/**
 * `--drive path[,ro][,cow=OVERLAY][,id=SERIAL][,bps=RATE][,iops=N]`, parsed and checked (the files are opened
 * later). RATE is bytes a second, with an optional K, M or G (powers of 1024).
 */
import { ErrorCodes, MatchlockError } from '../errors.ts';
import type { DriveSpec } from './devices/virtio/blk/disk.ts';

const MAX_ID_BYTES = 20;

function driveSpecError(spec: string, why: string): MatchlockError {
  return new MatchlockError(ErrorCodes.CONFIG, `--drive ${JSON.stringify(spec)}: ${why}`, { drive: spec });
}

export function parseDriveSpec(spec: string): DriveSpec {
  const [path, ...options] = spec.split(',');
  if (!path) throw driveSpecError(spec, 'no image path: give --drive PATH[,ro][,cow=OVERLAY][,id=SERIAL]');
  let readOnly = false;
  let overlay: string | null = null;
  let id: string | null = null;
  let bytesPerSec: number | null = null;
  let opsPerSec: number | null = null;
  for (const o of options) {
    if (o === 'ro') readOnly = true;
    else if (o.startsWith('bps=')) bytesPerSec = rate(spec, o.slice(4), 'bps', true);
    else if (o.startsWith('iops=')) opsPerSec = rate(spec, o.slice(5), 'iops', false);
    else if (o.startsWith('cow=') && o.length > 4) overlay = o.slice(4);
    else if (o.startsWith('id=') && o.length > 3) id = o.slice(3);
    else throw driveSpecError(spec, `unknown option ${JSON.stringify(o)} (known: ro, cow=OVERLAY, id=SERIAL, bps=RATE, iops=N)`);
  }
  if (readOnly && overlay !== null) throw driveSpecError(spec, 'ro and cow= together: a copy-on-write drive is writable, its base is never written');
  if (id !== null && (!/^[\x20-\x7e]+$/.test(id) || id.length > MAX_ID_BYTES)) {
    throw driveSpecError(spec, `id must be 1 to ${MAX_ID_BYTES} printable ASCII characters`);
  }
  return Object.freeze({ path, readOnly, overlay, id, bytesPerSec, opsPerSec });
}

const UNITS: Readonly<Record<string, number>> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

function rate(spec: string, text: string, what: string, units: boolean): number {
  const m = (units ? /^(\d{1,12})([KMG]?)$/ : /^(\d{1,12})()$/).exec(text);
  const v = m === null ? 0 : Number(m[1]) * UNITS[m[2]!]!;
  if (!(v > 0)) throw driveSpecError(spec, `${what}= must be a positive whole number${units ? ' with an optional K, M or G' : ''}`);
  return v;
}
