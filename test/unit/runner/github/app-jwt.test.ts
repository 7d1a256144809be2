/**
 * The App JWT as GitHub's docs describe it, checked by decoding and verifying it with the public key: RS256,
 * iat 60 s back, exp - iat ≤ 600, iss the App ID (a number) or the Client ID (a string); reused until a minute
 * before it expires. (That GitHub's stand-in accepts it is shown in github-app.test.ts.)
 */
import test from 'ava';
import { generateKeyPairSync, verify } from 'node:crypto';
import { inspect } from 'node:util';
import { AppJwt } from '../../../../src/runner/github/app-jwt.ts';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

function decode(jwt: string): { header: unknown; claims: { iat: number; exp: number; iss: unknown }; signed: boolean } {
  const [h = '', p = '', s = ''] = jwt.split('.');
  const json = (x: string): unknown => JSON.parse(Buffer.from(x, 'base64url').toString('utf8'));
  return { header: json(h), claims: json(p) as { iat: number; exp: number; iss: unknown }, signed: verify('sha256', Buffer.from(`${h}.${p}`), publicKey, Buffer.from(s, 'base64url')) };
}

test('RS256, signed by the App key, iat 60 s back, exp 9 min ahead, iss the numeric App ID', (t) => {
  const now = 1_800_000_000_500;
  const jwt = new AppJwt(privateKey, 4242, () => now).get();
  const { header, claims, signed } = decode(jwt.reveal());
  t.deepEqual(header, { alg: 'RS256', typ: 'JWT' });
  t.true(signed);
  t.deepEqual(claims, { iat: 1_800_000_000 - 60, exp: 1_800_000_000 + 540, iss: 4242 });
  t.true(claims.exp - claims.iat <= 600);
  t.is(String(jwt), '[redacted]');
  t.is(inspect({ jwt }), '{ jwt: [redacted] }');
});

test('an App ID given as a string is sent as a number; a Client ID as given', (t) => {
  t.is(decode(new AppJwt(privateKey, '4242').get().reveal()).claims.iss, 4242);
  t.is(decode(new AppJwt(privateKey, 'Iv23liABCDEF012345').get().reveal()).claims.iss, 'Iv23liABCDEF012345');
});

test('the JWT is reused until a minute before it expires, then made afresh', (t) => {
  let now = 1_800_000_000_000;
  const jwts = new AppJwt(privateKey, 4242, () => now);
  const first = jwts.get();
  now += 479_000; // exp - 61 s
  t.is(jwts.get(), first);
  now += 1000; // exp - 60 s
  const second = jwts.get();
  t.not(second.reveal(), first.reveal());
  t.is(decode(second.reveal()).claims.iat, 1_800_000_000 + 480 - 60);
  jwts.drop();
  now += 1000;
  t.not(jwts.get().reveal(), second.reveal(), 'a dropped JWT is not reused');
});
