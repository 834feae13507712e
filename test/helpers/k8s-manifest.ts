/**
 * The values of demo/kubernetes/sessions.yaml that the namespace test runs with, read from the file
 * itself so the guide cannot show one value while the test exercises another. A few patterns over
 * that one file, not a YAML parser: each fails loudly when the manifest changes shape.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const MANIFEST_PATH = fileURLToPath(new URL('../../demo/kubernetes/sessions.yaml', import.meta.url));
export const SERVER_PATH = fileURLToPath(new URL('../../demo/kubernetes/server.ts', import.meta.url));

function match(text: string, pattern: RegExp, what: string): RegExpExecArray {
  const m = pattern.exec(text);
  if (m === null) throw new Error(`demo/kubernetes/sessions.yaml: cannot find ${what} (${pattern})`);
  return m;
}

/** The text of `key: |` (a literal block scalar), its indentation removed. */
function blockScalar(text: string, key: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trimStart().startsWith(`${key}: |`));
  if (start < 0) throw new Error(`demo/kubernetes/sessions.yaml: no block "${key}: |"`);
  const own = lines[start].length - lines[start].trimStart().length;
  const body: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() !== '' && line.length - line.trimStart().length <= own) break;
    body.push(line);
  }
  const indent = Math.min(...body.filter((l) => l.trim() !== '').map((l) => l.length - l.trimStart().length));
  return body.map((l) => l.slice(indent)).join('\n').trimEnd();
}

/** What the test takes from the manifest. */
export interface ManifestValues {
  /** Container ports named http and cluster. */
  httpPort: number;
  clusterPort: number;
  /** The StatefulSet's name: pods are `<name>-0`, `<name>-1`, … */
  statefulSet: string;
  /** The governing (ready pods) and peers (every pod) Services. */
  service: string;
  peersService: string;
  /** `PEERS_DNS` for a namespace. */
  peersDns(namespace: string): string;
  readinessPath: string;
  preStopSeconds: number;
  terminationGracePeriodSeconds: number;
  /** The StatefulSet's replicas, and the EXPECTED_MEMBERS its pods get. */
  replicas: number;
  expectedMembers: number;
  /** The ingress-nginx annotations, as nginx text. */
  serverSnippet: string;
  configurationSnippet: string;
}

export function readManifest(text = readFileSync(MANIFEST_PATH, 'utf8')): ManifestValues {
  const peersDns = match(text, /- name: PEERS_DNS\n\s+value: (\S+)/, 'the PEERS_DNS env value')[1];
  const services = [...text.matchAll(/kind: Service\nmetadata:\n\s+name: (\S+)/g)].map((m) => m[1]);
  if (services.length !== 2) throw new Error(`demo/kubernetes/sessions.yaml: expected two Services, found ${services.join(', ')}`);
  return {
    httpPort: Number(match(text, /- name: http\n\s+containerPort: (\d+)/, 'containerPort http')[1]),
    clusterPort: Number(match(text, /- name: cluster\n\s+containerPort: (\d+)/, 'containerPort cluster')[1]),
    statefulSet: match(text, /kind: StatefulSet\nmetadata:\n\s+name: (\S+)/, 'the StatefulSet')[1],
    peersService: match(text, /name: (\S+)\nspec:\n\s+clusterIP: None\n\s+publishNotReadyAddresses: true/, 'the peers Service')[1],
    service: match(text, /serviceName: (\S+)/, 'the StatefulSet serviceName')[1],
    peersDns: (namespace) => peersDns.replace('$(POD_NAMESPACE)', namespace),
    readinessPath: match(text, /readinessProbe:\n\s+httpGet:\n\s+path: (\S+)/, 'the readiness probe path')[1],
    preStopSeconds: Number(match(text, /preStop:\n\s+sleep:\n\s+seconds: (\d+)/, 'the preStop sleep')[1]),
    terminationGracePeriodSeconds: Number(match(text, /terminationGracePeriodSeconds: (\d+)/, 'terminationGracePeriodSeconds')[1]),
    replicas: Number(match(text, /\n\s+replicas: (\d+)/, 'the StatefulSet replicas')[1]),
    expectedMembers: Number(match(text, /- name: EXPECTED_MEMBERS\n\s+value: "(\d+)"/, 'the EXPECTED_MEMBERS env value')[1]),
    serverSnippet: blockScalar(text, 'nginx.ingress.kubernetes.io/server-snippet'),
    configurationSnippet: blockScalar(text, 'nginx.ingress.kubernetes.io/configuration-snippet'),
  };
}
