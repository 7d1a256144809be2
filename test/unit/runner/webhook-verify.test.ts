/**
 * The signature check: GitHub's documented test vector and every fixture's signature over its exact bytes pass;
 * a changed byte, another secret, a re-serialised body, a SHA-1 or uppercase signature fail; the body must be
 * UTF-8 exactly as sent (a BOM is kept, so the bytes signed are the bytes checked).
 */
import test from 'ava';
import { ErrorCodes } from '../../../src/errors.ts';
import { createVerifier, decodeBody } from '../../../src/runner/webhook/index.ts';
import { payloadBytes, payloadIndex, sign, TEST_SECRET } from '../../helpers/webhook-payloads.ts';

const verify = createVerifier(TEST_SECRET);
const text = (b: Uint8Array): string => {
  const s = decodeBody(b);
  if (s === null) throw new Error('not UTF-8');
  return s;
};

test("GitHub's documented test vector", async (t) => {
  const v = payloadIndex.official_test_vector;
  t.true(await createVerifier(v.secret)(v.payload, v['X-Hub-Signature-256']));
  t.false(await createVerifier('another secret')(v.payload, v['X-Hub-Signature-256']));
});

test('every fixture verifies over its exact bytes with its indexed signature', async (t) => {
  t.is(payloadIndex.payloads.length, 18);
  for (const p of payloadIndex.payloads) t.true(await verify(text(payloadBytes(p.file)), p.x_hub_signature_256_with_test_secret), p.file);
});

test('a changed byte, another secret, a re-serialised body or another form of signature fails', async (t) => {
  const p = payloadIndex.payloads.find((x) => x.file === 'workflow_job.queued.json')!;
  const body = payloadBytes(p.file);
  const header = p.x_hub_signature_256_with_test_secret;
  const changed = Buffer.from(body);
  changed[100] = changed[100] === 0x61 ? 0x62 : 0x61;
  t.false(await verify(text(changed), header));
  t.false(await createVerifier('another secret')(text(body), header));
  t.false(await verify(JSON.stringify(JSON.parse(text(body))), header));
  t.false(await verify(text(body), header.replace('sha256=', 'sha1=')));
  t.false(await verify(text(body), header.toUpperCase().replace('SHA256=', 'sha256=')));
  t.false(await verify(text(body), `${header}0`));
  t.false(await verify(text(body), ''));
  t.false(await verify('', sign(TEST_SECRET, '')));
});

test('the body is decoded strictly: a BOM is kept, invalid UTF-8 is refused', async (t) => {
  const withBom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"zen":"ok"}')]);
  t.true(await verify(text(withBom), sign(TEST_SECRET, withBom)));
  t.false(await verify(text(withBom), sign(TEST_SECRET, withBom.subarray(3))));
  t.is(decodeBody(Buffer.from([0x7b, 0xff, 0x7d])), null);
  t.is(decodeBody(Buffer.from('{"é":1}')), '{"é":1}');
});

test('an empty secret is refused', (t) => {
  t.throws(() => createVerifier(''), { code: ErrorCodes.WEBHOOK, message: /webhook secret is empty/ });
});
