/**
 * The App key is read from a real file: PKCS#1 (as GitHub hands it out) and PKCS#8 load; a file group or others
 * may read, a key that is not RSA, a missing file and a file that is no key are refused with a message that says
 * what to do and quotes nothing of the file.
 */
import test from 'ava';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { isMatchlockError, ErrorCodes } from '../../../../src/errors.ts';
import { loadAppKey } from '../../../../src/runner/github/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'matchlock-app-key-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pkcs1 = privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

function keyFile(name: string, text: string, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, text, { mode });
  chmodSync(path, mode); // whatever the umask
  return path;
}

/** The error's message, details and inspection hold no line of the PEM's body. */
function quotesNothing(e: unknown, pem: string): boolean {
  const seen = `${inspect(e, { depth: 5 })} ${JSON.stringify((e as { details?: unknown }).details)}`;
  return pem.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----')).every((l) => !seen.includes(l)) && !seen.includes('PRIVATE KEY-----');
}

test('PKCS#1 and PKCS#8 RSA keys in a 0600 file load as private RSA keys', async (t) => {
  for (const [name, pem] of [['pkcs1.pem', pkcs1], ['pkcs8.pem', pkcs8]] as const) {
    const key = await loadAppKey(keyFile(name, pem));
    t.is(key.type, 'private');
    t.is(key.asymmetricKeyType, 'rsa');
    t.deepEqual(key.export({ type: 'pkcs1', format: 'pem' }), pkcs1);
  }
});

test('a key file group or others may read is refused, telling to chmod 600', async (t) => {
  for (const mode of [0o644, 0o640, 0o604, 0o660]) {
    const path = keyFile(`open-${mode.toString(8)}.pem`, pkcs1, mode);
    const e = await t.throwsAsync(loadAppKey(path));
    t.true(isMatchlockError(e, ErrorCodes.GITHUB));
    t.is(e?.message, `the GitHub App private key ${path} is readable or writable by group or others (mode 0${mode.toString(8)}): it is a secret, run chmod 600 ${path}`);
    t.true(quotesNothing(e, pkcs1));
  }
});

test('a key that is not RSA (ed25519, EC) is refused', async (t) => {
  const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'sec1', format: 'pem' }) as string;
  for (const [name, pem, type] of [['ed.pem', ed, 'ed25519'], ['ec.pem', ec, 'ec']] as const) {
    const e = await t.throwsAsync(loadAppKey(keyFile(name, pem)));
    t.true(isMatchlockError(e, ErrorCodes.GITHUB));
    t.regex(e?.message ?? '', new RegExp(`is a key of type ${type}, not RSA: a GitHub App key is RSA`));
    t.true(quotesNothing(e, pem));
  }
});

test('a missing file, a directory, a public key and a file that is no key are refused without quoting it', async (t) => {
  const missing = join(dir, 'missing.pem');
  await t.throwsAsync(loadAppKey(missing), { code: ErrorCodes.GITHUB, message: `the GitHub App private key ${missing} cannot be read (ENOENT): check the path and that matchlock may read it` });
  const sub = join(dir, 'a-dir');
  rmSync(sub, { recursive: true, force: true });
  mkdirSync(sub, { mode: 0o700 });
  await t.throwsAsync(loadAppKey(sub), { code: ErrorCodes.GITHUB, message: `the GitHub App private key ${sub} is not a regular file` });
  const publicPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
  for (const [name, text] of [['public.pem', publicPem], ['garbage.pem', `-----BEGIN RSA PRIVATE KEY-----\n${'QUFB'.repeat(40)}\n-----END RSA PRIVATE KEY-----\n`], ['mangled.pem', pkcs1.replace(/[A-Z]/g, 'x')]] as const) {
    const path = keyFile(name, text);
    const e = await t.throwsAsync(loadAppKey(path));
    t.is(e?.message, `the GitHub App private key ${path} is not a PEM private key: download a new one from the App's settings ("Generate a private key")`);
    t.is((e as { cause?: unknown }).cause, undefined, 'node\'s error is not passed along');
    t.true(quotesNothing(e, text));
  }
});
