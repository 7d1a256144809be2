/**
 * virtio-net in our VMM on real KVM: the test guest's ring-3 driver (proven against QEMU in
 * virtio-net-tap.test.ts) and tap-peer on a TAP that the VMM creates inside a network namespace made by the
 * test. Both directions, byte for byte, under load; the TAP is gone when the VM is.
 */
import { execFileSync } from 'node:child_process';
import { kvmSuite } from '../helpers/kvm.ts';
import { boot } from '../helpers/boot.ts';
import { logLines } from '../helpers/cli.ts';
import { netns, runPeer, waitForInterface } from '../helpers/netns.ts';

const { test } = kvmSuite(import.meta.url);

test('frames cross between the guest and a TAP in a namespace, both ways, under load, none lost, doubled or changed', async (t) => {
  const ns = netns(t, 'kvm');
  const tap = 'mltap0';
  const echoes = 3000;
  const sends = 3000;
  let driverUp: () => void = () => {};
  const up = new Promise<void>((resolve) => { driverUp = resolve; });
  const vm = boot(t, `ml.vnet.info ml.vnet.echo=${echoes}:21 ml.vnet.send=${sends}:1200:22`, ['--net', `tap=${tap},mac=06:aa:bb:cc:dd:ee,mtu=1500`], {
    timeoutMs: 600_000,
    wrap: ['ip', 'netns', 'exec', ns],
    onStdout: (_chunk, all) => { if (all.includes('VNET INFO')) driverUp(); },
  });
  vm.then(driverUp, driverUp);
  await waitForInterface(ns, tap);
  const fromGuest = runPeer(ns, ['recv', tap, String(sends), '22', '300000']);
  await fromGuest.ready;
  await up; // the guest's receive buffers are posted: nothing the peer sends can miss them
  const echo = runPeer(ns, ['echo', tap, String(echoes), '1514', '21', '48', '300000']);
  const [{ r, out }, e, g] = await Promise.all([vm, echo.done, fromGuest.done]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(out.vnet, ['INFO mac 06:aa:bb:cc:dd:ee mtu 1500', `ECHO ${echoes} ok`, `SENT ${sends}`]);
  t.is(e.stdout.trim().split('\n').pop(), `ECHO ${echoes} ok`, e.stderr);
  t.is(g.stdout.trim().split('\n').pop(), `RECV ${sends} ok`, g.stderr);
  const devices = logLines(r.stderr).find((l) => l['msg'] === 'vm stopped')?.['devices'] as Record<string, Record<string, number>> | undefined;
  t.like(devices?.['virtio-net0'], { txFrames: echoes + sends, rxDropped: 0, txDropped: 0, malformed: 0, guestFaults: 0 });
  const links = execFileSync('ip', ['netns', 'exec', ns, 'ip', '-o', 'link'], { encoding: 'utf8' });
  t.false(links.includes(tap), 'the TAP the VMM created is gone with the VM');
});
