/**
 * The ext4 file of an image, made from a tree with `mke2fs -d` (no loop mount, no root needed for the file
 * system itself) and checked with `e2fsck -fn`. Size: what the tree needs plus a quarter, at least 64 MiB, unless
 * given. 4 KiB blocks whatever the size (mke2fs would take 1 KiB blocks below 512 MiB, its "small" type: four
 * times the blocks to allocate and map, for a root file system read through 4 KiB pages), and inodes for every
 * entry of the tree plus one per 16 KiB of the file system, for what VMs write.
 */
import { spawn } from 'node:child_process';
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { imageError } from './source.ts';

const MIN_SIZE_MIB = 64;
const BLOCK = 4096;
const BYTES_PER_SPARE_INODE = 16384;

/** Runs a tool; rejects with the end of its output when it fails. */
function run(file: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { out += c; });
    child.on('error', (e) => reject(imageError(`cannot run ${file}: ${e.message} (install e2fsprogs)`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(imageError(`${file} failed (exit ${code}): ${out.trim().split('\n').slice(-3).join(' / ')}`))));
  });
}

/** The bytes the tree takes (apparent sizes rounded up to blocks, a block per entry) and its number of entries. */
export function treeStats(dir: string): { bytes: number; entries: number } {
  let bytes = 0;
  let entries = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    entries++;
    bytes += BLOCK;
    if (e.isDirectory()) {
      const sub = treeStats(p);
      bytes += sub.bytes;
      entries += sub.entries;
    } else if (e.isFile()) bytes += Math.ceil(lstatSync(p).size / BLOCK) * BLOCK;
  }
  return { bytes, entries };
}

/** mke2fs's options for a tree of `stats` (size and inodes), before `-d TREE FILE SIZE`. */
export function mke2fsOptions(stats: { bytes: number; entries: number }, sizeMib: number | undefined): { options: string[]; sizeMib: number } {
  const mib = sizeMib ?? Math.max(MIN_SIZE_MIB, Math.ceil((stats.bytes * 1.25) / 2 ** 20));
  const inodes = stats.entries + Math.ceil((mib * 2 ** 20) / BYTES_PER_SPARE_INODE);
  return { options: ['-q', '-F', '-t', 'ext4', '-b', String(BLOCK), '-N', String(inodes), '-L', 'rootfs', '-E', 'root_owner=0:0'], sizeMib: mib };
}

export interface MakeOptions {
  readonly sizeMib?: number | undefined;
  /** Told of each tool as it starts. */
  readonly step?: (what: string) => void;
  /** The tree's figures, when the caller counted them as the tree was made (else the tree is walked). */
  readonly known?: { bytes: number; entries: number } | null;
  /** Called once mke2fs has read the tree (to remove it, say) while e2fsck runs. */
  readonly treeDone?: () => void;
}

/** Makes `file` from `tree` and checks it. */
export async function makeExt4(tree: string, file: string, opts: MakeOptions = {}): Promise<void> {
  const m = mke2fsOptions(opts.known ?? treeStats(tree), opts.sizeMib);
  opts.step?.('mke2fs');
  await run('mke2fs', [...m.options, '-d', tree, file, `${m.sizeMib}M`]);
  opts.step?.('e2fsck');
  const check = run('e2fsck', ['-fn', file]); // a process of its own: what treeDone does here overlaps it
  check.catch(() => {}); // awaited below
  try {
    opts.treeDone?.();
  } finally {
    await check;
  }
}
