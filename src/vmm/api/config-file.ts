/**
 * `matchlock vmm --config-file vm.json`: the same JSON shape as `GET /vm/config`, applied through the same
 * operations (and so the same checks) as the API's PUTs, in Firecracker's order: logger, metrics, machine,
 * boot source, drives, network interfaces, vsock. Any problem stops the VMM before it touches KVM.
 */
import { readFileSync, statSync } from 'node:fs';
import { ErrorCodes, MatchlockError, errorMessage } from '../../errors.ts';
import { faultOf } from './api-error.ts';
import type { VmmController } from './vmm-controller.ts';

const MAX_CONFIG_BYTES = 1024 * 1024;

type Section = 'logger' | 'metrics' | 'machine-config' | 'boot-source' | 'drives' | 'network-interfaces' | 'vsock';

const ORDER: readonly Section[] = ['logger', 'metrics', 'machine-config', 'boot-source', 'drives', 'network-interfaces', 'vsock'];

function fileError(path: string, why: string): MatchlockError {
  return new MatchlockError(ErrorCodes.CONFIG, `config file ${path}: ${why}`, { path });
}

function readConfig(path: string): Record<string, unknown> {
  let text: string;
  try {
    if (statSync(path).size > MAX_CONFIG_BYTES) throw new Error(`larger than ${MAX_CONFIG_BYTES} bytes`);
    text = readFileSync(path, 'utf8');
  } catch (e: unknown) {
    throw fileError(path, `cannot read it: ${errorMessage(e)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e: unknown) {
    throw fileError(path, `not valid JSON: ${errorMessage(e)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw fileError(path, 'must hold one JSON object');
  const config = parsed as Record<string, unknown>;
  for (const key of Object.keys(config)) {
    if (!(ORDER as readonly string[]).includes(key)) throw fileError(path, `"${key}" is not supported (known: ${ORDER.join(', ')})`);
  }
  return config;
}

function listOf(path: string, config: Record<string, unknown>, key: 'drives' | 'network-interfaces', idKey: string): Record<string, unknown>[] {
  const value = config[key];
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw fileError(path, `"${key}" must be an array`);
  const ids = new Set<unknown>();
  for (const item of value as unknown[]) {
    const id = (item as Record<string, unknown> | null)?.[idKey];
    if (ids.has(id)) throw fileError(path, `${key}: ${idKey} ${JSON.stringify(id)} is given twice`);
    ids.add(id);
  }
  return value as Record<string, unknown>[];
}

/** Applies a config file to a VMM that has not started; throws a CONFIG error naming the section at fault. */
export function applyConfigFile(controller: VmmController, path: string): void {
  const config = readConfig(path);
  const drives = listOf(path, config, 'drives', 'drive_id');
  const nets = listOf(path, config, 'network-interfaces', 'iface_id');
  const idOf = (item: Record<string, unknown>, key: string): string => (typeof item[key] === 'string' ? item[key] : '');
  for (const section of ORDER) {
    const body = config[section];
    if (body === undefined) continue;
    try {
      if (section === 'logger') controller.putLogger(body);
      else if (section === 'metrics') controller.putMetrics(body);
      else if (section === 'machine-config') controller.putMachineConfig(body);
      else if (section === 'boot-source') controller.putBootSource(body);
      else if (section === 'drives') for (const d of drives) controller.putDrive(idOf(d, 'drive_id'), d);
      else if (section === 'network-interfaces') for (const n of nets) controller.putNetworkInterface(idOf(n, 'iface_id'), n);
      else controller.putVsock(body);
    } catch (e: unknown) {
      throw fileError(path, `${section}: ${faultOf(e).message}`);
    }
  }
}
