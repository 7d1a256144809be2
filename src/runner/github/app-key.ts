/**
 * The GitHub App's private key, read from a PEM file (PKCS#1 "RSA PRIVATE KEY", as GitHub hands it out, or
 * PKCS#8 "PRIVATE KEY"). The file must be the owner's alone: a key readable by group or others is refused, as ssh
 * refuses one. No error carries any part of the file.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { open } from 'node:fs/promises';
import { ErrorCodes, MatchlockError } from '../../errors.ts';

/** GitHub's keys are 2048-bit; a PEM of a 16384-bit RSA key is under 13 KiB. */
const MAX_BYTES = 64 * 1024;

function keyError(path: string, problem: string): MatchlockError {
  return new MatchlockError(ErrorCodes.GITHUB, `the GitHub App private key ${path} ${problem}`, { path });
}

export async function loadAppKey(path: string): Promise<KeyObject> {
  let pem: Buffer;
  try {
    await using file = await open(path, 'r');
    const st = await file.stat();
    if (!st.isFile()) throw keyError(path, 'is not a regular file');
    if ((st.mode & 0o077) !== 0) {
      throw keyError(path, `is readable or writable by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}): it is a secret, run chmod 600 ${path}`);
    }
    if (st.size > MAX_BYTES) throw keyError(path, `is ${st.size} bytes, too large for a PEM private key`);
    pem = await file.readFile();
  } catch (e: unknown) {
    if (e instanceof MatchlockError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? 'unknown error';
    throw keyError(path, `cannot be read (${code}): check the path and that matchlock may read it`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    // node's message may quote the PEM's first line; it is not passed along.
    throw keyError(path, 'is not a PEM private key: download a new one from the App\'s settings ("Generate a private key")');
  } finally {
    pem.fill(0);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw keyError(path, `is a key of type ${String(key.asymmetricKeyType)}, not RSA: a GitHub App key is RSA (the .pem from the App's settings)`);
  }
  return key;
}
