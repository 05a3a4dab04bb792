/**
 * Policies for what a real cluster needs beyond the objects' own shape (issue 21): the Namespace with
 * Pod Security "restricted" enforced, so that `kubectl apply -k` works on an empty cluster; an
 * autoscaling signal that fits batched serving; DNS egress that also reaches NodeLocal DNSCache.
 * Each returns its violations, like those of ./policy.
 */
import type { K8sObject } from './policy';

/** NodeLocal DNSCache's default link-local listen address (k8s.io nodelocaldns addon). */
export const NODE_LOCAL_DNS = '169.254.20.10/32';
/** In-flight requests per inference pod (queued or computing), a gauge of libs/inference-engine. */
export const INFLIGHT_METRIC = 'deit_pending_requests';

interface HpaMetric {
  type: string;
  pods?: { metric: { name: string }; target: { type: string; averageValue?: string } };
  resource?: { name: string; target: { type: string; averageUtilization?: number } };
}

interface NetworkPolicyPeer {
  namespaceSelector?: { matchLabels?: Record<string, string> };
  podSelector?: { matchLabels?: Record<string, string> };
  ipBlock?: { cidr: string };
}

interface NetworkPolicyRule {
  to?: NetworkPolicyPeer[];
  ports?: { protocol?: string; port?: number | string }[];
}

function ofKind(objects: readonly K8sObject[], kind: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind);
}

/** The overlay's namespace is rendered, with Pod Security "restricted" enforced. */
export function checkNamespace(objects: readonly K8sObject[], namespace: string): string[] {
  const ns = ofKind(objects, 'Namespace');
  const own = ns.find((o) => o.metadata.name === namespace);
  if (!own) return [`no Namespace ${namespace} (kubectl apply -k fails on an empty cluster)`];
  const problems: string[] = [];
  const others = ns.filter((o) => o !== own).map((o) => o.metadata.name);
  if (others.length) problems.push(`other Namespaces rendered: ${others.join(', ')}`);
  const labels = own.metadata.labels ?? {};
  if (labels['pod-security.kubernetes.io/enforce'] !== 'restricted')
    problems.push(`Namespace ${namespace}: Pod Security "restricted" is not enforced`);
  return problems;
}

/**
 * The HorizontalPodAutoscaler scales on in-flight requests per pod (a custom metric through the
 * Prometheus adapter) with CPU utilisation beside it, which the HPA still uses when the custom metric
 * is unavailable.
 */
export function checkAutoscalingSignal(objects: readonly K8sObject[]): string[] {
  const hpa = ofKind(objects, 'HorizontalPodAutoscaler')[0];
  const metrics = (hpa?.spec as { metrics?: HpaMetric[] } | undefined)?.metrics ?? [];
  const problems: string[] = [];
  const inflight = metrics.find((m) => m.type === 'Pods' && m.pods?.metric.name === INFLIGHT_METRIC);
  if (!inflight)
    problems.push(`the HorizontalPodAutoscaler does not scale on ${INFLIGHT_METRIC} (Pods metric)`);
  else if (inflight.pods?.target.type !== 'AverageValue' || !(Number(inflight.pods.target.averageValue) > 0))
    problems.push(`the HorizontalPodAutoscaler: ${INFLIGHT_METRIC} has no positive AverageValue target`);
  if (!metrics.some((m) => m.type === 'Resource' && m.resource?.name === 'cpu'))
    problems.push('the HorizontalPodAutoscaler has no CPU fallback');
  return problems;
}

/**
 * DNS egress (port 53) reaches the cluster DNS pods and NodeLocal DNSCache, and nothing else: no
 * policy opens port 53 to every destination.
 */
export function checkDnsEgress(objects: readonly K8sObject[]): string[] {
  const rules = ofKind(objects, 'NetworkPolicy').flatMap(
    (o) => (o.spec as { egress?: NetworkPolicyRule[] } | undefined)?.egress ?? [],
  );
  const dnsRules = rules.filter((r) => r.ports?.some((p) => String(p.port) === '53'));
  const peers = dnsRules.flatMap((r) => r.to ?? []);
  const problems: string[] = [];
  if (dnsRules.some((r) => !r.to?.length)) problems.push('DNS egress is open to every destination');
  const kubeDns = peers.some(
    (p) =>
      p.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'kube-system' &&
      p.podSelector?.matchLabels?.['k8s-app'] === 'kube-dns',
  );
  if (!kubeDns)
    problems.push('DNS egress does not reach the cluster DNS pods (kube-system, k8s-app=kube-dns)');
  if (!peers.some((p) => p.ipBlock?.cidr === NODE_LOCAL_DNS))
    problems.push(`DNS egress does not reach NodeLocal DNSCache (${NODE_LOCAL_DNS})`);
  return problems;
}
