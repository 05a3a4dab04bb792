// How the services' Node.js processes are started, in one place. Settings that only take effect when
// a process starts (V8's heap layout, glibc's allocator) cannot be applied from inside main.ts, so
// `npm start`, the benchmarks and the container images (docker/Dockerfile, tied to this file by
// deploy/src/service-env.spec.ts) all start the services with this environment.
//
// The inference service's request tensors and batches live outside V8's heap, so its JavaScript
// garbage is small:
// - `--max-semi-space-size=2`: a 2 MiB young generation instead of V8's 16 MiB semi-spaces (32 MiB
//   committed and resident once a burst has filled them), for collections the service does not need.
// - `glibc.malloc.mmap_threshold=131072`: allocations of 128 KiB and more (request messages, batches,
//   onnxruntime's activations) are mapped and unmapped on their own. glibc's default moves this
//   threshold up to the size of the largest block freed so far (the model file's bytes at load, 24 MB
//   for DeiT-Ti), after which every request's buffers come from the heap and fragment it for good.
// Measured with `npm run bench:peers`: bench/README.md, "Memory".

/** @type {Readonly<Record<string, { nodeOptions: readonly string[], glibcTunables: readonly string[] }>>} */
export const SERVICE_PROCESS_SETTINGS = {
  inference: {
    nodeOptions: ['--max-semi-space-size=2'],
    glibcTunables: ['glibc.malloc.mmap_threshold=131072'],
  },
  trainer: { nodeOptions: [], glibcTunables: [] },
};

/** `--flag=value` → `--flag`; the caller's own setting of a flag wins over ours. */
const flagName = (option) => option.split('=')[0];
const tunableName = (tunable) => tunable.split('=')[0];

/**
 * The environment to start `app` with: `env` plus the service's settings, each added to
 * NODE_OPTIONS / GLIBC_TUNABLES unless `env` already sets that flag or tunable itself.
 * @param {string} app `inference` or `trainer`
 * @param {Record<string, string | undefined>} [env]
 * @returns {Record<string, string | undefined>}
 */
export function serviceEnv(app, env = process.env) {
  const settings = SERVICE_PROCESS_SETTINGS[app];
  if (!settings)
    throw new Error(`unknown service "${app}" (known: ${Object.keys(SERVICE_PROCESS_SETTINGS).join(', ')})`);
  const merged = { ...env };
  const own = (env.NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean);
  const addOptions = settings.nodeOptions.filter((o) => !own.some((x) => flagName(x) === flagName(o)));
  if (addOptions.length > 0) merged.NODE_OPTIONS = [...own, ...addOptions].join(' ');
  const tunables = (env.GLIBC_TUNABLES ?? '').split(':').filter(Boolean);
  const addTunables = settings.glibcTunables.filter(
    (t) => !tunables.some((x) => tunableName(x) === tunableName(t)),
  );
  if (addTunables.length > 0) merged.GLIBC_TUNABLES = [...tunables, ...addTunables].join(':');
  return merged;
}
