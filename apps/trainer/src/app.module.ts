import {
  type BeforeApplicationShutdown,
  type DynamicModule,
  Inject,
  Logger,
  Module,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { TrainerConfig } from '@deit-serve/config';
import { HealthModule, HealthStatus } from '@deit-serve/grpc-server';
import { healthV1, SERVICE_NAMES } from '@deit-serve/proto';
import { fineTuneJobConfig, fineTuneJobKinds, ProtectedAliases } from '@deit-serve/finetune';
import { connectBatchApi, type BatchJobsApi } from '@deit-serve/k8s-jobs';
import { DirectoryRegistry, type ModelRegistry } from '@deit-serve/registry';
import {
  type JobExecutor,
  type JobKinds,
  JobRunner,
  JobStore,
  KubernetesJobRunner,
  PathSandbox,
  type SpecCheck,
  type WorkerOptions,
} from '@deit-serve/trainer-engine';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { kubernetesRunnerOptions } from './job-mode';
import {
  CONFIG,
  JOB_EXECUTOR,
  JOB_KINDS,
  PROTECTED_ALIASES,
  SPEC_CHECKS,
  SPEC_OPTIONS,
  type SpecOptions,
} from './tokens';
import { TrainerController } from './trainer.controller';

const { SERVING } = healthV1.HealthCheckResponse_ServingStatus;
const TRAINER_SERVICE = SERVICE_NAMES.trainer;

export interface TrainerWiring {
  /**
   * Job kinds the runner can execute (module + export of each job function); default: the fine-tune
   * job, configured with this module's sandbox and the trainer's settings.
   */
  kinds?: JobKinds;
  /** How workers are started (tests add a TypeScript register hook). */
  worker?: WorkerOptions;
  specOptions?: SpecOptions;
  /** Cheap checks of what a spec names (registry refs), run when a job is requested. */
  specChecks?: readonly SpecCheck[];
  /** Runner timings; tests shorten them. */
  runner?: { stopGraceMs?: number; pollIntervalMs?: number; leaseMs?: number };
  /** Job mode (DEIT_TRAINER_RUNNER=kubernetes): the batch/v1 API; default: connectBatchApi() (tests pass a fake). */
  batchApi?: BatchJobsApi;
  /** The registry; default: DEIT_REGISTRY_DIR, opened on first use. */
  registry?: ModelRegistry;
  /**
   * Who may promote to DEIT_PROTECTED_ALIASES; default: checked against the registry, on the
   * sandbox's data roots.
   */
  protectedAliases?: ProtectedAliases;
}

@Module({})
export class AppModule implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  constructor(
    private readonly health: HealthStatus,
    private readonly store: JobStore,
    @Inject(JOB_EXECUTOR) private readonly runner: JobExecutor,
    @Inject(CONFIG) private readonly config: TrainerConfig,
  ) {}

  static register(config: TrainerConfig, wiring: TrainerWiring): DynamicModule {
    const logger = new Logger('jobs');
    return {
      module: AppModule,
      imports: [HealthModule],
      controllers: [TrainerController],
      providers: [
        { provide: CONFIG, useValue: config },
        { provide: SPEC_OPTIONS, useValue: wiring.specOptions ?? {} },
        { provide: SPEC_CHECKS, useValue: wiring.specChecks ?? [] },
        // The one sandbox of the trainer: StartFineTune checks paths with it, and the fine-tune job
        // kind carries its configuration to every worker. Relative roots are taken against the
        // working directory, as DEIT_TRAINER_WORK_DIR is.
        { provide: PathSandbox, useFactory: () => new PathSandbox(config.dataRoots) },
        {
          provide: PROTECTED_ALIASES,
          inject: [PathSandbox],
          useFactory: (sandbox: PathSandbox) =>
            wiring.protectedAliases ??
            new ProtectedAliases({
              aliases: config.protectedAliases,
              dataRoots: sandbox.roots,
              registry: wiring.registry ?? (() => DirectoryRegistry.open(config.registryDir)),
            }),
        },
        {
          provide: JOB_KINDS,
          inject: [PathSandbox],
          useFactory: (sandbox: PathSandbox): JobKinds =>
            wiring.kinds ?? fineTuneJobKinds(fineTuneJobConfig(config, sandbox)),
        },
        {
          provide: JobStore,
          useFactory: () => {
            mkdirSync(dirname(config.jobsDb), { recursive: true });
            return JobStore.open(config.jobsDb);
          },
        },
        {
          provide: JOB_EXECUTOR,
          inject: [JobStore, JOB_KINDS],
          useFactory: async (store: JobStore, kinds: JobKinds): Promise<JobExecutor> => {
            if (config.runner === 'kubernetes') {
              // Job mode: each job becomes a Kubernetes Job; the store stays the source of truth.
              const api = wiring.batchApi ?? (await connectBatchApi());
              return new KubernetesJobRunner({
                ...kubernetesRunnerOptions(config, store, api, {
                  logger: {
                    log: (m) => logger.log(m),
                    warn: (m) => logger.warn(m),
                    error: (m) => logger.error(m),
                  },
                }),
                ...(wiring.runner?.pollIntervalMs !== undefined && {
                  pollIntervalMs: wiring.runner.pollIntervalMs,
                }),
              });
            }
            return new JobRunner({
              store,
              kinds,
              workDir: config.workDir,
              maxConcurrentJobs: config.maxConcurrentJobs,
              maxJobWallMs: config.maxJobWallMs,
              maxRetries: config.jobMaxRetries,
              ...(wiring.worker ? { worker: wiring.worker } : {}),
              ...wiring.runner,
              logger: {
                log: (m) => logger.log(m),
                warn: (m) => logger.warn(m),
                error: (m) => logger.error(m),
              },
            });
          },
        },
      ],
    };
  }

  onApplicationBootstrap(): void {
    // Re-queues jobs a dead trainer left running; they resume from their last checkpoint.
    this.runner.start();
    this.health.set('', SERVING);
    this.health.set(TRAINER_SERVICE, SERVING);
    new Logger('trainer').log(
      `jobs in ${this.config.jobsDb}, at most ${this.config.maxConcurrentJobs} at once; ` +
        `data roots ${this.config.dataRoots.join(', ')}`,
    );
  }

  beforeApplicationShutdown(): void {
    this.health.setAllNotServing();
  }

  async onApplicationShutdown(): Promise<void> {
    // Running jobs checkpoint and go back to QUEUED; the next start resumes them. (Job mode: the
    // Kubernetes Jobs keep running; the next start follows them.)
    await this.runner.stop({ graceMs: this.config.shutdownGraceMs });
    this.store.close();
  }
}
