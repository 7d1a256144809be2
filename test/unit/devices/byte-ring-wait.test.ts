import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// Regression (found on real KVM): a serial sink waiting for output from a guest that had gone quiet let the
// process exit with status 13 ("unsettled top-level await") once the vCPU threads were gone, because a
// pending Atomics.waitAsync does not keep the event loop alive.
test('waiting for serial output keeps the process alive until the wait ends', (t) => {
  const ring = fileURLToPath(new URL('../../../src/vmm/devices/byte-ring.ts', import.meta.url));
  const script = `
    const { ByteRing } = await import(${JSON.stringify(ring)});
    const r = new ByteRing(64);
    await r.waitForData(200);
    console.log('woke');
  `;
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  t.is(res.status, 0, res.stderr);
  t.is(res.stdout.trim(), 'woke');
});
