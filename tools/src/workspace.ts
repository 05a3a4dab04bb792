import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const workspaceRoot = join(__dirname, '..', '..');

export function readJson<T>(relativePath: string): T {
  return JSON.parse(readFileSync(join(workspaceRoot, relativePath), 'utf8')) as T;
}

export interface ProjectGraph {
  graph: {
    nodes: Record<string, { type: 'app' | 'lib' | 'e2e'; data: { root: string; tags?: string[] } }>;
    dependencies: Record<string, { source: string; target: string; type: string }[]>;
  };
}

/** The workspace's project graph as `nx graph --file` writes it (also refreshes Nx's cache). */
export function projectGraph(): ProjectGraph {
  const file = join(workspaceRoot, 'reports', 'project-graph.json');
  execFileSync('npx', ['nx', 'graph', `--file=${file}`], { cwd: workspaceRoot, stdio: 'pipe' });
  return JSON.parse(readFileSync(file, 'utf8')) as ProjectGraph;
}
