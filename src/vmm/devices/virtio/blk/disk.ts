/**
 * The files behind a virtio-blk device: a raw image, opened read-write or read-only, or a copy-on-write pair
 * of a read-only base and the VM's own sparse overlay. All I/O is positional and synchronous: it runs on the
 * device's thread, never on a vCPU's.
 */
import { closeSync, fdatasyncSync, fstatSync, ftruncateSync, openSync, readSync, rmSync, unlinkSync, writeSync, constants as fsc } from 'node:fs';
import { ErrorCodes, MatchlockError, errorMessage } from '../../../../errors.ts';
import type { BucketSize } from './token-bucket.ts';

export const SECTOR_SIZE = 512;
/** The unit the overlay copies from the base: a partial write first brings in the whole cluster. */
export const COW_CLUSTER = 4096;
/** Bytes of the ID a GET_ID request returns (VIRTIO_BLK_ID_BYTES). */
export const VIRTIO_BLK_ID_BYTES = 20;

export interface Disk {
  /** Bytes; a whole number of sectors. */
  readonly size: number;
  readonly readOnly: boolean;
  /** The device ID (serial), at most 20 bytes. */
  readonly id: Uint8Array;
  read(position: number, dst: Uint8Array): void;
  write(position: number, src: Uint8Array): void;
  flush(): void;
  close(): void;
}

export interface DriveSpec {
  readonly path: string;
  readonly readOnly: boolean;
  /** Copy-on-write: the VM's writes go to this new file; the image at `path` is only read. */
  readonly overlay: string | null;
  /** The serial the guest reads with GET_ID; by default derived from the image's device and inode. */
  readonly id: string | null;
  /** Rate limits (token buckets with a one-second burst); null for none. */
  readonly bytesPerSec?: number | null;
  readonly opsPerSec?: number | null;
  readonly bytesBucket?: BucketSize | null;
  readonly opsBucket?: BucketSize | null;
}

function driveError(message: string, details: Record<string, unknown>, cause?: unknown): MatchlockError {
  return new MatchlockError(ErrorCodes.DRIVE, message, details, cause === undefined ? {} : { cause });
}

/** The most one read or write call moves (Node refuses 2 GiB and more). */
const IO_CHUNK = 1 << 30;

function preadFull(fd: number, dst: Uint8Array, position: number): void {
  let done = 0;
  while (done < dst.length) {
    const n = readSync(fd, dst, done, Math.min(dst.length - done, IO_CHUNK), position + done);
    if (n === 0) {
      dst.fill(0, done); // past the end of a file that shrank under us: zeros, as a sparse file would read
      return;
    }
    done += n;
  }
}

function pwriteFull(fd: number, src: Uint8Array, position: number): void {
  let done = 0;
  while (done < src.length) done += writeSync(fd, src, done, Math.min(src.length - done, IO_CHUNK), position + done);
}

/** Node opens every file with O_CLOEXEC, so no VMM child inherits a drive. */
function openImage(path: string, flags: number): { fd: number; size: number; dev: number; ino: number } {
  let fd: number;
  try {
    fd = openSync(path, flags);
  } catch (e: unknown) {
    throw driveError(`cannot open drive image ${path}: ${errorMessage(e)}`, { path }, e);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() && !st.isBlockDevice()) throw driveError(`drive image ${path} is not a regular file`, { path });
    if (st.size === 0 || st.size % SECTOR_SIZE !== 0) {
      throw driveError(`drive image ${path} is ${st.size} bytes, not a positive whole number of ${SECTOR_SIZE}-byte sectors`, { path, size: st.size });
    }
    return { fd, size: st.size, dev: st.dev, ino: st.ino };
  } catch (e: unknown) {
    closeSync(fd);
    throw e;
  }
}

function idBytes(spec: DriveSpec, dev: number, ino: number): Uint8Array {
  const text = spec.id ?? `ml${dev.toString(16)}-${ino.toString(16)}`;
  return new TextEncoder().encode(text).subarray(0, VIRTIO_BLK_ID_BYTES);
}

/** A raw image used as it is. */
class RawDisk implements Disk {
  readonly size: number;
  readonly readOnly: boolean;
  readonly id: Uint8Array;
  readonly #fd: number;

  constructor(fd: number, size: number, readOnly: boolean, id: Uint8Array) {
    this.#fd = fd;
    this.size = size;
    this.readOnly = readOnly;
    this.id = id;
  }

  read(position: number, dst: Uint8Array): void {
    preadFull(this.#fd, dst, position);
  }

  write(position: number, src: Uint8Array): void {
    pwriteFull(this.#fd, src, position);
  }

  flush(): void {
    if (!this.readOnly) fdatasyncSync(this.#fd);
  }

  close(): void {
    closeSync(this.#fd);
  }
}

/**
 * A read-only base and a sparse overlay of the same size. A bitmap says which clusters the VM has written;
 * those are read from the overlay, the rest from the base. The overlay is new for each VM (created, never
 * reused), so the bitmap needs no persistence.
 */
class CowDisk implements Disk {
  readonly size: number;
  readonly readOnly = false;
  readonly id: Uint8Array;
  readonly #base: number;
  readonly #overlay: number;
  readonly #written: Uint8Array;

  constructor(base: number, overlay: number, size: number, id: Uint8Array) {
    this.#base = base;
    this.#overlay = overlay;
    this.size = size;
    this.id = id;
    this.#written = new Uint8Array(Math.ceil(size / COW_CLUSTER / 8));
  }

  #isWritten(cluster: number): boolean {
    return (this.#written[Math.floor(cluster / 8)]! & (1 << (cluster % 8))) !== 0;
  }

  #markWritten(cluster: number): void {
    this.#written[Math.floor(cluster / 8)]! |= 1 << (cluster % 8);
  }

  /** Reads run by run: consecutive clusters from the same file are one pread. */
  read(position: number, dst: Uint8Array): void {
    let at = 0;
    while (at < dst.length) {
      const pos = position + at;
      const fromOverlay = this.#isWritten(Math.floor(pos / COW_CLUSTER));
      let end = (Math.floor(pos / COW_CLUSTER) + 1) * COW_CLUSTER;
      while (end < position + dst.length && this.#isWritten(end / COW_CLUSTER) === fromOverlay) end += COW_CLUSTER;
      const n = Math.min(end, position + dst.length) - pos;
      preadFull(fromOverlay ? this.#overlay : this.#base, dst.subarray(at, at + n), pos);
      at += n;
    }
  }

  write(position: number, src: Uint8Array): void {
    let at = 0;
    while (at < src.length) {
      const pos = position + at;
      const cluster = Math.floor(pos / COW_CLUSTER);
      const start = cluster * COW_CLUSTER;
      const clusterLen = Math.min(COW_CLUSTER, this.size - start);
      const n = Math.min(start + clusterLen, position + src.length) - pos;
      if (!this.#isWritten(cluster) && n < clusterLen) {
        // A partial write to a cluster still in the base: bring the cluster over first.
        const whole = new Uint8Array(clusterLen);
        preadFull(this.#base, whole, start);
        whole.set(src.subarray(at, at + n), pos - start);
        pwriteFull(this.#overlay, whole, start);
      } else {
        pwriteFull(this.#overlay, src.subarray(at, at + n), pos);
      }
      this.#markWritten(cluster);
      at += n;
    }
  }

  flush(): void {
    fdatasyncSync(this.#overlay);
  }

  close(): void {
    closeSync(this.#overlay);
    closeSync(this.#base);
  }
}

/**
 * A drive opened and checked, as plain data: made on the main thread (so a bad drive fails before the VM
 * exists) and handed to the device thread, which makes the Disk.
 */
export interface OpenedDrive {
  readonly fd: number;
  /** The overlay's fd for a copy-on-write drive. */
  readonly overlayFd: number | null;
  readonly size: number;
  readonly readOnly: boolean;
  readonly id: Uint8Array;
  /** The overlay file this open created (removed again if the VM never starts). */
  readonly createdOverlay: string | null;
}

/** Opens a drive; throws MATCHLOCK_ERR_DRIVE with the path and what to do. */
export function openDrive(spec: DriveSpec): OpenedDrive {
  if (spec.overlay === null) {
    const img = openImage(spec.path, spec.readOnly ? fsc.O_RDONLY : fsc.O_RDWR);
    return { fd: img.fd, overlayFd: null, size: img.size, readOnly: spec.readOnly, id: idBytes(spec, img.dev, img.ino), createdOverlay: null };
  }
  const base = openImage(spec.path, fsc.O_RDONLY);
  let overlay: number;
  try {
    overlay = openSync(spec.overlay, fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL, 0o600);
  } catch (e: unknown) {
    closeSync(base.fd);
    const exists = (e as NodeJS.ErrnoException).code === 'EEXIST';
    throw driveError(exists
      ? `copy-on-write overlay ${spec.overlay} already exists: each VM needs a new overlay file, remove it or choose another path`
      : `cannot create copy-on-write overlay ${spec.overlay}: ${errorMessage(e)}`, { path: spec.path, overlay: spec.overlay }, e);
  }
  try {
    ftruncateSync(overlay, base.size);
  } catch (e: unknown) {
    closeSync(overlay);
    unlinkSync(spec.overlay);
    closeSync(base.fd);
    throw driveError(`cannot size copy-on-write overlay ${spec.overlay}: ${errorMessage(e)}`, { overlay: spec.overlay }, e);
  }
  return { fd: base.fd, overlayFd: overlay, size: base.size, readOnly: false, id: idBytes(spec, base.dev, base.ino), createdOverlay: spec.overlay };
}

/** Closes a drive that never served a VM, and removes the overlay its opening created: nothing is left. */
export function abandonDrive(d: OpenedDrive): void {
  if (d.overlayFd !== null) closeSync(d.overlayFd);
  closeSync(d.fd);
  if (d.createdOverlay !== null) rmSync(d.createdOverlay, { force: true });
}

/** The Disk over an opened drive; it owns the drive's fds from now on. */
export function diskFrom(d: OpenedDrive): Disk {
  return d.overlayFd === null ? new RawDisk(d.fd, d.size, d.readOnly, d.id) : new CowDisk(d.fd, d.overlayFd, d.size, d.id);
}

export function openDisk(spec: DriveSpec): Disk {
  return diskFrom(openDrive(spec));
}
