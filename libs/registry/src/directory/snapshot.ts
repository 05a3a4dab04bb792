import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { AliasHistoryEntry } from '../storage';
import { ALIASES_DIR, isValidName } from './alias-files';
import { MANIFEST_FILE } from '../manifest';
import { exists, isDirectory, isNotFound, readdirIfExists } from './fs-util';
import type { RegistrySnapshot } from './watcher';

export interface SnapshotSources {
  /** Published versions of a model, ascending. */
  versions(model: string): Promise<number[]>;
  /** Alias pointers of a model; damaged ones left out (they reappear once repaired). */
  aliases(model: string): Promise<ReadonlyMap<string, AliasHistoryEntry>>;
}

/** What the watcher compares between rescans: versions with their files' fingerprints, and alias targets. */
export async function scanRegistry(root: string, sources: SnapshotSources): Promise<RegistrySnapshot> {
  const snapshot: RegistrySnapshot = { models: new Map(), directories: [root] };
  for (const model of (await readdirIfExists(root)).sort()) {
    const modelDir = join(root, model);
    if (!isValidName(model) || !(await isDirectory(modelDir))) continue;
    snapshot.directories.push(modelDir);
    const aliasesDir = join(modelDir, ALIASES_DIR);
    if (await isDirectory(aliasesDir)) snapshot.directories.push(aliasesDir);
    const versions = new Map<number, string>();
    for (const version of await sources.versions(model)) {
      const versionDir = join(modelDir, String(version));
      let files = await fingerprint(versionDir);
      if (files === undefined) {
        // A file vanished while being listed: the version is being removed (gc), or a file deleted by hand.
        if (!(await exists(join(versionDir, MANIFEST_FILE)))) continue;
        files = (await fingerprint(versionDir)) ?? '';
      }
      versions.set(version, files);
      // Watched so that a file repaired (or damaged) in place is noticed without waiting for the next poll.
      snapshot.directories.push(versionDir);
    }
    const aliases = new Map<string, number>();
    for (const [alias, pointer] of await sources.aliases(model)) {
      if (pointer.to !== null) aliases.set(alias, pointer.to);
    }
    if (versions.size > 0 || aliases.size > 0) snapshot.models.set(model, { versions, aliases });
  }
  return snapshot;
}

/**
 * Name, size, mtime and inode of each file of a version: versions are immutable once published, so any
 * difference is a file damaged or repaired in place (the inode catches a same-size replacement by rename).
 */
async function fingerprint(dir: string): Promise<string | undefined> {
  const parts: string[] = [];
  try {
    for (const name of (await readdir(dir)).sort()) {
      const s = await stat(join(dir, name));
      parts.push(`${name}:${s.size}:${s.mtimeMs}:${s.ino}`);
    }
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
  return parts.join('|');
}
