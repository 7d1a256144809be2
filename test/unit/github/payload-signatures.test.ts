/**
 * The webhook fixtures are what their index says they are (bytes, SHA-256), and the X-Hub-Signature-256 values
 * in the index are GitHub's scheme (HMAC-SHA256 of the raw body with the secret, hex, `sha256=` prefix), checked
 * with node:crypto against GitHub's documented test vector first, so webhook intake tests can rely on them.
 */
import test from 'ava';
import { createHash, timingSafeEqual } from 'node:crypto';
import { payloadBytes, payloadIndex as index, sign } from '../../helpers/webhook-payloads.ts';

const verify = (secret: string, body: Buffer, header: string): boolean => {
  const expected = Buffer.from(sign(secret, body));
  const given = Buffer.from(header);
  return expected.length === given.length && timingSafeEqual(expected, given);
};

test("GitHub's documented test vector", (t) => {
  const v = index.official_test_vector;
  t.is(v['X-Hub-Signature-256'], 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17');
  t.is(sign(v.secret, v.payload), v['X-Hub-Signature-256']);
  t.true(verify(v.secret, Buffer.from(v.payload), v['X-Hub-Signature-256']));
});

test('every payload fixture matches its size, SHA-256 and X-Hub-Signature-256 with the test secret', (t) => {
  t.is(index.payloads.length, 18);
  for (const p of index.payloads) {
    const body = payloadBytes(p.file);
    t.is(body.length, p.bytes, p.file);
    t.is(createHash('sha256').update(body).digest('hex'), p.sha256_of_file, p.file);
    t.true(verify(index.test_secret, body, p.x_hub_signature_256_with_test_secret), p.file);
  }
});

test('a signature fails for a changed body, another secret or a re-serialised payload', (t) => {
  const p = index.payloads.find((x) => x.file === 'workflow_job.queued.with-deployment.json')!;
  const body = payloadBytes(p.file);
  const header = p.x_hub_signature_256_with_test_secret;
  t.false(verify(index.test_secret, Buffer.concat([body, Buffer.from(' ')]), header));
  t.false(verify('another secret', body, header));
  t.false(verify(index.test_secret, Buffer.from(JSON.stringify(JSON.parse(body.toString('utf8')))), header));
  t.false(verify(index.test_secret, body, header.replace('sha256=', 'sha1=')));
});
