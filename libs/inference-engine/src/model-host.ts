import {
  formatModelRef,
  type ModelRegistry,
  parseModelRef,
  type RegistryEvent,
  type RegistrySubscription,
} from '@deit-serve/registry';
import { LoadedModel, type LoadOptions } from './loaded-model';

export interface Lease {
  model: LoadedModel;
  /** The alias the request's ref resolved through, if any. */
  alias?: string;
  release(): void;
}

export interface ModelHostOptions extends LoadOptions {
  watch: { mode: 'auto' | 'events' | 'poll'; pollIntervalMs: number };
  onLoaded?: (model: LoadedModel) => void;
  onUnloaded?: (model: LoadedModel) => void;
  onLoadFailed?: (modelName: string, error: unknown) => void;
}

interface Route {
  model: LoadedModel;
  alias?: string;
}

/**
 * Serves model versions from the registry and keeps them current.
 *
 * A route is a reference as requests spell it (`name`, `name@alias`, `name:version`) bound to a
 * loaded version. When the registry reports a new version or an alias move, every route of that
 * model is resolved again; a changed target is loaded in the background (verified bytes,
 * self-check, warm-up) and swapped in atomically, and the old version is retired once its last
 * request has finished. A failed load leaves the old version serving. `name:version` routes never
 * move.
 */
export class ModelHost {
  private readonly routes = new Map<string, Route>();
  private readonly loaded = new Map<string, LoadedModel>();
  private readonly loading = new Map<string, Promise<LoadedModel>>();
  private readonly pendingRoutes = new Map<string, Promise<Route>>();
  private readonly refreshes = new Map<string, Promise<void>>();
  private subscription?: RegistrySubscription;
  private closed = false;

  constructor(
    private readonly registry: ModelRegistry,
    private readonly options: ModelHostOptions,
  ) {}

  /** Starts following the registry. */
  async watch(): Promise<void> {
    this.subscription = this.registry.watch((event) => this.onEvent(event), {
      mode: this.options.watch.mode,
      pollIntervalMs: this.options.watch.pollIntervalMs,
      onError: (error) => this.options.logger.warn(`registry watch: ${String(error)}`),
    });
    await this.subscription.ready;
  }

  /** Leases the version a reference routes to, loading it first if needed. */
  async acquire(ref: string): Promise<Lease> {
    const key = canonicalRef(ref);
    for (;;) {
      const route = this.routes.get(key) ?? (await this.route(key));
      try {
        const release = route.model.acquire();
        return { model: route.model, ...(route.alias ? { alias: route.alias } : {}), release };
      } catch {
        // The version retired between lookup and lease: the route already points elsewhere.
      }
    }
  }

  /** Loaded versions with the routes that point at them. */
  loadedModels(): { model: LoadedModel; routes: string[] }[] {
    return [...this.loaded.values()].map((model) => ({
      model,
      routes: [...this.routes.entries()].filter(([, r]) => r.model === model).map(([k]) => k),
    }));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.subscription?.close();
    await Promise.allSettled([...this.refreshes.values()]);
    const models = [...this.loaded.values()];
    this.routes.clear();
    this.loaded.clear();
    await Promise.all(models.map((m) => this.retire(m)));
  }

  private route(key: string): Promise<Route> {
    let pending = this.pendingRoutes.get(key);
    if (!pending) {
      pending = (async () => {
        const resolved = await this.registry.resolve(key);
        const model = await this.load(resolved.model, resolved.version);
        const route: Route = { model, ...(resolved.alias ? { alias: resolved.alias } : {}) };
        this.routes.set(key, route);
        return route;
      })().finally(() => this.pendingRoutes.delete(key));
      this.pendingRoutes.set(key, pending);
    }
    return pending;
  }

  private load(name: string, version: number): Promise<LoadedModel> {
    const key = `${name}:${version}`;
    const existing = this.loaded.get(key);
    if (existing) return Promise.resolve(existing);
    let pending = this.loading.get(key);
    if (!pending) {
      pending = (async () => {
        try {
          const files = await this.registry.loadVersion(key);
          const model = await LoadedModel.load(files, this.options);
          this.loaded.set(key, model);
          this.options.onLoaded?.(model);
          return model;
        } catch (error) {
          this.options.onLoadFailed?.(name, error);
          throw error;
        }
      })().finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }

  private onEvent(event: RegistryEvent): void {
    if (this.closed) return;
    // One refresh per model at a time; a newer event re-runs it after the current one.
    const previous = this.refreshes.get(event.model) ?? Promise.resolve();
    const next = previous.then(() => this.refresh(event.model));
    this.refreshes.set(event.model, next);
    void next.finally(() => {
      if (this.refreshes.get(event.model) === next) this.refreshes.delete(event.model);
    });
  }

  private async refresh(modelName: string): Promise<void> {
    for (const [key, route] of [...this.routes.entries()]) {
      if (route.model.name !== modelName || this.closed) continue;
      try {
        const resolved = await this.registry.resolve(key);
        if (resolved.version === route.model.version) continue;
        const model = await this.load(resolved.model, resolved.version);
        if (this.closed) return;
        this.routes.set(key, { model, ...(resolved.alias ? { alias: resolved.alias } : {}) });
        this.options.logger.log(`${key} now routes to ${model.key} (was ${route.model.key})`);
      } catch (error) {
        this.options.logger.warn(
          `${key}: keeping ${route.model.key}; loading the new target failed: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }
    this.retireUnrouted();
  }

  private retireUnrouted(): void {
    const routed = new Set([...this.routes.values()].map((r) => r.model));
    for (const [key, model] of this.loaded) {
      if (routed.has(model)) continue;
      this.loaded.delete(key);
      void this.retire(model);
    }
  }

  private async retire(model: LoadedModel): Promise<void> {
    try {
      await model.retire();
      this.options.onUnloaded?.(model);
      this.options.logger.log(`${model.key} unloaded`);
    } catch (error) {
      this.options.logger.warn(`${model.key}: unloading failed: ${String(error)}`);
    }
  }
}

/** The route key of a reference: validated, and spelled one way. */
function canonicalRef(ref: string): string {
  return formatModelRef(parseModelRef(ref));
}
