/** `--vsock cid=N,uds=PATH`, parsed and checked (the socket is made later). */
import { ErrorCodes, MatchlockError } from '../errors.ts';

export interface VsockSpec {
  readonly cid: number;
  readonly uds: string;
}

function vsockSpecError(spec: string, why: string): MatchlockError {
  return new MatchlockError(ErrorCodes.CONFIG, `--vsock ${JSON.stringify(spec)}: ${why}`, { vsock: spec });
}

export function parseVsockSpec(spec: string): VsockSpec {
  let cid: number | null = null;
  let uds: string | null = null;
  for (const o of spec.split(',')) {
    if (o.startsWith('cid=')) {
      cid = /^\d{1,10}$/.test(o.slice(4)) ? Number(o.slice(4)) : Number.NaN;
      if (!(cid >= 3 && cid < 0xffffffff)) throw vsockSpecError(spec, 'cid= must be 3 to 4294967294 (0-2 are reserved, 2 is the host)');
    } else if (o.startsWith('uds=') && o.length > 4) {
      uds = o.slice(4);
    } else {
      throw vsockSpecError(spec, `unknown option ${JSON.stringify(o)} (known: cid=N, uds=PATH)`);
    }
  }
  if (cid === null || uds === null) throw vsockSpecError(spec, 'give both cid=N and uds=PATH');
  return Object.freeze({ cid, uds });
}
