// What the control plane's servers read: Services (with their virtual IPs and resolved endpoints) and
// pods, as one immutable snapshot that is replaced whole on every change. The local runtime computes
// snapshots from its manifests and pods; a Kubernetes store will compute them from watches. Every
// server (destination, identity, policy) reads only this interface.
import type { PortList } from '../../core/ports.js';

export interface ServicePortEntry {
  readonly name?: string;
  /** The port clients connect to on the Service's virtual IP. */
  readonly port: number;
  /** `appProtocol` from the manifest (e.g. `http`, `kubernetes.io/h2c`, `grpc`), when given. */
  readonly appProtocol?: string;
  /** The Service's config.outrigger.io/opaque-ports lists this port: clients treat it as opaque TCP. */
  readonly opaque?: boolean;
}

export interface EndpointEntry {
  /** `namespace/name` of the pod behind it. */
  readonly pod: string;
  readonly ip: string;
  /** Service port → the pod's port for it (a named targetPort is resolved per pod). */
  readonly ports: Readonly<Record<number, number>>;
  /** Ready pods receive traffic; the others are listed so that a change of readiness is an update. */
  readonly ready: boolean;
}

export interface ServiceEntry {
  readonly namespace: string;
  readonly name: string;
  /** The virtual IP, from the service CIDR. */
  readonly clusterIP: string;
  readonly ports: readonly ServicePortEntry[];
  readonly endpoints: readonly EndpointEntry[];
}

export interface PodEntry {
  readonly namespace: string;
  readonly name: string;
  readonly ip: string;
  readonly ready: boolean;
  /** Whether a proxy runs beside the app (so it has a mesh identity and terminates mTLS). */
  readonly meshed: boolean;
  readonly serviceAccount: string;
  /** Ports whose traffic the pod's proxy treats as opaque TCP (config.outrigger.io/opaque-ports). */
  readonly opaquePorts: PortList;
  readonly labels: Readonly<Record<string, string>>;
}

export interface StoreSnapshot {
  /** Increases with every change. */
  readonly version: number;
  readonly services: readonly ServiceEntry[];
  readonly pods: readonly PodEntry[];
}

export interface Store {
  /** The current snapshot (never mutated; a change replaces it). */
  snapshot(): StoreSnapshot;
  /** Calls `fn` after every change; returns the function that stops it. */
  subscribe(fn: (s: StoreSnapshot) => void): () => void;
}
