/**
 * A process that holds cache-disk leases, for tests: `node cache-acquire.ts DIR POOL_JSON [OWNER/REPO]`.
 * Opens the store and prints {"ready":true}; then, one JSON line per command read on stdin:
 * `go` → acquire with this process as the holder → {"lease": Lease | null} or {"error": {code, message}};
 * `release clean|dirty` → {"released": true} or {"error": …}. It keeps its leases until it is killed, or
 * until stdin closes (then it exits without releasing them, as a crashed VM would).
 */
import { createInterface } from 'node:readline';
import { CacheStore, type Lease, type PoolConfig } from '../../src/cache/index.ts';
import { createRootLogger } from '../../src/log.ts';

const [dir, poolJson, repository] = process.argv.slice(2);
if (dir === undefined || poolJson === undefined) throw new Error('usage: cache-acquire.ts DIR POOL_JSON [OWNER/REPO]');
const pool = JSON.parse(poolJson) as PoolConfig;
const store = CacheStore.open({ dir, log: createRootLogger('warn'), pools: [pool] });
const say = (msg: unknown): void => { process.stdout.write(`${JSON.stringify(msg)}\n`); };
const failure = (e: unknown): unknown => ({ error: { code: (e as { code?: unknown }).code, message: e instanceof Error ? e.message : String(e) } });

let lease: Lease | null = null;
say({ ready: true });
for await (const line of createInterface({ input: process.stdin })) {
  try {
    if (line === 'go') {
      lease = await store.acquire({ pool: pool.name, holderPid: process.pid, ...(repository === undefined ? {} : { repository }) });
      say({ lease });
    } else if (line === 'release clean' || line === 'release dirty') {
      if (lease === null) throw new Error('no lease to release');
      store.release(lease.id, { clean: line === 'release clean' });
      say({ released: true });
    } else throw new Error(`unknown command ${line}`);
  } catch (e: unknown) {
    say(failure(e));
  }
}
process.exit(0);
