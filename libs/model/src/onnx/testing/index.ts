export * from './random-weights';
export * from './reference-forward';
