/**
 * The trainer reads only what lies inside its data roots. Every file or folder a fine-tune request
 * names is checked three times: its form when the spec is validated (no `..` segments, no control
 * characters: INVALID_ARGUMENT); where it really is, symlinks resolved, before anything reads it
 * (outside every root: PERMISSION_DENIED, naming the field); and, as it is read, every file and folder
 * through `files` (the datasets library's FileAccess): checked on the opened descriptor, so a path
 * re-pointed after the second check, or a file symlink inside a named folder, is refused, not read.
 * A path that does not exist yet is placed by its nearest existing ancestor, so a missing file is
 * reported as missing by the checks that read it, not here.
 */
import { PermissionDeniedError } from '@deit-serve/core';
import { FASHION_MNIST_FILES, FileAccess, isWithin } from '@deit-serve/datasets';
import { lstat, realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { FineTuneJobSpec, SpecProblem } from './spec';

/** Longer paths are refused outright (Linux's PATH_MAX). */
export const MAX_PATH_LENGTH = 4096;

// eslint-disable-next-line no-control-regex -- control characters are what this looks for
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

/** What is wrong with the form of a requested path, or undefined. */
export function pathSyntaxProblem(path: string): string | undefined {
  if (path === '') return 'is required';
  if (path.length > MAX_PATH_LENGTH) return `is ${path.length} characters long; at most ${MAX_PATH_LENGTH}`;
  if (CONTROL_CHARACTERS.test(path)) return 'must not contain control characters (NUL, newline, …)';
  // Backslashes count as separators too: a path that only looks harmless on one platform is refused.
  if (path.split(/[/\\]/).includes('..')) return 'must not contain ".." segments';
  return undefined;
}

const FASHION_MNIST_FIELD = 'dataset.fashion_mnist.dir';

/** The files and folders a spec names, by proto field path. */
export function specPaths(spec: FineTuneJobSpec): { readonly field: string; readonly path: string }[] {
  const paths: { field: string; path: string }[] = [];
  if (spec.student.kind === 'safetensors')
    paths.push({ field: 'student.safetensors.path', path: spec.student.path });
  if (spec.teacher?.kind === 'onnx') paths.push({ field: 'teacher.onnx_path', path: spec.teacher.path });
  const source = spec.dataset.source;
  if (source.kind === 'fashion-mnist') {
    paths.push({ field: FASHION_MNIST_FIELD, path: source.dir });
  } else {
    paths.push({ field: 'dataset.image_folder.train_dir', path: source.trainDir });
    if (source.valDir !== undefined)
      paths.push({ field: 'dataset.image_folder.val_dir', path: source.valDir });
  }
  return paths;
}

/** One refused path: the field and path as requested, and (for logs only) where it really leads. */
export interface PathDenial extends SpecProblem {
  readonly path: string;
  readonly resolved: string;
}

/**
 * PERMISSION_DENIED naming every field whose path lies outside the data roots. The message does not
 * say where a symlink leads (that is the server's business); `denials` does, for the server's log.
 */
export class PathNotAllowedError extends PermissionDeniedError {
  constructor(
    readonly denials: readonly PathDenial[],
    roots: readonly string[],
  ) {
    super(
      `path${denials.length === 1 ? '' : 's'} outside the trainer's data roots (${roots.join(', ')}): ` +
        denials.map((d) => `${d.field}: ${d.problem}`).join('; '),
    );
  }
}

export type PathVerdict =
  | { readonly allowed: true; readonly resolved: string }
  | { readonly allowed: false; readonly resolved: string; readonly problem: string };

/** What a {@link PathSandbox} is made of, as JSON: how it travels to a job's worker process. */
export interface PathSandboxConfig {
  /** Absolute. */
  readonly roots: readonly string[];
  /** Requested paths that are relative are taken against it. */
  readonly cwd: string;
}

/**
 * The data roots of a trainer. Roots are resolved (symlinks included) at every check, so a root that
 * is created or re-pointed later is honoured; one that does not exist contains nothing.
 */
export class PathSandbox {
  readonly roots: readonly string[];
  /** How the trainer opens every file a request names: inside these roots only. */
  readonly files: FileAccess;

  /** `roots` and requested paths that are relative are taken against `cwd`. */
  constructor(
    roots: readonly string[],
    private readonly cwd: string = process.cwd(),
  ) {
    if (roots.length === 0) throw new RangeError('a path sandbox needs at least one root');
    this.roots = roots.map((root) => resolve(cwd, root));
    this.files = new FileAccess(this.roots, cwd);
  }

  /** The sandbox `config` describes, in another process: same roots, same working directory. */
  static fromConfig(config: PathSandboxConfig): PathSandbox {
    return new PathSandbox(config.roots, config.cwd);
  }

  get config(): PathSandboxConfig {
    return { roots: [...this.roots], cwd: this.cwd };
  }

  /** Where `path` really leads, and whether that is inside a root. */
  async verdict(path: string): Promise<PathVerdict> {
    const syntax = pathSyntaxProblem(path);
    if (syntax !== undefined) return { allowed: false, resolved: path, problem: syntax };
    const requested = resolve(this.cwd, path);
    const resolved = await realLocation(requested);
    if (resolved === undefined) {
      return {
        allowed: false,
        resolved: requested,
        problem: `${JSON.stringify(path)} cannot be resolved (a dangling or looping symbolic link, or a folder the trainer may not search)`,
      };
    }
    const roots = await Promise.all(this.roots.map((root) => realLocation(root)));
    if (roots.some((root) => root !== undefined && isWithin(resolved, root))) {
      return { allowed: true, resolved };
    }
    const lexicallyInside = this.roots.some((root) => isWithin(requested, root));
    return {
      allowed: false,
      resolved,
      problem: lexicallyInside
        ? `${JSON.stringify(path)} leads outside the data roots through a symbolic link`
        : `${JSON.stringify(path)} is outside the data roots`,
    };
  }

  /** True when `path` lies inside a root after symlinks (a check by name: read through `files`). */
  async contains(path: string): Promise<boolean> {
    return (await this.verdict(path)).allowed;
  }

  /**
   * Throws {@link PathNotAllowedError} naming every path of `spec` that lies outside the roots, and,
   * in a Fashion-MNIST folder that lies inside, every one of its files that leads out (the names are
   * known, so this costs no more than the folder's own check).
   */
  async assertSpecAllowed(spec: FineTuneJobSpec): Promise<void> {
    const denials: PathDenial[] = [];
    const check = async (field: string, path: string): Promise<boolean> => {
      const verdict = await this.verdict(path);
      if (!verdict.allowed)
        denials.push({ field, path, resolved: verdict.resolved, problem: verdict.problem });
      return verdict.allowed;
    };
    for (const { field, path } of specPaths(spec)) {
      const allowed = await check(field, path);
      if (allowed && spec.dataset.source.kind === 'fashion-mnist' && field === FASHION_MNIST_FIELD) {
        for (const split of Object.values(FASHION_MNIST_FILES)) {
          await check(field, join(path, split.images));
          await check(field, join(path, split.labels));
        }
      }
    }
    if (denials.length > 0) throw new PathNotAllowedError(denials, this.roots);
  }
}

/**
 * The real path of `path`; for a path that does not exist, the real path of its nearest existing
 * ancestor joined with the rest (nothing missing can be a symlink). Undefined for a symlink that
 * exists but cannot be resolved (dangling, a loop): where it would lead later is unknowable.
 */
async function realLocation(path: string): Promise<string | undefined> {
  try {
    return await realpath(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') return undefined;
    const exists = await lstat(path).then(
      () => true,
      () => false,
    );
    if (exists) return undefined;
    const parent = dirname(path);
    if (parent === path) return path;
    const real = await realLocation(parent);
    return real === undefined ? undefined : join(real, basename(path));
  }
}
