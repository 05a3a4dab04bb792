import { describe, expect, it } from 'vitest';
import { projectGraph } from './workspace';

describe('project graph (nx graph --file)', () => {
  const { graph } = projectGraph();
  const nodes = graph.nodes;
  const deps = Object.values(graph.dependencies)
    .flat()
    .filter((d) => d.target in nodes);

  it('has both apps and the libraries', () => {
    expect(nodes['inference']?.type).toBe('app');
    expect(nodes['trainer']?.type).toBe('app');
    for (const lib of ['config', 'core', 'grpc-server', 'model', 'proto', 'registry', 'testing']) {
      expect(nodes[lib]?.type, lib).toBe('lib');
    }
  });

  it('apps depend only on libraries, and nothing depends on an app', () => {
    const appDeps = deps.filter((d) => nodes[d.source]?.type === 'app');
    expect(appDeps.length).toBeGreaterThan(0);
    for (const d of deps) expect(nodes[d.target]?.type, `${d.source} → ${d.target}`).toBe('lib');
  });

  it('every project carries one type:* and one scope:* tag', () => {
    for (const [name, node] of Object.entries(nodes)) {
      const tags = node.data.tags ?? [];
      expect(
        tags.filter((t) => t.startsWith('type:')),
        name,
      ).toHaveLength(1);
      expect(
        tags.filter((t) => t.startsWith('scope:')),
        name,
      ).toHaveLength(1);
    }
  });
});
