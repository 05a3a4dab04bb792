/**
 * The one way the data loaders, and the trainer for the model files a fine-tune names, open files.
 * Every check is made on the opened descriptor, never on a name that could be re-pointed between a
 * check and the open:
 *
 * - the last path component is opened with O_NOFOLLOW (a symbolic link is followed only when its
 *   target lies inside the roots, and then the target is opened, again without following);
 *   O_NONBLOCK, so a FIFO never blocks the open (and with it a thread of libuv's pool); O_NOCTTY;
 *   libuv adds O_CLOEXEC to every open;
 * - where the descriptor really lies (`/proc/self/fd/N`) must be inside a root (symlinks of the roots
 *   themselves resolved), else PERMISSION_DENIED: a folder swapped for a symlink mid-request is caught;
 * - it must be a regular file (or, for folders, a directory): FIFOs, sockets and devices are refused;
 * - its size is checked against the caller's limit before a byte is read, and reads never go past
 *   that size, so a file that grows after the check is not read further.
 *
 * A folder's entries are listed and opened through the folder's own descriptor, so they are the
 * entries of the folder that was checked. Messages name the path as requested and never contain
 * file content; where a refused path really leads is kept on the error (`resolved`) for logs only.
 */
import { constants, type Dirent, type Stats } from 'node:fs';
import { open, readdir, readlink, realpath, type FileHandle } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import {
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
} from '@deit-serve/core';

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

/** Opens of a path whose symlinks change under it before it is refused. */
const OPEN_ATTEMPTS = 3;

/** Bytes read from a file at a time. */
export const READ_CHUNK_BYTES = 1 << 16;

/** A path that leads (or, opened, lies) outside the roots. */
export class OutsideRootsError extends PermissionDeniedError {
  constructor(
    /** The path as requested. */
    readonly path: string,
    /** Where it really leads: for the server's log, never for the caller. */
    readonly resolved: string,
    readonly throughLink: boolean,
  ) {
    super(
      `${JSON.stringify(path)} ${throughLink ? 'leads outside the data roots through a symbolic link' : 'is outside the data roots'}`,
    );
  }
}

export interface OpenOptions {
  /** Larger files are refused before anything is read (ResourceExhaustedError). */
  readonly maxBytes?: number;
}

/** Where files may be opened from, and the checks every open makes. */
export class FileAccess {
  /** No roots: the type and size checks still apply, symlinks are followed anywhere. */
  static readonly anywhere = new FileAccess();

  readonly roots: readonly string[] | undefined;

  /** Roots and paths that are relative are taken against `cwd`; without roots all are allowed. */
  constructor(
    roots?: readonly string[],
    private readonly cwd: string = process.cwd(),
  ) {
    this.roots = roots?.map((root) => resolve(cwd, root));
  }

  /** Opens a regular file. Close it (or use {@link FileAccess.readFile}). */
  async openFile(path: string, options: OpenOptions = {}): Promise<CheckedFile> {
    const { handle, realPath, stats } = await this.openChecked(
      resolve(this.cwd, path),
      path,
      'file',
      options,
    );
    return new CheckedFile(path, realPath, stats.size, handle);
  }

  /** The whole of a regular file, its size checked before reading. */
  async readFile(path: string, options: OpenOptions = {}): Promise<Uint8Array> {
    const file = await this.openFile(path, options);
    try {
      return await file.readAll();
    } finally {
      await file.close();
    }
  }

  /** Opens a folder to list it and open its entries. Close it. */
  async openDirectory(path: string): Promise<CheckedDirectory> {
    const { handle, realPath } = await this.openChecked(resolve(this.cwd, path), path, 'directory', {});
    return new CheckedDirectory(this, path, realPath, handle);
  }

  /**
   * Opens `target` (which `shown` names in messages) and checks the descriptor. Used for entries of
   * a checked directory too, whose `target` goes through the directory's descriptor.
   */
  async openChecked(
    target: string,
    shown: string,
    kind: 'file' | 'directory',
    options: OpenOptions,
  ): Promise<{ handle: FileHandle; realPath: string; stats: Stats }> {
    const roots = await this.realRoots();
    const { handle, throughLink } = await this.openNoFollow(target, shown, roots);
    try {
      const realPath = await this.locate(handle, shown, roots, throughLink);
      const stats = await handle.stat();
      if (kind === 'file' && !stats.isFile()) {
        throw new InvalidArgumentError(`${JSON.stringify(shown)} is not a regular file (${typeOf(stats)})`);
      }
      if (kind === 'directory' && !stats.isDirectory()) {
        throw new InvalidArgumentError(`${JSON.stringify(shown)} is not a directory (${typeOf(stats)})`);
      }
      if (options.maxBytes !== undefined && stats.size > options.maxBytes) {
        throw new ResourceExhaustedError(
          `${JSON.stringify(shown)} is ${stats.size.toLocaleString('en-US')} bytes, more than the ` +
            `${options.maxBytes.toLocaleString('en-US')} allowed; not read`,
        );
      }
      return { handle, realPath, stats };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /**
   * Opens `target` without following a symlink in its last component; a symlink is resolved and its
   * target, when inside the roots, opened the same way. A path that changes between the two (a link
   * re-pointed, a folder swapped) is tried again a few times, then refused.
   */
  private async openNoFollow(
    target: string,
    shown: string,
    roots: readonly string[] | undefined,
  ): Promise<{ handle: FileHandle; throughLink: boolean }> {
    for (let attempt = 1; ; attempt++) {
      try {
        return { handle: await open(target, OPEN_FLAGS), throughLink: false };
      } catch (error) {
        if (codeOf(error) !== 'ELOOP') throw openError(error, shown);
      }
      const linked = await realpath(target).catch((cause: unknown) => {
        throw new InvalidArgumentError(
          `${JSON.stringify(shown)} cannot be resolved (a dangling or looping symbolic link)`,
          { cause },
        );
      });
      if (roots !== undefined && !roots.some((root) => isWithin(linked, root))) {
        throw new OutsideRootsError(shown, linked, true);
      }
      try {
        return { handle: await open(linked, OPEN_FLAGS), throughLink: true };
      } catch (error) {
        if (codeOf(error) !== 'ELOOP') throw openError(error, shown);
        if (attempt === OPEN_ATTEMPTS) {
          throw new InvalidArgumentError(
            `${JSON.stringify(shown)} kept changing while it was being opened; not read`,
            { cause: error },
          );
        }
      }
    }
  }

  /** The roots, symlinks resolved now (a root created or re-pointed later is honoured). */
  private async realRoots(): Promise<string[] | undefined> {
    if (this.roots === undefined) return undefined;
    const real = await Promise.all(this.roots.map((root) => realpath(root).catch(() => undefined)));
    return real.filter((root): root is string => root !== undefined);
  }

  /** Where an open descriptor really lies; outside the roots: OutsideRootsError. */
  private async locate(
    handle: FileHandle,
    shown: string,
    roots: readonly string[] | undefined,
    throughLink: boolean,
  ): Promise<string> {
    if (roots === undefined) return shown;
    let real: string;
    try {
      real = await readlink(descriptorPath(handle));
    } catch (cause) {
      // Without /proc nothing can be verified: refuse rather than trust the name.
      throw new PermissionDeniedError(
        `${JSON.stringify(shown)}: cannot verify where the opened file lies (no /proc/self/fd)`,
        { cause },
      );
    }
    if (!roots.some((root) => isWithin(real, root))) throw new OutsideRootsError(shown, real, throughLink);
    return real;
  }
}

/** A regular file opened and checked by {@link FileAccess}; reads stop at the size checked. */
export class CheckedFile {
  constructor(
    /** The path as requested. */
    readonly path: string,
    /** Where it really lies (the requested path when no roots are checked). */
    readonly realPath: string,
    /** Its size when opened: nothing past it is read. */
    readonly size: number,
    private readonly handle: FileHandle,
  ) {}

  /** The file's bytes, `size` of them at most. */
  async readAll(): Promise<Uint8Array> {
    const bytes = new Uint8Array(this.size);
    let filled = 0;
    while (filled < this.size) {
      const { bytesRead } = await this.handle.read(bytes, filled, this.size - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return filled === this.size ? bytes : bytes.subarray(0, filled);
  }

  /** The file's bytes in order, a chunk at a time, `size` of them at most. */
  async *chunks(chunkBytes: number = READ_CHUNK_BYTES): AsyncGenerator<Uint8Array> {
    let position = 0;
    while (position < this.size) {
      const buffer = new Uint8Array(Math.min(chunkBytes, this.size - position));
      const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) return;
      position += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** A folder opened and checked by {@link FileAccess}: its entries are reached through its descriptor. */
export class CheckedDirectory {
  constructor(
    private readonly access: FileAccess,
    /** The path as requested. */
    readonly path: string,
    readonly realPath: string,
    private readonly handle: FileHandle,
  ) {}

  /** The folder's entries (names, and types as the folder lists them: symlinks are not followed). */
  async entries(): Promise<Dirent[]> {
    return readdir(this.base(), { withFileTypes: true });
  }

  /** Opens the regular file `name` of this folder. */
  async openFile(name: string, options: OpenOptions = {}): Promise<CheckedFile> {
    const shown = join(this.path, name);
    const { handle, realPath, stats } = await this.access.openChecked(
      this.entry(name),
      shown,
      'file',
      options,
    );
    return new CheckedFile(shown, realPath, stats.size, handle);
  }

  /** Opens the sub-folder `name` of this folder. */
  async openDirectory(name: string): Promise<CheckedDirectory> {
    const shown = join(this.path, name);
    const { handle, realPath } = await this.access.openChecked(this.entry(name), shown, 'directory', {});
    return new CheckedDirectory(this.access, shown, realPath, handle);
  }

  /** Identifies the folder itself (device and inode), for walks that must not loop. */
  async identity(): Promise<string> {
    const stats = await this.handle.stat();
    return `${stats.dev}:${stats.ino}`;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  /** The folder through its descriptor when roots are checked (the folder that was checked). */
  private base(): string {
    return this.access.roots === undefined ? this.path : descriptorPath(this.handle);
  }

  private entry(name: string): string {
    if (name === '' || name === '.' || name === '..' || name.includes('/')) {
      throw new InvalidArgumentError(`${JSON.stringify(name)} is not a name inside ${this.path}`);
    }
    return join(this.base(), name);
  }
}

function descriptorPath(handle: FileHandle): string {
  return `/proc/self/fd/${handle.fd}`;
}

export function isWithin(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

function codeOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

function typeOf(stats: Stats): string {
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFile()) return 'a regular file';
  return 'of another kind';
}

/** An open that failed, in words that name the path as requested and nothing else of the system's. */
function openError(error: unknown, shown: string): Error {
  const name = JSON.stringify(shown);
  switch (codeOf(error)) {
    case 'ENOENT':
      return new NotFoundError(`${name} does not exist`, { cause: error });
    case 'ENOTDIR':
      return new NotFoundError(`${name} does not exist (a part of it is not a folder)`, { cause: error });
    case 'ENXIO':
      return new InvalidArgumentError(`${name} is not a regular file (a socket or device)`, { cause: error });
    case 'EACCES':
    case 'EPERM':
      return new InvalidArgumentError(`${name} cannot be read (permission denied)`, { cause: error });
    default:
      return new InvalidArgumentError(`${name} cannot be opened (${codeOf(error) ?? 'error'})`, {
        cause: error,
      });
  }
}
