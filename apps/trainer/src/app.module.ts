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
import { healthV1 } from '@deit-serve/proto';
import {
  type JobKinds,
  JobRunner,
  JobStore,
  type SpecCheck,
  type WorkerOptions,
} from '@deit-serve/trainer-engine';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { CONFIG, SPEC_CHECKS, SPEC_OPTIONS, type SpecOptions } from './tokens';
import { TrainerController } from './trainer.controller';

const { SERVING } = healthV1.HealthCheckResponse_ServingStatus;
const TRAINER_SERVICE = 'deit.trainer.v1.TrainerService';

export interface TrainerWiring {
  /** Job kinds the runner can execute (module + export of each job function). */
  kinds: JobKinds;
  /** How workers are started (tests add a TypeScript register hook). */
  worker?: WorkerOptions;
  specOptions?: SpecOptions;
  /** Checks of what a spec names (models, dataset), run when a job is requested. */
  specChecks?: readonly SpecCheck[];
  /** Runner timings; tests shorten them. */
  runner?: { stopGraceMs?: number; pollIntervalMs?: number; leaseMs?: number };
}

@Module({})
export class AppModule implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  constructor(
    private readonly health: HealthStatus,
    private readonly store: JobStore,
    private readonly runner: JobRunner,
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
        {
          provide: JobStore,
          useFactory: () => {
            mkdirSync(dirname(config.jobsDb), { recursive: true });
            return JobStore.open(config.jobsDb);
          },
        },
        {
          provide: JobRunner,
          inject: [JobStore],
          useFactory: (store: JobStore) =>
            new JobRunner({
              store,
              kinds: wiring.kinds,
              workDir: config.workDir,
              maxConcurrentJobs: config.maxConcurrentJobs,
              ...(wiring.worker ? { worker: wiring.worker } : {}),
              ...wiring.runner,
              logger: {
                log: (m) => logger.log(m),
                warn: (m) => logger.warn(m),
                error: (m) => logger.error(m),
              },
            }),
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
      `jobs in ${this.config.jobsDb}, at most ${this.config.maxConcurrentJobs} at once`,
    );
  }

  beforeApplicationShutdown(): void {
    this.health.setAllNotServing();
  }

  async onApplicationShutdown(): Promise<void> {
    // Running jobs checkpoint and go back to QUEUED; the next start resumes them.
    await this.runner.stop({ graceMs: this.config.shutdownGraceMs });
    this.store.close();
  }
}
