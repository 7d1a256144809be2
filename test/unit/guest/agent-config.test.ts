/** The agent's settings from the kernel command line, and flags over them. */
import test from 'ava';
import { agentConfig, cmdlineSettings } from '../../../src/guest/agent-config.ts';

test('matchlock.* tokens of the command line are the defaults; other tokens are ignored', (t) => {
  const k = cmdlineSettings('console=ttyS0 reboot=k matchlock.port=2000 matchlock.hostname=job-1 matchlock.dns=10.0.0.1,1.1.1.1 matchlock.user=ci\n');
  t.deepEqual([...k], [['port', '2000'], ['hostname', 'job-1'], ['dns', '10.0.0.1,1.1.1.1'], ['user', 'ci']]);
  const c = agentConfig([], 'matchlock.port=2000 matchlock.hostname=job-1 matchlock.dns=10.0.0.1,1.1.1.1 matchlock.user=ci', 1);
  t.deepEqual(c.listen, { kind: 'vsock', port: 2000 });
  t.is(c.hostname, 'job-1');
  t.deepEqual(c.dns, ['10.0.0.1', '1.1.1.1']);
  t.is(c.user, 'ci');
  t.is(c.runner, '/actions-runner/run.sh');
  t.is(c.launcher, '/opt/matchlock/bin/matchlock-agent', 'the launcher the image build injects');
  t.true(c.systemSetup && c.powerOff, 'as PID 1 the agent sets the system up and powers off');
});

test('flags override the command line; not PID 1 means no system setup and no power off unless asked', (t) => {
  const c = agentConfig(['--listen', 'unix:/run/a.sock', '--user', 'runner2', '--hostname', 'h'], 'matchlock.port=2000 matchlock.hostname=job-1', 4242);
  t.deepEqual(c.listen, { kind: 'unix', path: '/run/a.sock' });
  t.is(c.user, 'runner2');
  t.is(c.hostname, 'h');
  t.false(c.systemSetup);
  t.false(c.powerOff);
  t.true(agentConfig(['--power-off'], '', 4242).powerOff);
  t.is(agentConfig(['--launcher', '/usr/local/bin/launcher'], '', 4242).launcher, '/usr/local/bin/launcher');
  t.false(agentConfig(['--no-power-off'], '', 1).powerOff);
});

test('bad settings are refused with what to give', (t) => {
  t.throws(() => agentConfig([], 'matchlock.port=0', 1), { message: /give vsock:PORT/ });
  t.throws(() => agentConfig([], 'matchlock.hostname=-bad-', 1), { message: /hostname -bad-/ });
  t.throws(() => agentConfig([], 'matchlock.dns=8.8.8.888', 1), { message: /not an IPv4 address/ });
  t.throws(() => agentConfig(['--runner', 'run.sh'], '', 1), { message: /absolute path/ });
  t.throws(() => agentConfig(['--launcher', 'matchlock-agent'], '', 1), { message: /--launcher matchlock-agent: give an absolute path/ });
  t.throws(() => agentConfig(['--user', 'Root;rm'], '', 1), { message: /not a user name/ });
  t.throws(() => agentConfig(['--listen', 'unix:relative'], '', 1), { message: /unix:\/ABSOLUTE/ });
  t.throws(() => agentConfig(['--bogus'], '', 1), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' });
});
