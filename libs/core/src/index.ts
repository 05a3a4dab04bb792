export * from './errors';
export { siblingModule, spawnModuleWorker } from './worker-thread';
