export * from './errors';
export { siblingModule, spawnModuleWorker } from './worker-thread';
export { deriveSeed, Rng } from './rng';
export { AVERAGE_HEAD_WEIGHT, averageHeads, headLogits, type HeadChoice } from './heads';
export { freeNow } from './free-now';
export { maxAbsDiff } from './numeric';
