export interface OnnxExportOptions {
  /** Stored as metadata `preset` (e.g. `deit_tiny_distilled_patch16_224`). */
  readonly preset?: string;
  readonly producerVersion?: string;
  readonly docString?: string;
  /** Extra metadata_props (e.g. preprocessing, labels); may not override the exporter's own keys. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** The exporter's own metadata plus the caller's, refusing to let the caller override ours. */
export function mergeMetadata(
  own: Readonly<Record<string, string>>,
  extra: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  for (const key of Object.keys(extra ?? {})) {
    if (key in own)
      throw new Error(`metadata key "${key}" is written by the exporter and cannot be overridden`);
  }
  return { ...own, ...extra };
}
