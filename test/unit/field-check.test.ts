/**
 * The field checker shared by the VMM's API, the guest protocol and the runner host: closed objects by default,
 * open ones for bodies GitHub defines (checked only for the fields we use), nullable strings and objects, arrays
 * of strings.
 */
import test from 'ava';
import { checkFieldsOf, type Fields } from '../../src/field-check.ts';

const fail = (m: string): Error => new Error(m);
const JOB: Fields = {
  id: { type: 'integer', required: true, min: 1 },
  labels: { type: 'string-array', required: true, maxItems: 3, maxLength: 8, pattern: /^[a-z-]+$/ },
  runner_name: { type: 'string', nullable: true },
  steps: { type: 'array', items: { name: { type: 'string', required: true } }, maxItems: 2, open: true },
  owner: { type: 'object', fields: { login: { type: 'string', required: true } }, open: true, nullable: true },
};

test('a closed object refuses an unknown field; an open one lets it be and still checks what it names', (t) => {
  t.throws(() => { checkFieldsOf(JOB, { id: 1, labels: [], extra: 1 }, 'job', fail); }, { message: /unknown field "extra"/ });
  t.notThrows(() => { checkFieldsOf(JOB, { id: 1, labels: [], extra: 1 }, 'job', fail, true); });
  t.throws(() => { checkFieldsOf(JOB, { id: 0, labels: [], extra: 1 }, 'job', fail, true); }, { message: /job\.id 0 is out of range/ });
  t.throws(() => { checkFieldsOf(JOB, { labels: [] }, 'job', fail, true); }, { message: /missing field "id"/ });
});

test('open nested objects and array items: unknown fields let be, named ones checked', (t) => {
  t.notThrows(() => { checkFieldsOf(JOB, { id: 1, labels: [], steps: [{ name: 'a', number: 1 }], owner: { login: 'o', id: 9 } }, 'job', fail); });
  t.throws(() => { checkFieldsOf(JOB, { id: 1, labels: [], steps: [{ number: 1 }] }, 'job', fail); }, { message: /job\.steps\[0\]: missing field "name"/ });
  t.throws(() => { checkFieldsOf(JOB, { id: 1, labels: [], owner: { id: 9 } }, 'job', fail); }, { message: /job\.owner: missing field "login"/ });
});

test('nullable strings and objects take null; others do not', (t) => {
  t.notThrows(() => { checkFieldsOf(JOB, { id: 1, labels: [], runner_name: null, owner: null }, 'job', fail); });
  t.throws(() => { checkFieldsOf({ s: { type: 'string' } }, { s: null }, 'b', fail); }, { message: /b\.s must be a string, not null/ });
  t.throws(() => { checkFieldsOf({ o: { type: 'object', fields: {} } }, { o: null }, 'b', fail); }, { message: /b\.o must be a JSON object, not null/ });
});

test('arrays of strings: type, count, length and form of each item', (t) => {
  t.notThrows(() => { checkFieldsOf(JOB, { id: 1, labels: ['linux', 'x-large'] }, 'job', fail); });
  t.throws(() => { checkFieldsOf(JOB, { id: 1, labels: 'linux' }, 'job', fail); }, { message: /job\.labels must be an array of strings, not a string/ });
  t.throws(() => { checkFieldsOf(JOB, { id: 1, labels: ['a', 'b', 'c', 'd'] }, 'job', fail); }, { message: /has 4 items, over 3/ });
  t.throws(() => { checkFieldsOf(JOB, { id: 1, labels: ['linux', 7] }, 'job', fail); }, { message: /job\.labels\[1\] must be a string, not a number/ });
  t.throws(() => { checkFieldsOf(JOB, { id: 1, labels: ['much-too-long'] }, 'job', fail); }, { message: /job\.labels\[0\] is 13 characters, over 8/ });
  t.throws(() => { checkFieldsOf(JOB, { id: 1, labels: ['Linux'] }, 'job', fail); }, { message: /job\.labels\[0\] is not of the form/ });
});
