import test from 'ava';
import { builtinCpuTemplate, parseBitmap, parseCpuTemplate, bitmapOf } from '../../../src/vmm/arch/x86_64/index.ts';
import { isMatchlockError } from '../../../src/errors.ts';

const ok = { leaf: 1, register: 'ecx', bitmap: 'x'.repeat(32) };

test('bitmaps parse MSB first', (t) => {
  t.deepEqual(parseBitmap('1' + 'x'.repeat(30) + '0'), { mask: 0x8000_0001, value: 0x8000_0000 });
  t.deepEqual(parseBitmap('0b' + 'x'.repeat(32)), { mask: 0, value: 0 });
  t.deepEqual(parseBitmap('1'.repeat(32)), { mask: 0xffff_ffff, value: 0xffff_ffff });
  t.is(bitmapOf([0], [31]), '1' + 'x'.repeat(30) + '0');
});

test('a valid template parses, hex strings and subleaf included', (t) => {
  const tpl = parseCpuTemplate(JSON.stringify({ name: 'mine', cpuid: [{ leaf: '0x7', subleaf: '0', register: 'ebx', bitmap: 'X'.repeat(32) }] }));
  t.deepEqual(tpl, { name: 'mine', cpuid: [{ leaf: 7, subleaf: 0, register: 'ebx', bitmap: 'X'.repeat(32) }] });
  t.deepEqual(parseCpuTemplate({ name: 'empty', cpuid: [] }).cpuid, []);
});

const bad: [string, unknown, RegExp][] = [
  ['short bitmap', { name: 'a', cpuid: [{ ...ok, bitmap: 'x'.repeat(31) }] }, /cpuid\[0\]\.bitmap .*31 digits/],
  ['bad character', { name: 'a', cpuid: [ok, { ...ok, bitmap: 'x'.repeat(31) + '2' }] }, /cpuid\[1\]\.bitmap .*"2"/],
  ['bitmap not a string', { name: 'a', cpuid: [{ ...ok, bitmap: 5 }] }, /bitmap must be a string/],
  ['bad register', { name: 'a', cpuid: [{ ...ok, register: 'rax' }] }, /register must be one of/],
  ['bad leaf', { name: 'a', cpuid: [{ ...ok, leaf: -1 }] }, /leaf must be an integer/],
  ['bad subleaf', { name: 'a', cpuid: [{ ...ok, subleaf: 'zz' }] }, /subleaf must be an integer/],
  ['unknown key', { name: 'a', cpuid: [{ ...ok, flags: 1 }] }, /unknown key "flags"/],
  ['no name', { cpuid: [] }, /"name"/],
  ['no cpuid', { name: 'a' }, /"cpuid" array/],
  ['not an object', [1, 2], /JSON object/],
  ['invalid JSON', '{"name":', /not valid JSON/],
];

for (const [what, input, message] of bad) {
  test(`a template with ${what} is refused`, (t) => {
    const err = t.throws(() => parseCpuTemplate(input));
    t.true(isMatchlockError(err, 'MATCHLOCK_ERR_CPU_TEMPLATE'));
    t.regex(err.message, message);
    t.false(err.message.includes('\n'), 'one line');
  });
}

test('unknown built-in templates are refused with the list of names', (t) => {
  const err = t.throws(() => builtinCpuTemplate('T2'));
  t.true(isMatchlockError(err, 'MATCHLOCK_ERR_CPU_TEMPLATE'));
  t.regex(err.message, /pvm-safe/);
});

test('built-in templates are frozen and valid', (t) => {
  const tpl = builtinCpuTemplate('pvm-safe');
  t.true(Object.isFrozen(tpl) && Object.isFrozen(tpl.cpuid));
  t.deepEqual(parseCpuTemplate(JSON.parse(JSON.stringify(tpl))), tpl);
});
