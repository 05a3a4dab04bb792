import { DomainError } from '@deit-serve/core';
import {
  DEFAULT_ALIAS,
  formatModelRef,
  type ModelRegistry,
  parseModelRef,
  type RegistryEvent,
  type RegistrySubscription,
} from '@deit-serve/registry';
import { errorMessage, type Fallback, fallbackCandidates } from './fallback';
import { LoadedModel, type LoadOptions } from './loaded-model';

export interface Lease {
  model: LoadedModel;
  /** The alias the request's ref resolved through, if any, and only while the alias names this version. */
  alias?: string;
  release(): void;
}

export interface ModelHostOptions extends LoadOptions {
  /** `error` reports fallbacks: an alias that cannot be served needs someone to act. */
  logger: LoadOptions['logger'] & { error(message: string): void };
  watch: { mode: 'auto' | 'events' | 'poll'; pollIntervalMs: number };
  onLoaded?: (model: LoadedModel) => void;
  onUnloaded?: (model: LoadedModel) => void;
  onLoadFailed?: (modelName: string, error: unknown) => void;
  /** Called with every route serving a fallback whenever that set changes. */
  onFallbacksChanged?: (fallbacks: Fallback[]) => void;
}

interface Route {
  model: LoadedModel;
  /** Set only while the alias names `model`; see `fallback` otherwise. */
  alias?: string;
  fallback?: Omit<Fallback, 'route' | 'model' | 'servingVersion'>;
}

/**
 * Serves model versions from the registry and keeps them current.
 *
 * A route is a reference as requests spell it (`name`, `name@alias`, `name:version`) bound to a
 * loaded version. When the registry reports a new version or an alias move, every route of that
 * model is resolved again; a changed target is loaded in the background (verified bytes,
 * self-check, warm-up) and swapped in atomically, and the old version is retired once its last
 * request has finished. `name:version` routes never move.
 *
 * When the version an alias names cannot be served (damaged files, failed self-check), its route
 * falls back: a running route keeps its version, a new one (a restart) takes the version the alias
 * history named most recently that loads. Either way the route no longer claims the alias, is listed
 * by {@link fallbacks}, and retries the wanted version when its files change or the alias moves.
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

  /** Loaded versions with the routes that point at them, and the aliases that really name them. */
  loadedModels(): { model: LoadedModel; routes: string[]; aliases: string[] }[] {
    return [...this.loaded.values()].map((model) => {
      const routes = [...this.routes.entries()].filter(([, r]) => r.model === model);
      return {
        model,
        routes: routes.map(([k]) => k),
        // Bare names and the default model route through an alias too (`production`); each alias once.
        aliases: [...new Set(routes.flatMap(([, r]) => (r.alias !== undefined ? [r.alias] : [])))],
      };
    });
  }

  /** Routes serving another version than their alias names. */
  fallbacks(): Fallback[] {
    return [...this.routes.entries()].flatMap(([route, r]) =>
      r.fallback ? [{ route, model: r.model.name, ...r.fallback, servingVersion: r.model.version }] : [],
    );
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
        let resolved;
        try {
          resolved = await this.registry.resolve(key);
        } catch (error) {
          // A damaged alias, or one naming a version deleted by hand: what its history last named may
          // still be served, as a fallback.
          const alias = aliasOfRef(key);
          if (!isRegistryDamage(error) || alias === undefined) throw error;
          const route = await this.fallbackRoute(key, parseModelRef(key).name, alias, null, error);
          this.setRoute(key, route);
          return route;
        }
        let route: Route;
        try {
          route = { model: await this.load(resolved.model, resolved.version), ...aliasOf(resolved) };
        } catch (error) {
          if (resolved.alias === undefined) throw error;
          route = await this.fallbackRoute(key, resolved.model, resolved.alias, resolved.version, error);
        }
        this.setRoute(key, route);
        return route;
      })().finally(() => this.pendingRoutes.delete(key));
      this.pendingRoutes.set(key, pending);
    }
    return pending;
  }

  /** The version the alias history named most recently that loads; rethrows `error` when none does. */
  private async fallbackRoute(
    key: string,
    name: string,
    alias: string,
    wanted: number | null,
    error: unknown,
  ): Promise<Route> {
    const history = await this.registry.aliasHistory(name, alias).catch(() => []);
    for (const version of fallbackCandidates(history, alias, wanted)) {
      try {
        const model = await this.load(name, version);
        const fallback = { alias, wantedVersion: wanted, reason: errorMessage(error) };
        this.options.logger.error(describeFallback(key, name, fallback, model));
        return { model, fallback };
      } catch {
        // Damaged or gone as well: try the one named before it.
      }
    }
    throw error;
  }

  private setRoute(key: string, route: Route): void {
    const before = this.routes.get(key)?.fallback;
    this.routes.set(key, route);
    if (before !== undefined || route.fallback !== undefined)
      this.options.onFallbacksChanged?.(this.fallbacks());
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
    const next = previous.then(() => this.refresh(event));
    this.refreshes.set(event.model, next);
    void next.finally(() => {
      if (this.refreshes.get(event.model) === next) this.refreshes.delete(event.model);
    });
  }

  private async refresh(event: RegistryEvent): Promise<void> {
    for (const [key, route] of [...this.routes.entries()]) {
      if (route.model.name !== event.model || this.closed) continue;
      let resolved;
      try {
        resolved = await this.registry.resolve(key);
      } catch (error) {
        const alias = route.alias ?? route.fallback?.alias;
        if (isRegistryDamage(error) && alias !== undefined && route.fallback?.wantedVersion !== null) {
          const fallback = { alias, wantedVersion: null, reason: errorMessage(error) };
          this.setRoute(key, { model: route.model, fallback });
          this.options.logger.error(describeFallback(key, route.model.name, fallback, route.model));
        } else if (route.fallback === undefined) {
          this.options.logger.warn(
            `${key}: keeping ${route.model.key}; resolving failed: ${errorMessage(error)}`,
          );
        }
        continue;
      }
      if (resolved.version === route.model.version) {
        if (route.fallback !== undefined) {
          // The alias came back to the version served (a rollback): it names it again.
          this.setRoute(key, { model: route.model, ...aliasOf(resolved) });
          this.options.logger.log(`${key}: ${route.fallback.alias} names ${route.model.key} again`);
        }
        continue;
      }
      // A refused version is tried again only when something about it changed, not on every event.
      if (route.fallback?.wantedVersion === resolved.version && !concerns(event, resolved.version)) continue;
      try {
        const model = await this.load(resolved.model, resolved.version);
        if (this.closed) return;
        this.setRoute(key, { model, ...aliasOf(resolved) });
        this.options.logger.log(`${key} now routes to ${model.key} (was ${route.model.key})`);
      } catch (error) {
        if (resolved.alias === undefined) {
          this.options.logger.warn(
            `${key}: keeping ${route.model.key}; loading the new target failed: ${errorMessage(error)}`,
          );
          continue;
        }
        const fallback = {
          alias: resolved.alias,
          wantedVersion: resolved.version,
          reason: errorMessage(error),
        };
        this.setRoute(key, { model: route.model, fallback });
        this.options.logger.error(describeFallback(key, resolved.model, fallback, route.model));
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

/** The alias a reference goes through: its own, or production for a bare name. */
function aliasOfRef(key: string): string | undefined {
  const ref = parseModelRef(key);
  return ref.kind === 'alias' ? ref.alias : ref.kind === 'default' ? DEFAULT_ALIAS : undefined;
}

/** A damaged alias file (DATA_LOSS), or an alias naming a missing version (FAILED_PRECONDITION). */
function isRegistryDamage(error: unknown): boolean {
  return error instanceof DomainError && (error.kind === 'DATA_LOSS' || error.kind === 'FAILED_PRECONDITION');
}

function aliasOf(resolved: { alias?: string }): { alias?: string } {
  return resolved.alias !== undefined ? { alias: resolved.alias } : {};
}

/** Whether `event` may have made `version` servable: its files changed, it (re)appeared, or an alias moved. */
function concerns(event: RegistryEvent, version: number): boolean {
  return event.type === 'alias-moved' || event.version === version;
}

function describeFallback(
  key: string,
  name: string,
  fallback: NonNullable<Route['fallback']>,
  serving: LoadedModel,
): string {
  const wanted =
    fallback.wantedVersion === null
      ? `alias ${fallback.alias} of ${name} cannot be resolved`
      : `alias ${fallback.alias} names ${name}:${fallback.wantedVersion}, which cannot be served`;
  return `${key}: ${wanted} (${fallback.reason}); serving ${serving.key} until it can, retried when its files change`;
}

/** The route key of a reference: validated, and spelled one way. */
function canonicalRef(ref: string): string {
  return formatModelRef(parseModelRef(ref));
}
