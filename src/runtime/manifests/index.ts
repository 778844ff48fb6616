// Kubernetes-style manifests for the local runtime: load and validate YAML files into typed objects,
// then plan the pods they describe and the pods each Service selects. The runtime's one entry point:
// it also passes on what it uses of the shared kinds (src/manifests).
export { loadManifestFiles, parseManifests, type LoadOptions, type ManifestSource } from './load.js';
export { ManifestError, formatProblem, type ManifestProblem } from '../../manifests/errors.js';
export {
  planPods,
  deploymentPods,
  selectPods,
  serviceTargets,
  templateHash,
  TEMPLATE_HASH_LABEL,
  type PodPlan,
  type RunnableContainer,
  type ServiceTarget,
} from './plan.js';
export { ANNOTATION, meshSettings, type MeshAnnotations, type MeshSettings } from '../../manifests/annotations.js';
export { parsePortList, portListHas, formatPortList, type PortList, type PortRange } from '../../core/ports.js';
export { matchesMap, matchesSelector } from '../../manifests/labels.js';
export { KIND_NAMES } from '../../manifests/schema.js';
export type * from '../../manifests/types.js';
export type {
  Container,
  ContainerPort,
  EnvVar,
  Probe,
  PodSpec,
  RestartPolicy,
  LabelSelector,
  ServicePort,
} from '../../manifests/schema.js';
