/**
 * The guest protocol's framing and message checks: both ends rely on them to survive a hostile peer.
 */
import test from 'ava';
import {
  encodeFrame, encodeJsonFrame, encodeOutput, FrameDecoder, FrameError, FROM_AGENT, FROM_HOST, MAX_FRAME, MAX_OUTPUT_CHUNK, readMessage,
} from '../../../src/guest/index.ts';

const ASSIGN = { protocol: 1, jobId: 'job-1', jitConfig: 'eyJh+/=', env: { A: '1' }, timeoutSeconds: 60, caches: [{ device: '/dev/vdb', path: '/cache' }] };

test('frames survive being cut at every byte', (t) => {
  const stream = Buffer.concat([encodeJsonFrame('HELLO', { protocol: 1, agent: 'a', state: 'idle' }), encodeFrame('STDOUT', Buffer.from('out')), encodeJsonFrame('ACK', {})]);
  for (let cut = 0; cut <= stream.length; cut++) {
    const d = new FrameDecoder();
    const frames = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
    t.deepEqual(frames.map((f) => f.type), ['HELLO', 'STDOUT', 'ACK'], `cut at ${cut}`);
    t.is(frames[1]!.payload.toString(), 'out');
    t.is(d.buffered, 0);
  }
});

test('one byte at a time, and many frames in one chunk', (t) => {
  const frames = Array.from({ length: 50 }, (_, i) => encodeFrame('STDERR', Buffer.from(`line ${i}\n`)));
  const all = Buffer.concat(frames);
  const d = new FrameDecoder();
  let got = 0;
  for (const b of all) got += d.push(Buffer.from([b])).length;
  t.is(got, 50);
  t.is(new FrameDecoder().push(all).length, 50);
});

test('a length of 0, over the limit, or an unknown type breaks the decoder for good', (t) => {
  const zero = Buffer.from([0, 0, 0, 0]);
  const huge = Buffer.alloc(4);
  huge.writeUInt32BE(MAX_FRAME + 1);
  const unknown = Buffer.from([0, 0, 0, 1, 99]);
  for (const [bad, msg] of [[zero, /length 0/], [huge, /length 1048577/], [unknown, /unknown frame type 99/]] as const) {
    const d = new FrameDecoder();
    t.throws(() => d.push(bad), { instanceOf: FrameError, message: msg });
    t.throws(() => d.push(encodeJsonFrame('ACK', {})), { instanceOf: FrameError }, 'stays broken');
  }
});

test('the decoder holds no more than one frame: an announced huge frame is refused before its bytes arrive', (t) => {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(0xffffffff);
  t.throws(() => new FrameDecoder().push(head), { instanceOf: FrameError });
});

test('output is cut into frames of at most 64 KiB; an oversized frame is never encoded', (t) => {
  const frames = encodeOutput('STDOUT', Buffer.alloc(MAX_OUTPUT_CHUNK * 2 + 5, 1));
  t.deepEqual(frames.map((f) => f.length - 5), [MAX_OUTPUT_CHUNK, MAX_OUTPUT_CHUNK, 5]);
  t.throws(() => encodeFrame('STDOUT', Buffer.alloc(MAX_FRAME)), { instanceOf: FrameError });
});

function frameOf(type: 'ASSIGN' | 'EXITED' | 'HELLO', body: unknown): ReturnType<FrameDecoder['push']>[number] {
  return new FrameDecoder().push(encodeFrame(type, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))))[0]!;
}

test('messages are checked by direction: the guest cannot send an ASSIGN, the host cannot send an EXITED', (t) => {
  t.deepEqual(readMessage(frameOf('ASSIGN', ASSIGN), FROM_HOST), ASSIGN);
  t.throws(() => readMessage(frameOf('ASSIGN', ASSIGN), FROM_AGENT), { message: /not expected/ });
  t.throws(() => readMessage(frameOf('EXITED', { code: 0, timedOut: false, cancelled: false, durationMs: 1, droppedBytes: 0 }), FROM_HOST), { message: /not expected/ });
});

test('bad bodies are refused naming the field', (t) => {
  const bad: [unknown, RegExp][] = [
    ['{not json', /not JSON/],
    [[], /must be a JSON object/],
    [{ ...ASSIGN, extra: 1 }, /unknown field "extra"/],
    [{ ...ASSIGN, jobId: '../x' }, /ASSIGN.jobId is not of the form/],
    [{ ...ASSIGN, jitConfig: 'a b' }, /ASSIGN.jitConfig is not of the form/],
    [{ ...ASSIGN, env: { 'A=B': 'x' } }, /ASSIGN.env: the name "A=B"/],
    [{ ...ASSIGN, env: { A: 1 } }, /ASSIGN.env.A must be a string/],
    [{ ...ASSIGN, timeoutSeconds: 0 }, /timeoutSeconds 0 is out of range/],
    [{ ...ASSIGN, caches: [{ device: '/dev/sda', path: '/c' }] }, /caches\[0\].device/],
    [{ ...ASSIGN, caches: [{ device: '/dev/vdb', path: '/c/../etc' }] }, /caches\[0\].path/],
    [{ ...ASSIGN, caches: Array(9).fill({ device: '/dev/vdb', path: '/c' }) }, /9 items, over 8/],
  ];
  for (const [body, msg] of bad) t.throws(() => readMessage(frameOf('ASSIGN', body), FROM_HOST), { instanceOf: FrameError, message: msg }, JSON.stringify(body).slice(0, 60));
});

test('an EXITED has a code or a signal, not both and not neither', (t) => {
  const base = { timedOut: false, cancelled: false, durationMs: 5, droppedBytes: 0 };
  t.notThrows(() => readMessage(frameOf('EXITED', { ...base, code: 3 }), FROM_AGENT));
  t.notThrows(() => readMessage(frameOf('EXITED', { ...base, code: null, signal: 'SIGKILL' }), FROM_AGENT));
  t.throws(() => readMessage(frameOf('EXITED', { ...base, code: null }), FROM_AGENT), { message: /either a code or a signal/ });
  t.throws(() => readMessage(frameOf('EXITED', { ...base, code: 1, signal: 'SIGTERM' }), FROM_AGENT), { message: /either a code or a signal/ });
  t.throws(() => readMessage(frameOf('EXITED', { ...base, code: 256 }), FROM_AGENT), { message: /out of range/ });
  t.throws(() => readMessage(frameOf('HELLO', { protocol: 1, agent: 'x', state: 'bored' }), FROM_AGENT), { message: /HELLO.state/ });
});
