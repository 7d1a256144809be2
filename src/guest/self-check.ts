/**
 * `matchlock-agent --self-check`: proves that the injected runtime works on an image's userland (run in a
 * chroot of the built tree at build time, and by tests): Node starts, our native calls load and answer, the
 * protocol's frames round-trip, and it says whether this kernel offers vsock (it need not, outside a VM).
 */
import { AF_VSOCK } from '../vmm/sys/index.ts';
import * as sys from '../vmm/sys/index.ts';
import { AGENT_VERSION } from './agent.ts';
import { encodeJsonFrame, FrameDecoder } from './frames.ts';
import { PROTOCOL_VERSION } from './messages.ts';

export interface SelfCheck {
  readonly ok: boolean;
  readonly agent: string;
  readonly protocol: number;
  readonly node: string;
  readonly nativeCalls: boolean;
  readonly frames: boolean;
  readonly vsock: boolean;
}

export function selfCheck(): SelfCheck {
  const nativeCalls = sys.getpid() === process.pid;
  const [frame] = new FrameDecoder().push(encodeJsonFrame('HELLO', { protocol: PROTOCOL_VERSION }));
  const frames = frame?.type === 'HELLO' && JSON.parse(frame.payload.toString()).protocol === PROTOCOL_VERSION;
  let vsock = false;
  try {
    sys.closeFd(sys.listenVsock(0xfffffff0 - (process.pid % 1000)));
    vsock = true;
  } catch {
    vsock = false;
  }
  return { ok: nativeCalls && frames, agent: AGENT_VERSION, protocol: PROTOCOL_VERSION, node: process.version, nativeCalls, frames, vsock: vsock && AF_VSOCK === 40 };
}
